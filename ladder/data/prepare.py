"""Corpus -> tokenized shards + manifest.json, in a cache directory named by a fingerprint of everything that
determines the content. The pieces are tokenized by datatrove's executor (engine.py) into `.<name>.partial`, which a
killed prepare leaves behind to resume from; the manifest is written last and the directory renamed into place only
when complete: a manifest never points at partial shards. A lock lets one process prepare while others wait;
the lock says who holds it, so a waiter whose holder died says so instead of waiting forever.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import logging
import math
import os
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ladder import __version__
from ladder.data.pretokenized import MEMMAP_FORMATS, StatedTokenizer, file_layout, views
from ladder.data.sources import Source, check_reachable, documents, resolve_source, stream_files
from ladder.data.tokenizers import (KINDS, ByteTokenizer, load_hf, load_saved, pieces, tokenizer_config_signature,
                                    train_bpe)
from ladder.errors import LadderError, require
from ladder.hardware import owned_cpus
from ladder.io import (TEXT, WHOLE, atomic_write_json, check_kind, check_shape, open_no_follow, pid_alive,
                       process_start, read_json)

FORMAT_VERSION = 1  # bump when the shard layout changes
# The shapes of the files a prepare writes and reads back (a piece's record is engine.py's PIECE_RECORD)
SPLITS = {"train": WHOLE, "val": WHOLE}
SHARD = {"path": TEXT, "split": (lambda v: v in ("train", "val"), "train or val"), "tokens": WHOLE, "bytes": WHOLE,
         "sha256": TEXT, "offset?": WHOLE, "file_bytes?": WHOLE}
TOKENIZER = {"kind": (lambda v: v in KINDS, f"one of {', '.join(KINDS)}"), "vocab_size": WHOLE, "eos_id": WHOLE,
             "name?": TEXT, "hash?": TEXT}
MANIFEST = {"fingerprint": TEXT, "tokenizer": TOKENIZER, "dtype": (lambda v: v in ("uint16", "uint32"),
                                                                    "uint16 or uint32"),
            "shards": [SHARD], "tokens": SPLITS}
log = logging.getLogger("ladder.data")


def cache_root(cfg: dict) -> Path:
    if cfg.get("cache_dir"):
        return Path(cfg["cache_dir"])
    return Path(os.environ.get("LADDER_CACHE", Path.home() / ".cache" / "ladder")) / "data"


def fingerprint(cfg: dict, source: Source, split_by: str = "documents", max_tokens: int | None = None) -> str:
    recipe = {"format": FORMAT_VERSION, "source": source.signature(), "tokenizer": tokenizer_config_signature(
        cfg["tokenizer"]), "val_fraction": float(cfg["val_fraction"]), "seed": int(cfg["seed"]),
        "dtype": cfg.get("dtype", "auto"), "shard_tokens": int(float(cfg["shard_tokens"])),
        "max_documents": cfg.get("max_documents")}
    # each only when it differs from what every cache before it was made with, so their fingerprints hold
    if split_by != "documents":
        recipe["split_by"] = split_by
    if int(cfg.get("tasks") or 1) != 1:
        recipe["tasks"] = int(cfg["tasks"])
    if max_tokens is not None:
        recipe["max_tokens"] = max_tokens
    if source.kind == "pretokenized":
        recipe["eos_id"] = cfg.get("eos_id")
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def choose_dtype(requested: str, vocab_size: int) -> str:
    require(requested in ("auto", "uint16", "uint32"), f"data.dtype={requested!r}: use auto, uint16 or uint32")
    if requested == "uint16":
        require(vocab_size <= 2**16, f"data.dtype=uint16: the tokenizer's vocabulary ({vocab_size}) does not fit "
                                     f"in 16 bits; use data.dtype=uint32 or auto")
        return "uint16"
    if requested == "uint32":
        return "uint32"
    return "uint16" if vocab_size <= 2**16 else "uint32"


def make_tokenizer(cfg: dict, source: Source, seed: int, fraction: float, limit, split_by: str, tasks: int):
    from ladder.data.engine import document_key, is_validation, piece_limit

    tcfg = cfg["tokenizer"]
    tokenizer_config_signature(tcfg)
    if tcfg["kind"] == "bytes":
        return ByteTokenizer()
    if tcfg["kind"] == "hf":
        return load_hf(tcfg["name"], tcfg.get("revision"), tcfg.get("trust_remote_code", False))
    budget = int(float(tcfg["train_bytes"]))

    def training_text():  # the training split only, up to train_bytes: validation text is never seen
        seen = 0
        for piece in range(tasks):  # the pieces in order: the corpus in order
            for i, text in enumerate(documents(source, piece_limit(limit, piece, tasks), (piece, tasks))):
                if split_by == "token_range":  # each document's head (its tail is validation; cut by characters)
                    text = text[:len(text) - int(round(fraction * len(text)))]
                elif is_validation(seed, document_key(i, piece, tasks), fraction):
                    continue
                for chunk in pieces(text):  # the trainer never holds a long document whole, nor reads past its budget
                    yield chunk
                    seen += len(chunk)
                    if seen >= budget:
                        return
    return train_bpe(training_text(), int(tcfg["vocab_size"]))


def max_train_tokens(cfg: dict, source: Source, needed_tokens: int | None) -> int | None:
    """data.max_tokens: null reads the whole corpus; `auto` (the hub corpora's) reads what the ladder needs, its
    longest rung's tokens rounded up to a power of two, so ladders of similar size share one prepared corpus."""
    value = cfg.get("max_tokens")
    if value is None:
        return None
    if str(value) == "auto":
        if needed_tokens is None:
            return None
        return 2 ** math.ceil(math.log2(max(needed_tokens, 1) * 1.05))
    tokens = int(float(value))
    require(tokens > 0, f"data.max_tokens={value}: must be positive, auto (what the ladder needs) or null (all)")
    return tokens


def resolve(cfg: dict, needed_tokens: int | None = None) -> tuple[Source, dict, Path]:
    """(source, the settings that decide the content, the cache directory they name), without reading much."""
    source = resolve_source(cfg)
    val_fraction, seed = float(cfg["val_fraction"]), int(cfg["seed"])
    require(0 < val_fraction < 0.5, f"data.val_fraction={val_fraction}: must be in (0, 0.5)")
    shard_tokens = int(float(cfg["shard_tokens"]))
    require(shard_tokens > 0, f"data.shard_tokens={shard_tokens}: must be positive")
    tasks = int(cfg.get("tasks") or 1)
    require(tasks >= 1, f"data.tasks={tasks}: must be at least 1 (the pieces the corpus is tokenized in)")
    limit = cfg.get("max_documents")
    max_tokens = max_train_tokens(cfg, source, needed_tokens)
    if source.kind == "pretokenized":  # said before the fingerprint, which needs them
        StatedTokenizer(cfg)
        if source.builder in MEMMAP_FORMATS.values():
            require(limit is None and max_tokens is None, "data.max_documents, data.max_tokens: token files are "
                    "read in place, whole; set them to null (or cut the files)")
    split_by = prepared_split(cfg, source, max_tokens) or split_rule(source, limit, val_fraction)
    digest = fingerprint(cfg, source, split_by, max_tokens)
    settings = {"val_fraction": val_fraction, "seed": seed, "shard_tokens": shard_tokens, "tasks": tasks,
                "limit": limit, "max_tokens": max_tokens, "split_by": split_by, "fingerprint": digest}
    return source, settings, shard_dir(cfg, source, digest)


def shard_dir(cfg: dict, source: Source, digest: str) -> Path:
    """Where the shards of the data config whose fingerprint is `digest` live."""
    return cache_root(cfg) / f"{source.name}-{digest[:16]}"


def corpus_size(cfg: dict, needed_tokens: int | None = None) -> dict:
    """The corpus's training tokens without preparing it: the manifest's count once prepared; before that a hub
    corpus's data.max_tokens, or the size of local text files (one token per byte for the bytes tokenizer, about
    four for a BPE) or of token files."""
    source, s, directory = resolve(cfg, needed_tokens)
    keep = 1 - s["val_fraction"]
    if (directory / "manifest.json").exists():
        return {"train_tokens": int(load_manifest(directory)["tokens"]["train"]), "how": "prepared"}
    if source.kind == "hub":
        card = int(float(cfg["card_tokens"])) if cfg.get("card_tokens") else None
        if card is not None and (s["max_tokens"] is None or card < s["max_tokens"]):
            return {"train_tokens": int(card * keep), "how": "data.card_tokens, the dataset card's size"}
        if s["max_tokens"] is None:
            return {"train_tokens": None, "how": "unknown until `ladder prepare`"}
        return {"train_tokens": s["max_tokens"], "how": "data.max_tokens; the hub corpus may hold fewer"}
    files = source.files
    if s["limit"] is not None:  # data.max_documents: text files are one document each; other files, unknown
        if source.builder != "text":
            return {"train_tokens": None, "how": "unknown until `ladder prepare` (data.max_documents)"}
        files = files[:int(s["limit"])]
    size = sum(os.path.getsize(f) for f in files)
    if source.kind == "pretokenized":
        if source.builder not in MEMMAP_FORMATS.values():
            return {"train_tokens": None, "how": "unknown until `ladder prepare`"}
        tokens = 0
        for path in files:
            dtype, offset = file_layout(path, source.builder, str(cfg.get("dtype", "auto")))
            tokens += (os.path.getsize(path) - offset) // np.dtype(dtype).itemsize
        return {"train_tokens": int(tokens * keep), "how": "the token files' size"}
    per_token = 1 if cfg["tokenizer"]["kind"] == "bytes" else 4
    return {"train_tokens": int(size / per_token * keep),
            "how": f"estimated at {per_token} byte{'s' if per_token > 1 else ''} of text per token"}


def prepared(cfg: dict, needed_tokens: int | None = None) -> Path | None:
    """The finished shard directory for this data config, or None."""
    directory = resolve(cfg, needed_tokens)[2]
    return directory if (directory / "manifest.json").exists() else None


def on_cluster() -> bool:
    """Inside a Slurm job: a rung there never tokenizes (16 jobs x 8 ranks would race to); it opens what a prepare
    job made."""
    return "SLURM_JOB_ID" in os.environ


def open_data(cfg: dict, needed_tokens: int | None = None, may_prepare: bool = True, progress: bool = True) -> Path:
    """The finished shard directory; prepared here when `may_prepare`, else a one-line error naming the command."""
    directory = prepared(cfg, needed_tokens)
    if directory is not None:
        return directory
    expected = resolve(cfg, needed_tokens)[2]
    require(may_prepare, f"data={cfg.get('name')}: not prepared ({expected} has no manifest.json); run `ladder "
                         f"prepare` with the same ladder= and data.* overrides first (on Slurm: add "
                         f"hydra/launcher=slurm), or `ladder sweep`, which submits the prepare job before the rungs")
    return prepare(cfg, progress, needed_tokens)


def prepare(cfg: dict, progress: bool = True, needed_tokens: int | None = None, workers: int | None = None) -> Path:
    """The shard directory for this data config, built if missing. Returns quickly when it exists."""
    source, s, final = resolve(cfg, needed_tokens)
    if (final / "manifest.json").exists():
        return final
    check_reachable(source)
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    work = root / f".{final.name}.partial"
    check_kind(root / f".{final.name}.lock", False, "a prepare's lock")
    check_kind(work, True, "a prepare's work directory")
    with _lock(root / f".{final.name}.lock", progress):
        if (final / "manifest.json").exists():  # another process prepared it while this one waited
            return final
        _remove_stale(root)
        work.mkdir(exist_ok=True)
        started = time.time()
        if s["split_by"] == "token_range" and progress:
            print(f"data {source.name}: fewer than {min_documents(s['val_fraction'])} documents for "
                  f"data.val_fraction={s['val_fraction']}; each document's last {s['val_fraction']:.0%} of tokens "
                  f"is validation (split by token range)", file=sys.stderr, flush=True)
        workers = _workers(cfg, s["tasks"]) if workers is None else max(1, int(workers))
        tokenizer, dtype, pieces_found = _contents(cfg, source, s, work, workers, progress)
        manifest = _manifest(source, s, tokenizer, dtype, pieces_found, workers, time.time() - started)
        atomic_write_json(work / "manifest.json", manifest)
        if final.exists():  # shards nothing vouches for (no manifest): replaced
            log.warning("%s has no manifest.json (deleted, or a prepare from before manifests came last); "
                        "replacing it with the one just prepared", final)
            shutil.rmtree(final, ignore_errors=True)
        work.rename(final)
    return final


def _contents(cfg: dict, source: Source, s: dict, work: Path, workers: int, progress: bool) -> tuple:
    """(tokenizer description, dtype, each piece's shards and counts): token files are read where they lie, a
    dataset of ids is copied by the tasks, and text is tokenized by them."""
    if source.kind == "pretokenized":
        stated = StatedTokenizer(cfg)
        if source.builder in MEMMAP_FORMATS.values():
            found = views(source.files, source.builder, str(cfg.get("dtype", "auto")), s["val_fraction"],
                          stated.eos_id)
            return stated.describe(found["max_id"]), found["dtype"], [found]
        requested = str(cfg.get("dtype", "auto"))  # ids of unknown range: 32 bits unless told (the tasks check)
        dtype = "uint32" if requested == "auto" else choose_dtype(requested, 0)
        pieces_found = _tokenize(source, s, work, {"eos_id": stated.eos_id}, dtype, workers, progress)
        return stated.describe(max(p["max_id"] for p in pieces_found)), dtype, pieces_found
    description = _tokenizer(cfg, source, s, work).describe()
    dtype = choose_dtype(cfg.get("dtype", "auto"), description["vocab_size"])
    return description, dtype, _tokenize(source, s, work, description, dtype, workers, progress)


def _tokenizer(cfg: dict, source: Source, s: dict, work: Path):
    """The corpus's tokenizer, saved in the work directory first: a resumed prepare reuses the BPE it trained."""
    saved = work / "tokenizer-description.json"
    if saved.exists():
        return load_saved(check_shape(saved, read_json(saved), TOKENIZER, f"delete {work} and prepare again"), work)
    tokenizer = make_tokenizer(cfg, source, s["seed"], s["val_fraction"], s["limit"], s["split_by"], s["tasks"])
    tokenizer.save(work)
    atomic_write_json(saved, tokenizer.describe())
    return tokenizer


def _workers(cfg: dict, tasks: int) -> int:
    """data.workers: auto is the CPUs this process owns (in a Slurm job, the job's), at most one per task."""
    value = cfg.get("workers", "auto")
    workers = owned_cpus() if str(value) == "auto" else int(value)
    require(workers >= 1, f"data.workers={value}: must be at least 1, or auto (one per CPU)")
    return min(workers, tasks)


def _tokenize(source: Source, s: dict, work: Path, tokenizer: dict, dtype: str, workers: int, progress: bool) -> list:
    from ladder.data.engine import TokenizePiece, run_pieces

    step = TokenizePiece(source, work, tokenizer, dtype=dtype, shard_tokens=s["shard_tokens"],
                         seed=s["seed"], val_fraction=s["val_fraction"], split_by=s["split_by"],
                         limit=s["limit"],
                         max_train_tokens=None if s["max_tokens"] is None else math.ceil(s["max_tokens"] / s["tasks"]))
    if s["tasks"] > 1 and (files := stream_files(source)) < s["tasks"]:
        print(f"warning: data.tasks={s['tasks']} but data={source.name} has {files} file(s): each piece reads all of "
              f"it and keeps one record in {s['tasks']}; set data.tasks to at most {files}", file=sys.stderr)
    if progress:
        print(f"data {source.name}: tokenizing {s['tasks']} piece(s) with {workers} worker(s) (datatrove; its task "
              f"logs stay beside the shards, in datatrove/)", file=sys.stderr, flush=True)
    return run_pieces(step, s["tasks"], workers)


def _manifest(source: Source, s: dict, tokenizer: dict, dtype: str, piece_shards: list, workers: int,
              seconds: float) -> dict:
    def total(key, split):
        return sum(p[key][split] for p in piece_shards)

    tokens = {split: total("tokens", split) for split in ("train", "val")}
    for split in ("train", "val"):
        require(tokens[split] > 0, f"data={source.name}: the corpus gave no {split} tokens (empty corpus, or too few "
                                   f"documents for data.val_fraction={s['val_fraction']})")
    shards = [shard for split in ("train", "val") for p in piece_shards for shard in p["shards"]
              if shard["split"] == split]
    return {
        "fingerprint": s["fingerprint"], "harness_version": __version__, "format": FORMAT_VERSION,
        "source": {"name": source.name, "kind": source.kind, "path": source.hub_path or None,
                   "subset": source.subset, "split": source.split, "revision": source.revision,
                   "text_field": source.text_field, **source.signature(), "skipped_files": source.skipped_files},
        "tokenizer": tokenizer, "dtype": dtype, "seq_separator": "eos",
        "val_fraction": s["val_fraction"], "seed": s["seed"], "split_by": s["split_by"], "tasks": s["tasks"],
        "max_tokens": s["max_tokens"], "text_bytes": sum(p.get("text_bytes", 0) for p in piece_shards),
        "tokens": tokens, "documents": {split: total("documents", split) for split in ("train", "val")},
        "shards": shards, "prepare_seconds": round(seconds, 2), "workers": workers,
        "engine": f"datatrove {_version('datatrove')}",
    }


def _version(package: str) -> str:
    from importlib.metadata import version
    return version(package)


@contextmanager
def _lock(path: Path, progress: bool):
    """One prepare of a corpus at a time; the others wait for it, then find its manifest. The holder writes who it is
    into the lock file (host, pid, the process's start time): a waiter whose holder is gone while the lock stays
    held (by a process it started and left behind) says so in one line instead of waiting forever."""
    with open_no_follow(path, "a+") as handle:
        locked = True
        try:
            if not _try_lock(handle):
                if progress:
                    print(f"data: another process is preparing this corpus ({path}); waiting for it",
                          file=sys.stderr, flush=True)
                while not _try_lock(handle):
                    _refuse_orphaned(path, handle)
                    time.sleep(LOCK_POLL_S)
        except OSError as error:  # ENOLCK: a filesystem without locks; the rename below still keeps it whole
            locked = False
            log.warning("%s: cannot lock (%s); preparing without a lock", path, error)
        if locked:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                     "start": process_start(os.getpid())}) + "\n")
            handle.flush()
        yield


LOCK_POLL_S = 1.0


def _try_lock(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _refuse_orphaned(path: Path, handle) -> None:
    """A one-line error when the lock's holder (as it wrote itself down) no longer runs on this host: what holds
    the lock now is a process it started that outlived it (a datatrove worker forked before workers died with their
    parent). A holder on another host, or one that wrote nothing, is waited for."""
    handle.seek(0)
    try:
        holder = json.loads(handle.read())
        pid, host, start = int(holder["pid"]), holder["host"], holder.get("start")
    except (ValueError, KeyError, TypeError):
        return  # not written yet, or by a ladder that did not write it: wait
    if host == socket.gethostname() and not pid_alive(pid, start):
        raise LadderError(f"data: {path} is held, but the prepare that took it (pid {pid}) has died and a process "
                          f"it started still holds the lock; end that process (`fuser -v {path}` lists those that "
                          f"have the file open) and run again: the prepare resumes from its finished pieces")


def min_documents(val_fraction: float) -> int:
    """Below this many documents, a split by document would leave validation nearly empty (or empty)."""
    return math.ceil(2 / val_fraction)


def prepared_split(cfg: dict, source: Source, max_tokens: int | None) -> str | None:
    """The split rule a finished prepare of these same inputs chose: its manifest lies under the fingerprint that
    names the rule. Every rung opens the corpus; this way opening a prepared one reads no document. (Hub corpora and
    token files: their rule reads nothing, None.)"""
    if source.kind in ("hub", "pretokenized"):
        return None
    found = [rule for rule in ("documents", "token_range")
             if (shard_dir(cfg, source, fingerprint(cfg, source, rule, max_tokens)) / "manifest.json").exists()]
    return found[0] if len(found) == 1 else None


def split_rule(source: Source, limit, val_fraction: float) -> str:
    """'documents' (each document train or validation), or 'token_range' for a local corpus of few documents (one
    text file, nanoGPT's input.txt): the end of each document is validation. Hub corpora (millions of documents,
    streamed) split by document without being counted."""
    if source.kind == "hub" or (source.kind == "pretokenized" and source.builder not in MEMMAP_FORMATS.values()):
        return "documents"
    if source.kind == "pretokenized":  # token files: validation is the stream's tail (pretokenized.views)
        return "stream_tail"
    enough = min_documents(val_fraction)
    found = sum(1 for _ in itertools.islice((t for t in documents(source, limit) if t), enough))
    return "documents" if found >= enough else "token_range"


def _remove_stale(root: Path) -> None:
    """Temporary directories that prepares of earlier versions left when they died (their process is gone)."""
    for tmp in root.glob(".*.tmp-*") if root.exists() else []:
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def load_manifest(directory: str | Path) -> dict:
    """manifest.json, checked against MANIFEST: a field of another shape is one line, never a traceback in training."""
    path = Path(directory) / "manifest.json"
    manifest = read_json(path)
    if not isinstance(manifest, dict):
        manifest = {}  # said as its first missing field
    for key in ("fingerprint", "tokenizer", "dtype", "shards", "tokens"):
        if key not in manifest:
            raise LadderError(f"{directory}/manifest.json: missing {key!r}; delete the directory and prepare again")
    return check_shape(path, manifest, MANIFEST, "delete the directory and prepare again")
