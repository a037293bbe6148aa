"""Corpora as streams of documents, every one read through `datasets.load_dataset`.

- `stdlib`: the embedded default: this Python's own standard library source (.py files, one document each; PSF
  licence), present wherever the harness runs, no network needed. Files that are not UTF-8 (a few encoding tests)
  are skipped and counted in the manifest.
- `local`: .txt (one document per file), .jsonl/.json and .parquet (one per row, `text_field`) files, a glob or a dir.
- `hub`: a Hugging Face dataset by name, streamed (never held in memory).
- `pretokenized`: token ids already made (pretokenized.py): token files read in place, or a `datasets` dataset with
  an input_ids column, streamed like the others.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import os
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ladder.errors import LadderError, require
from ladder.net import reachable

SOURCES = ("stdlib", "local", "hub", "pretokenized")
LOCAL_BUILDERS = {".txt": "text", ".text": "text", ".md": "text", ".py": "text", ".jsonl": "json",
                  ".json": "json", ".parquet": "parquet"}
HUB_HOST = "huggingface.co"


@dataclass
class Source:
    name: str
    kind: str
    text_field: str
    builder: str = ""  # local and stdlib: the datasets packaged builder (text, json, parquet)
    files: list[str] = field(default_factory=list)
    hub_path: str = ""
    subset: str | None = None
    split: str = "train"
    revision: str | None = None
    skipped_files: list[str] = field(default_factory=list)
    key: str = "data"  # where its config lives (data, eval.<name>): errors name the field to fix

    def signature(self) -> dict:
        """What identifies the content, cheaply: for files their paths and sizes (and mtimes, for user files)."""
        if self.kind == "hub":
            return {"hub": self.hub_path, "subset": self.subset, "split": self.split, "revision": self.revision,
                    "text_field": self.text_field}
        digest = hashlib.sha256()
        for path in self.files:
            stat = os.stat(path)
            stamp = "" if self.kind == "stdlib" else f":{stat.st_mtime_ns}"
            name = os.path.relpath(path, stdlib_root()) if self.kind == "stdlib" else os.path.abspath(path)
            digest.update(f"{name}:{stat.st_size}{stamp}\n".encode())
        out = {"files": len(self.files), "files_sha256": digest.hexdigest(), "text_field": self.text_field}
        if self.kind == "stdlib":
            out["python"] = sys.version.split()[0]
        if self.kind == "pretokenized":
            out["format"] = self.builder
        return out


@functools.cache
def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])  # sysconfig rebuilds its dict per call: a signature makes thousands


def resolve_source(cfg: dict, key: str = "data") -> Source:
    """A corpus (key=data) or an evaluation set (key=eval.<name>): the same three kinds, the same reader."""
    kind = cfg.get("source")
    require(kind in SOURCES, f"{key}.source={kind!r}: use one of {', '.join(SOURCES)}")
    text_field = str(cfg.get("text_field") or "text")
    if kind == "stdlib":
        root = stdlib_root()
        files, skipped = [], []
        for path in sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts):
            try:
                path.read_bytes().decode("utf-8")
                files.append(str(path))
            except UnicodeDecodeError:
                skipped.append(str(path.relative_to(root)))
        require(files, f"data=stdlib: no .py files under {root}; use data=local data.path=...")
        return Source(cfg["name"], kind, "text", "text", files, skipped_files=skipped)
    if kind == "local":
        path = cfg.get("path")
        require(path, f"{key}.path: missing; give a file, a directory or a glob ({key}.path=corpus/*.txt)")
        files = _expand(str(path), key)
        suffixes = {Path(f).suffix.lower() for f in files}
        unknown = suffixes - set(LOCAL_BUILDERS)
        require(not unknown, f"{key}.path={path}: unsupported file type {sorted(unknown)[0] if unknown else ''}; "
                             f"use .txt, .jsonl or .parquet")
        builders = {LOCAL_BUILDERS[s] for s in suffixes}
        require(len(builders) == 1, f"{key}.path={path}: mixes {sorted(builders)} files; point it at one kind")
        return Source(cfg["name"], kind, text_field, builders.pop(), files, key=key)
    if kind == "pretokenized":
        from ladder.data.pretokenized import pretokenized_format
        path = cfg.get("path")
        require(path, f"{key}.path: missing; give token files (.npy, .bin, .ds), a directory or a glob, or a "
                      f"datasets directory with an input_ids column")
        fmt, files = pretokenized_format(_expand(str(path), key), str(path), str(cfg.get("format") or "auto"))
        if fmt == "disk":  # a save_to_disk directory: its files fingerprint it
            return Source(cfg["name"], kind, str(cfg.get("ids_field") or "input_ids"), fmt, _expand(files[0], key),
                          hub_path=files[0], key=key)
        return Source(cfg["name"], kind, str(cfg.get("ids_field") or "input_ids"), fmt, files, key=key)
    hub_path = cfg.get("path")
    require(hub_path, f"{key}.path: missing; name the hub dataset (e.g. HuggingFaceFW/fineweb-edu)")
    return Source(cfg["name"], kind, text_field, hub_path=str(hub_path), subset=cfg.get("subset"),
                  split=str(cfg.get("split") or "train"), revision=cfg.get("revision"), key=key)


def _expand(path: str, key: str) -> list[str]:
    if os.path.isdir(path):
        files = sorted(str(p) for p in Path(path).rglob("*") if p.is_file() and not p.name.startswith("."))
    else:
        files = sorted(glob.glob(path, recursive=True))
    require(files, f"{key}.path={path}: no files match")
    return files


def hub_reachable(timeout_s: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return False
    return reachable(HUB_HOST, timeout_s=timeout_s)


def check_reachable(source: Source) -> None:
    """Fail in one line, at once, when a hub corpus cannot be streamed (datasets would retry for ~20 s)."""
    if source.kind == "hub" and not os.path.exists(source.hub_path) and not hub_reachable():
        corpus = source.key == "data"
        where = f"data={source.name}" if corpus else source.key
        fix = "data=local data.path=FILES" if corpus else f"{source.key}.source=local {source.key}.path=FILES"
        raise LadderError(f"{where}: cannot reach {HUB_HOST} to stream {source.hub_path}"
                          f"{'/' + source.subset if source.subset else ''}; connect to the network, or use {fix}")


def _open(source: Source, piece: tuple[int, int] = (0, 1)):
    """The source as a streamed `datasets` IterableDataset; piece=(index, count): that piece of it, a contiguous
    run of its files (its records dealt round-robin when it has fewer files than pieces)."""
    import datasets

    datasets.disable_progress_bars()
    with _torch_left_out(datasets.config):
        return _stream(source, piece)


@contextlib.contextmanager
def _torch_left_out(config):
    """Where torch is installed, datasets makes each stream a torch IterableDataset, importing torch (1.2 s of every
    `ladder plan` and `prepare`) for DataLoader workers the data stage never has; a process without torch stays so."""
    was = config.TORCH_AVAILABLE
    config.TORCH_AVAILABLE = was and "torch" in sys.modules
    try:
        yield
    finally:
        config.TORCH_AVAILABLE = was


def _stream(source: Source, piece: tuple[int, int]):
    import datasets
    from datasets.distributed import split_dataset_by_node

    if source.kind == "hub":
        check_reachable(source)
        revision = {} if os.path.exists(source.hub_path) else {"revision": source.revision}  # a local copy: offline
        stream = datasets.load_dataset(source.hub_path, name=source.subset, split=source.split, streaming=True,
                                       **revision)
    elif source.builder == "disk":  # datasets' save_to_disk directory, one stream shard per Arrow file
        saved = datasets.load_from_disk(source.hub_path)
        stream = saved.to_iterable_dataset(num_shards=max(1, len(saved.cache_files)))
    else:
        extra = {"sample_by": "document"} if source.builder == "text" else {}
        stream = datasets.load_dataset(source.builder, data_files=source.files, split="train", streaming=True,
                                       **extra)
    index, count = piece
    if count == 1:
        return stream
    if stream.num_shards >= count:
        return stream.shard(num_shards=count, index=index, contiguous=True)
    return split_dataset_by_node(stream, rank=index, world_size=count)  # every piece reads it all (stream_files)


def stream_files(source: Source) -> int:
    """How many files (stream shards) the source has: pieces beyond that each read the whole stream."""
    return _open(source).num_shards


def records(source: Source, limit: int | None = None, piece: tuple[int, int] = (0, 1)) -> Iterator[dict]:
    """The source's records (dicts) in a fixed order (those of one piece of it); reader errors become one line
    naming the source."""
    try:
        for i, example in enumerate(_open(source, piece)):
            if limit is not None and i >= limit:
                return
            yield example
    except UnicodeDecodeError as error:
        raise LadderError(f"{source.name}: a file is not UTF-8 text ({error.reason} at byte {error.start}); "
                          f"convert it to UTF-8 or remove it") from None
    except LadderError:
        raise
    except Exception as error:  # datasets wraps reader errors in many types; keep the first line
        if isinstance(error, StopIteration) or "StopIteration" in f"{error!r} {error.__context__!r}":
            raise LadderError(f"{source.name}: {source.key}.path holds no records (an empty file?); give files "
                              f"with text, or another {source.key}.path") from None
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        cause = error.__cause__ or error.__context__
        if isinstance(cause, UnicodeDecodeError) or "codec can't decode" in first:
            raise LadderError(f"{source.name}: a file is not UTF-8 text ({first}); convert or remove it") from None
        raise LadderError(f"{source.name}: could not read {source.key} ({type(error).__name__}: {first})") from None


def documents(source: Source, limit: int | None = None, piece: tuple[int, int] = (0, 1)) -> Iterator[str]:
    """The corpus's documents (or one piece's) in a fixed order, validated: text, UTF-8, no NUL bytes, the text
    field present."""
    for i, example in enumerate(records(source, limit, piece)):
        if source.text_field not in example:
            raise LadderError(f"{source.key}.text_field={source.text_field!r}: not in the records of {source.name}; "
                              f"fields are {', '.join(example)} (set {source.key}.text_field=NAME)")
        text = example[source.text_field]
        if text is None:
            raise LadderError(f"{source.name}: record {i} has no text (its {source.text_field!r} is null); drop "
                              f"such records, or set {source.key}.text_field to a field every record fills")
        if not isinstance(text, str):
            raise LadderError(f"{source.key}.text_field={source.text_field!r}: record {i} holds "
                              f"{type(text).__name__}, not text")
        if "\x00" in text:
            raise LadderError(f"{source.name}: document {i} contains NUL bytes (binary data?); remove it")
        yield text
