"""Benchmark `ladder prepare` on the embedded corpus: MB/s and tokens/s against a plain single-process
`tokenizer.encode` loop over the same text, peak RSS of prepare on two corpus sizes 4x apart, and of a BPE prepare
of one long document at two lengths 4x apart.

    python scripts/bench_data.py [--tokenizer bpe|bytes] [--skip-rss]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ladder.cli import compose_config
from ladder.data import load_manifest, prepare
from ladder.data.sources import documents, resolve_source
from ladder.data.tokenizers import load_saved
from omegaconf import OmegaConf

RSS_CHILD = """
import json, resource, sys
from ladder.data import prepare
prepare(json.loads(sys.argv[1]), progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


READ_CHILD = """
import json, resource, sys
from ladder.data.sources import documents, resolve_source
sum(len(text) for text in documents(resolve_source(json.loads(sys.argv[1]))))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def config(*overrides) -> dict:
    return OmegaConf.to_container(compose_config(list(overrides)).data, resolve=True)


def throughput(kind: str, cache: Path) -> None:
    cfg = config(f"data.cache_dir={cache}", f"data.tokenizer.kind={kind}")
    started = time.perf_counter()
    directory = prepare(cfg, progress=False)
    seconds = time.perf_counter() - started
    manifest = load_manifest(directory)
    tokens = manifest["tokens"]["train"] + manifest["tokens"]["val"]
    megabytes = manifest["text_bytes"] / 1e6

    texts = list(documents(resolve_source(cfg)))
    tokenizer = load_saved(manifest["tokenizer"], directory)
    encode = (lambda t: t.encode("utf-8")) if kind == "bytes" else tokenizer.tokenizer.encode
    started = time.perf_counter()
    for text in texts:
        encode(text)
    loop_seconds = time.perf_counter() - started
    what = "incl. training the BPE" if kind == "bpe" else ""
    print(f"corpus: {manifest['source']['name']}, {megabytes:.1f} MB, {len(texts)} documents, tokenizer {kind} "
          f"(vocabulary {manifest['tokenizer']['vocab_size']}), {tokens / 1e6:.2f}M tokens")
    print(f"ladder prepare      {seconds:7.2f} s  {megabytes / seconds:7.2f} MB/s  {tokens / seconds / 1e6:6.2f}M "
          f"tokens/s  (reading, splitting, writing shards + manifest {what})")
    print(f"plain encode loop   {loop_seconds:7.2f} s  {megabytes / loop_seconds:7.2f} MB/s  "
          f"{tokens / loop_seconds / 1e6:6.2f}M tokens/s  (tokenizer.encode per document, nothing written)")
    print(f"ratio prepare/loop  {loop_seconds / seconds:.2f}x")


def peak_rss(tmp: Path) -> None:
    texts = list(documents(resolve_source(config())))
    figures = []
    for copies in (1, 4):
        corpus = tmp / f"corpus{copies}.jsonl"
        with open(corpus, "w") as f:
            for c in range(copies):
                for text in texts:
                    f.write(json.dumps({"text": f"# copy {c}\n{text}"}) + "\n")
        cfg = config("data=local", f"data.path={corpus}", "data.tokenizer.kind=bytes",
                     f"data.cache_dir={tmp / f'cache{copies}'}")
        out = subprocess.run([sys.executable, "-c", RSS_CHILD, json.dumps(cfg)], capture_output=True, text=True,
                             check=True)
        figures.append((corpus.stat().st_size / 1e6, int(out.stdout.split()[-1]) / 1024))
    for size, rss in figures:
        print(f"peak RSS of prepare on a {size:6.1f} MB corpus: {rss:6.0f} MiB")
    print(f"corpus x{figures[1][0] / figures[0][0]:.1f} -> peak RSS x{figures[1][1] / figures[0][1]:.2f}")


def long_document_rss(tmp: Path, sizes_mb=(5, 20)) -> None:
    """Peak RSS of a BPE prepare of one record of each size (issue 13: a 21 MB record needed 5.9 GB whole): the
    text itself is held, the tokenizer's working memory is not allowed to grow with it."""
    texts = list(documents(resolve_source(config())))
    text = "".join(texts)
    figures = []
    for mb in sizes_mb:  # the long record among 100 ordinary ones (a split by document, as any version makes it)
        corpus = tmp / f"long{mb}.jsonl"
        body = (text * (1 + int(mb * 1e6) // len(text)))[:int(mb * 1e6)]
        corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in [body, *texts[:100]]))
        cfg = config("data=local", f"data.path={corpus}", "data.tokenizer.kind=bpe", "data.tokenizer.train_bytes=2e6",
                     f"data.cache_dir={tmp / f'long{mb}'}")
        rss = [int(subprocess.run([sys.executable, "-c", child, json.dumps(cfg)], capture_output=True, text=True,
                                  check=True).stdout.split()[-1]) / 1024 for child in (RSS_CHILD, READ_CHILD)]
        figures.append((mb, *rss))
    for mb, rss, read in figures:
        print(f"peak RSS of a BPE prepare with one {mb:3d} MB document: {rss:6.0f} MiB; reading the records alone "
              f"(datasets' JSON reader): {read:6.0f} MiB; prepare's own: {rss - read:5.0f} MiB")
    (small, *first), (large, *last) = figures[0], figures[-1]
    print(f"document x{large / small:.0f} -> peak RSS x{last[0] / first[0]:.2f}, prepare's own "
          f"x{(last[0] - last[1]) / max(first[0] - first[1], 1):.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", default="bpe", choices=["bpe", "bytes"])
    parser.add_argument("--skip-rss", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        throughput(args.tokenizer, Path(tmp) / "cache")
        if not args.skip_rss:
            peak_rss(Path(tmp))
            long_document_rss(Path(tmp))


if __name__ == "__main__":
    main()
