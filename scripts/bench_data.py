"""Benchmark `ladder prepare`.

- scaling: a multi-file local corpus (the embedded corpus, 4 copies, 32 .jsonl files) tokenized with a BPE loaded
  through transformers (the hub tokenizers' code path) in 16 pieces: tokens/s at 1 and 2 worker processes (each
  tokenizer on one thread; and 1 worker with the tokenizer's own threads, as a single process ran before; the best
  of two runs each), the same
  against `datasets`' `map(num_proc=...)`, and peak memory (the whole process tree's PSS) at 1x and 10x the corpus.
- the embedded corpus: MB/s and tokens/s against a plain single-process `tokenizer.encode` loop over the same text,
  peak RSS of prepare on two corpus sizes 4x apart, and of a BPE prepare of one long document at two lengths 4x
  apart.

    python scripts/bench_data.py [--tokenizer bpe|bytes] [--skip-rss] [--skip-scaling] [--only-scaling]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ladder.config import compose_config
from ladder.data import load_manifest, prepare
from ladder.data.sources import documents, resolve_source
from ladder.data.tokenizers import load_saved
from ladder.hardware import owned_cpus
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


TREE_CHILD = """
import json, os, sys, threading, time
import psutil
from ladder.data import load_manifest, prepare
cfg, workers, watched = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "memory"
peak, done = [0], threading.Event()
def watch():  # the whole tree (this process and its workers), in PSS: pages a fork shares are counted once
    me = psutil.Process()
    while not done.is_set():
        try:
            peak[0] = max(peak[0], sum(p.memory_full_info().pss for p in [me, *me.children(recursive=True)]))
        except psutil.Error:
            pass
        time.sleep(0.1)
if watched:  # reading smaps costs CPU the workers need: timed runs are not watched
    threading.Thread(target=watch, daemon=True).start()
started = time.perf_counter()
manifest = load_manifest(prepare(cfg, progress=False, workers=workers))
seconds = time.perf_counter() - started
done.set()
print(json.dumps({"seconds": seconds, "tokens": manifest["tokens"]["train"] + manifest["tokens"]["val"],
                  "peak_mib": peak[0] / 2**20}))
"""

MAP_CHILD = """
import json, sys, time
import datasets
from transformers import AutoTokenizer
files, tokenizer_dir, workers, cache = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
datasets.disable_progress_bars()
tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
started = time.perf_counter()
table = datasets.load_dataset("json", data_files=files, split="train", cache_dir=cache)  # the corpus copied to Arrow
converted = time.perf_counter() - started
ids = table.map(lambda batch: {"ids": tokenizer(batch["text"])["input_ids"]}, batched=True, num_proc=workers,
                remove_columns=["text"])
seconds = time.perf_counter() - started
tokens = sum(len(row) for row in ids.with_format("numpy")["ids"]) + len(ids)
print(json.dumps({"seconds": seconds, "converted": converted, "tokens": tokens}))
"""


def scaling(tmp: Path) -> None:
    """Tokens/s of the tokenize stage at 1 and 2 workers (the BPE is trained once, outside the timing), against
    datasets.map; peak memory at 1x and 10x the corpus."""
    from transformers import PreTrainedTokenizerFast

    from ladder.data.tokenizers import EOS_TEXT, train_bpe

    texts = list(documents(resolve_source(config())))
    bpe = train_bpe(texts[::4], 8192)
    PreTrainedTokenizerFast(tokenizer_object=bpe.tokenizer, eos_token=EOS_TEXT).save_pretrained(tmp / "tokenizer")

    def corpus(copies: int) -> Path:
        directory = tmp / f"corpus{copies}"
        directory.mkdir()
        for c in range(copies):
            for part in range(8):
                with open(directory / f"{c:03d}_{part}.jsonl", "w") as f:
                    for text in texts[part::8]:
                        f.write(json.dumps({"text": f"# copy {c}\n{text}"}) + "\n")
        return directory

    def run(directory: Path, workers: int, tokenizer_threads: int | None, label: str, watch: bool = False) -> dict:
        cfg = config("data=local", f"data.path={directory}", "data.tokenizer.kind=hf",
                     f"data.tokenizer.name={tmp / 'tokenizer'}", "data.tasks=16",
                     f"data.cache_dir={tmp / 'cache' / label}")
        env = {**os.environ, **({"RAYON_NUM_THREADS": str(tokenizer_threads)} if tokenizer_threads else {})}
        out = subprocess.run([sys.executable, "-c", TREE_CHILD, json.dumps(cfg), str(workers),
                              "memory" if watch else "time"], capture_output=True, text=True, check=True, env=env)
        return json.loads(out.stdout.splitlines()[-1])

    four = corpus(4)
    megabytes = sum(f.stat().st_size for f in four.iterdir()) / 1e6
    print(f"corpus: {megabytes:.0f} MB in 32 .jsonl files, BPE (vocabulary 8192) through transformers, 16 pieces, "
          f"{owned_cpus()} CPUs")
    def best(workers, threads, label):  # the faster of two runs (a 2-core VM's timings vary by ~10%)
        return min((run(four, workers, threads, f"{label}-{i}") for i in range(2)), key=lambda r: r["seconds"])

    one, threaded, two = best(1, 1, "w1"), best(1, None, "w1-threads"), best(2, None, "w2")
    for name, r in (("1 worker, tokenizer on 1 thread", one), ("1 worker, tokenizer's own threads", threaded),
                    ("2 workers, 1 thread each", two)):
        print(f"ladder prepare (datatrove) {name:34s} {r['seconds']:6.1f} s  {r['tokens'] / r['seconds'] / 1e6:5.2f}M "
              f"tokens/s")
    print(f"2 workers / 1 worker: {one['seconds'] / two['seconds']:.2f}x; against one process with the tokenizer's "
          f"threads: {threaded['seconds'] / two['seconds']:.2f}x")
    files = sorted(str(f) for f in four.iterdir())
    for workers in (1, 2):
        out = subprocess.run([sys.executable, "-c", MAP_CHILD, json.dumps(files), str(tmp / "tokenizer"), str(workers),
                              str(tmp / f"hf{workers}")], capture_output=True, text=True, check=True,
                             env={**os.environ, "RAYON_NUM_THREADS": "1"})
        r = json.loads(out.stdout.splitlines()[-1])
        print(f"datasets map(num_proc={workers})                          {r['seconds']:6.1f} s  "
              f"{r['tokens'] / r['seconds'] / 1e6:5.2f}M tokens/s  (of which {r['converted']:.1f} s copying the "
              f"corpus to Arrow first)")
    small, large = run(corpus(1), 2, None, "w2-1x", watch=True), run(corpus(10), 2, None, "w2-10x", watch=True)
    print(f"peak memory (PSS of the process tree), 2 workers: {small['peak_mib']:.0f} MiB on {megabytes / 4:.0f} MB "
          f"of text; {large['peak_mib']:.0f} MiB on {megabytes * 10 / 4:.0f} MB (x{large['peak_mib'] / small['peak_mib']:.2f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", default="bpe", choices=["bpe", "bytes"])
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--only-scaling", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_scaling:
            scaling(Path(tmp))
        if args.only_scaling:
            return
        throughput(args.tokenizer, Path(tmp) / "cache")
        if not args.skip_rss:
            peak_rss(Path(tmp))
            long_document_rss(Path(tmp))


if __name__ == "__main__":
    main()
