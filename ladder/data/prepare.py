"""Corpus -> tokenized shards + manifest.json, in a cache directory named by a fingerprint of everything that
determines the content. Shards are written first and the manifest last, inside a temporary directory that is
renamed into place only when complete: an interrupted prepare never leaves a manifest pointing at partial shards.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from ladder import __version__
from ladder.data.sources import Source, check_reachable, documents, resolve_source
from ladder.data.tokenizers import ByteTokenizer, load_hf, pieces, tokenizer_config_signature, train_bpe
from ladder.errors import LadderError, require
from ladder.io import atomic_write_json, pid_alive, read_json

FORMAT_VERSION = 1  # bump when the shard layout changes
log = logging.getLogger("ladder.data")
BATCH_DOCUMENTS = 256


def cache_root(cfg: dict) -> Path:
    if cfg.get("cache_dir"):
        return Path(cfg["cache_dir"])
    return Path(os.environ.get("LADDER_CACHE", Path.home() / ".cache" / "ladder")) / "data"


def fingerprint(cfg: dict, source: Source, split_by: str = "documents") -> str:
    recipe = {"format": FORMAT_VERSION, "source": source.signature(), "tokenizer": tokenizer_config_signature(
        cfg["tokenizer"]), "val_fraction": float(cfg["val_fraction"]), "seed": int(cfg["seed"]),
        "dtype": cfg.get("dtype", "auto"), "shard_tokens": int(float(cfg["shard_tokens"])),
        "max_documents": cfg.get("max_documents")}
    if split_by != "documents":  # only then: every corpus split by document keeps the fingerprint it had
        recipe["split_by"] = split_by
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def is_validation(seed: int, index: int, fraction: float) -> bool:
    """A document's split depends only on (seed, its index): deterministic, and independent of the others."""
    h = int.from_bytes(hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest(), "little")
    return h / 2**64 < fraction


class ShardWriter:
    """Appends token arrays to `<split>_NNN.bin` files of at most `shard_tokens` tokens, hashing as it goes."""

    def __init__(self, directory: Path, split: str, dtype, shard_tokens: int):
        self.directory, self.split, self.dtype, self.shard_tokens = directory, split, np.dtype(dtype), shard_tokens
        self.shards: list[dict] = []
        self.file = None
        self.tokens = self.documents = 0

    def _open_next(self):
        self._close()
        path = self.directory / f"{self.split}_{len(self.shards):03d}.bin"
        self.file, self.hash, self.shard_count = open(path, "wb"), hashlib.sha256(), 0
        self.shards.append({"path": path.name, "split": self.split})

    def write(self, ids: np.ndarray, ends_document: bool = True) -> None:
        """Append ids; a document written in pieces counts once, at its last piece."""
        self.documents += int(ends_document)
        data = ids.astype(self.dtype, copy=False)
        while data.size:
            if self.file is None or self.shard_count >= self.shard_tokens:
                self._open_next()
            take = data[:self.shard_tokens - self.shard_count]
            raw = take.tobytes()
            self.file.write(raw)
            self.hash.update(raw)
            self.shard_count += take.size
            self.tokens += take.size
            data = data[take.size:]

    def _close(self):
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            self.shards[-1].update(tokens=self.shard_count, bytes=self.shard_count * self.dtype.itemsize,
                                   sha256=self.hash.hexdigest())
            self.file = None

    def close(self) -> list[dict]:
        self._close()
        return self.shards


def choose_dtype(requested: str, vocab_size: int) -> str:
    require(requested in ("auto", "uint16", "uint32"), f"data.dtype={requested!r}: use auto, uint16 or uint32")
    if requested == "uint16":
        require(vocab_size <= 2**16, f"data.dtype=uint16: the tokenizer's vocabulary ({vocab_size}) does not fit "
                                     f"in 16 bits; use data.dtype=uint32 or auto")
        return "uint16"
    if requested == "uint32":
        return "uint32"
    return "uint16" if vocab_size <= 2**16 else "uint32"


def make_tokenizer(cfg: dict, source: Source, seed: int, fraction: float, limit, split_by: str = "documents"):
    tcfg = cfg["tokenizer"]
    tokenizer_config_signature(tcfg)
    if tcfg["kind"] == "bytes":
        return ByteTokenizer()
    if tcfg["kind"] == "hf":
        return load_hf(tcfg["name"], tcfg.get("revision"))
    budget = int(float(tcfg["train_bytes"]))

    def training_text():  # the training split only, up to train_bytes: validation text is never seen
        seen = 0
        for i, text in enumerate(documents(source, limit)):
            if split_by == "token_range":  # each document's head (its tail is validation; cut by characters here)
                text = text[:len(text) - int(round(fraction * len(text)))]
            elif is_validation(seed, i, fraction):
                continue
            for piece in pieces(text):  # the trainer never holds a long document whole, nor reads past its budget
                yield piece
                seen += len(piece)
                if seen >= budget:
                    return
    return train_bpe(training_text(), int(tcfg["vocab_size"]))


def prepare(cfg: dict, progress: bool = True) -> Path:
    """The shard directory for this data config, built if missing. Returns quickly when it exists."""
    source = resolve_source(cfg)
    val_fraction, seed = float(cfg["val_fraction"]), int(cfg["seed"])
    require(0 < val_fraction < 0.5, f"data.val_fraction={val_fraction}: must be in (0, 0.5)")
    shard_tokens = int(float(cfg["shard_tokens"]))
    require(shard_tokens > 0, f"data.shard_tokens={shard_tokens}: must be positive")
    limit = cfg.get("max_documents")
    split_by = split_rule(source, limit, val_fraction)
    digest = fingerprint(cfg, source, split_by)
    root = cache_root(cfg)
    final = root / f"{source.name}-{digest[:16]}"
    if (final / "manifest.json").exists():
        return final
    check_reachable(source)
    _remove_stale(root)
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    started = time.time()
    try:
        tokenizer = make_tokenizer(cfg, source, seed, val_fraction, limit, split_by)
        dtype = choose_dtype(cfg.get("dtype", "auto"), tokenizer.vocab_size)
        writers = {split: ShardWriter(tmp, split, dtype, shard_tokens) for split in ("train", "val")}
        eos = np.array([tokenizer.eos_id])
        text_bytes = 0
        if split_by == "token_range" and progress:
            print(f"data {source.name}: fewer than {min_documents(val_fraction)} documents for data.val_fraction="
                  f"{val_fraction}; each document's last {val_fraction:.0%} of tokens is validation (split by "
                  f"token range)", flush=True)
        stream = ((i, text) for i, text in enumerate(documents(source, limit)) if text)  # empty documents: skipped
        with _progress(progress, f"prepare {source.name}") as bar:
            while batch := list(itertools.islice(stream, BATCH_DOCUMENTS)):
                indices, texts = zip(*batch)
                if split_by == "token_range":  # a few documents: each one's ids whole, its tail to validation
                    for ids in tokenizer.encode_batch(list(texts)):
                        cut = len(ids) - int(round(val_fraction * len(ids)))
                        writers["train"].write(np.concatenate([ids[:cut], eos]))
                        writers["val"].write(np.concatenate([ids[cut:], eos]))
                else:  # each piece written as it is encoded: no document's ids are ever held whole
                    current, writer = None, None
                    for i, ids in tokenizer.encode_pieces(list(texts)):
                        if i != current:
                            if current is not None:
                                writer.write(eos)
                            current = i
                            writer = writers["val" if is_validation(seed, indices[i], val_fraction) else "train"]
                        writer.write(ids, ends_document=False)
                    if current is not None:
                        writer.write(eos)
                batch_bytes = sum(len(t.encode("utf-8")) for t in texts)
                text_bytes += batch_bytes
                bar.update(batch_bytes)
        shards = writers["train"].close() + writers["val"].close()
        for split in ("train", "val"):
            require(writers[split].tokens > 0,
                    f"data={source.name}: the corpus gave no {split} tokens (empty corpus, or too few documents "
                    f"for data.val_fraction={val_fraction})")
        tokenizer.save(tmp)
        manifest = {
            "fingerprint": digest, "harness_version": __version__, "format": FORMAT_VERSION,
            "source": {"name": source.name, "kind": source.kind, "path": source.hub_path or None,
                       "subset": source.subset, "split": source.split, "revision": source.revision,
                       "text_field": source.text_field, **source.signature(),
                       "skipped_files": source.skipped_files},
            "tokenizer": tokenizer.describe(), "dtype": dtype, "seq_separator": "eos",
            "val_fraction": val_fraction, "seed": seed, "split_by": split_by, "text_bytes": text_bytes,
            "tokens": {split: writers[split].tokens for split in writers},
            "documents": {split: writers[split].documents for split in writers},
            "shards": shards, "prepare_seconds": round(time.time() - started, 2),
        }
        atomic_write_json(tmp / "manifest.json", manifest)
        if final.exists() and not (final / "manifest.json").exists():  # shards nothing vouches for: replaced
            log.warning("%s has no manifest.json (deleted, or a prepare from before manifests came last); "
                        "replacing it with the one just prepared", final)
            shutil.rmtree(final, ignore_errors=True)
        try:
            tmp.rename(final)
        except OSError:  # another process finished the same data first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def min_documents(val_fraction: float) -> int:
    """Below this many documents, a split by document would leave validation nearly empty (or empty)."""
    return int(np.ceil(2 / val_fraction))


def split_rule(source: Source, limit, val_fraction: float) -> str:
    """'documents' (each document train or validation), or 'token_range' for a local corpus of few documents (one
    text file, nanoGPT's input.txt): the end of each document is validation. Hub corpora (millions of documents,
    streamed) split by document without being counted."""
    if source.kind == "hub":
        return "documents"
    enough = min_documents(val_fraction)
    found = sum(1 for _ in itertools.islice((t for t in documents(source, limit) if t), enough))
    return "documents" if found >= enough else "token_range"


def _remove_stale(root: Path) -> None:
    """Temporary directories of prepares that died (their process is gone)."""
    for tmp in root.glob(".*.tmp-*") if root.exists() else []:
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _progress(enabled: bool, description: str):
    from tqdm import tqdm
    # disable=None: no bar when stderr is not a terminal (CI logs, pipes)
    return tqdm(total=None, unit="B", unit_scale=True, desc=description, disable=None if enabled else True,
                leave=False)


def load_manifest(directory: str | Path) -> dict:
    manifest = read_json(Path(directory) / "manifest.json")
    for key in ("fingerprint", "tokenizer", "dtype", "shards", "tokens"):
        if key not in manifest:
            raise LadderError(f"{directory}/manifest.json: missing {key!r}; delete the directory and prepare again")
    return manifest
