"""Corpora that are already tokenized (`data=pretokenized`), how most cluster users hold their data.

- Token files, read in place through memory maps, never copied: `.npy` (with NumPy's header, or raw as OLMo/Dolma
  write theirs), nanoGPT's `.bin` (raw), datatrove's `.ds` (raw; its `.ds.metadata` gives the token size). Documents
  are already separated by the EOS id in the stream; the validation split is the stream's last `val_fraction`.
- A `datasets` dataset with an `input_ids` column (a `save_to_disk` directory, or .parquet/.arrow/.jsonl files):
  each row a document, copied into shards by the same tasks that tokenize text (engine.py), split by document.

The user states the tokenizer (`data.tokenizer.name`, used only by evaluations that tokenize text) and the EOS id;
`ladder prepare` reads every id once, checks it against the EOS id and records the largest (the trainer checks it
against `ladder.vocab_size`), and fingerprints each file's bytes (sha256) in the manifest.
"""

from __future__ import annotations

import hashlib
import tokenize
from pathlib import Path

import numpy as np

from ladder.errors import LadderError, require

MEMMAP_FORMATS = {".npy": "npy", ".bin": "bin", ".ds": "datatrove"}
DATASETS_FORMATS = {".parquet": "parquet", ".arrow": "arrow", ".jsonl": "json", ".json": "json"}
TOKEN_DTYPES = ("uint16", "uint32")
READ_BYTES = 1 << 26


def pretokenized_format(files: list[str], path: str, requested: str) -> tuple[str, list[str]]:
    """(format, its files): a `save_to_disk` directory is `disk`; files are told by their extension."""
    if Path(path).is_dir() and (Path(path) / "dataset_info.json").exists() and (Path(path) / "state.json").exists():
        return "disk", [str(Path(path))]
    formats = {**MEMMAP_FORMATS, **DATASETS_FORMATS}
    kinds = {formats[Path(f).suffix.lower()] for f in files if Path(f).suffix.lower() in formats}
    require(kinds, f"data.path={path}: no .npy, .bin, .ds, .parquet, .arrow or .jsonl files (nor a datasets "
                   f"save_to_disk directory)")
    require(len(kinds) == 1, f"data.path={path}: mixes {sorted(kinds)} files; point it at one kind")
    kind = kinds.pop()
    require(requested in ("auto", kind), f"data.format={requested}: data.path={path} holds {kind} files; use "
                                         f"data.format=auto or {kind}")
    return kind, [f for f in files if formats.get(Path(f).suffix.lower()) == kind]


def file_layout(path: str, fmt: str, requested_dtype: str) -> tuple[str, int]:
    """(dtype, byte offset of the first id) of one token file."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if fmt == "npy" and magic == b"\x93NUMPY":
        try:  # the header is parsed, never its objects: object dtype cannot be memory-mapped, so refused here
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, SyntaxError, tokenize.TokenError, OSError) as error:
            raise LadderError(f"data.path: {path} is not a readable token .npy ({' '.join(str(error).split())[:120]}); "
                              f"write it again with numpy.save of a 1-d uint16 or uint32 array") from None
        require(array.dtype.name in TOKEN_DTYPES and array.ndim == 1 and array.dtype.byteorder in "=|<",
                f"data.path: {path} holds a {array.ndim}-d {array.dtype.str} array; token files are 1-d "
                f"little-endian uint16 or uint32")
        return array.dtype.name, int(array.offset)
    metadata = Path(f"{path}.metadata")
    if fmt == "datatrove" and metadata.exists():  # "tokenizer|token size" on its first line
        size = (metadata.read_text().splitlines() or [""])[0].rsplit("|", 1)[-1]
        require(size in ("2", "4"), f"{metadata}: its first line ends in {size!r}, not a token size (|2 or |4); "
                                    f"fix it, or delete it and set data.dtype")
        return {"2": "uint16", "4": "uint32"}[size], 0
    require(requested_dtype in TOKEN_DTYPES, f"data.dtype={requested_dtype}: {Path(path).name} is a raw token file "
                                             f"with no dtype in it; set data.dtype=uint16 (nanoGPT's GPT-2 ids) "
                                             f"or uint32 (OLMo's, vocabularies over 65536)")
    return requested_dtype, 0


def views(files: list[str], fmt: str, requested_dtype: str, val_fraction: float, eos_id: int) -> dict:
    """The token files as train and validation shards (byte ranges of the files), hashed and checked."""
    layouts = [file_layout(f, fmt, requested_dtype) for f in files]
    dtypes = {d for d, _ in layouts}
    require(len(dtypes) == 1, f"data.path: the files mix {sorted(dtypes)} ids; convert them to one dtype")
    dtype = np.dtype(dtypes.pop())
    counts = []
    for path, (_, offset) in zip(files, layouts):
        size = Path(path).stat().st_size - offset
        require(size % dtype.itemsize == 0, f"data.path: {path} is {size} bytes, not a whole number of {dtype} "
                                            f"ids; check data.dtype (or the file is truncated)")
        counts.append(size // dtype.itemsize)
    total = sum(counts)
    val_left = max(1, int(round(val_fraction * total)))  # the stream's tail, from the last file back
    shards, largest, documents = [], -1, {"train": 0, "val": 0}
    for path, (_, offset), count in reversed(list(zip(files, layouts, counts))):
        val = min(val_left, count)
        val_left -= val
        for split, start, n in (("val", count - val, val), ("train", 0, count - val)):
            if n == 0:
                continue
            digest, top, ends = scan(path, offset + start * dtype.itemsize, n, dtype, eos_id)
            largest = max(largest, top)
            documents[split] += ends
            shards.append({"path": str(Path(path).resolve()), "split": split, "offset": offset + start * dtype.itemsize,
                           "tokens": n, "bytes": n * dtype.itemsize, "file_bytes": Path(path).stat().st_size,
                           "sha256": digest})
    require(total - sum(s["tokens"] for s in shards if s["split"] == "val") > 0,
            f"data.val_fraction={val_fraction}: leaves no training tokens in {total}")
    shards.reverse()  # file order, each file's train range before its validation range
    shards.sort(key=lambda s: s["split"] != "train")
    require(documents["train"] > 0, f"data.eos_id={eos_id}: never occurs in the training ids; state the EOS id the "
                                    f"files separate documents with")
    return {"dtype": dtype.name, "shards": shards, "max_id": largest, "documents": documents,
            "tokens": {split: sum(s["tokens"] for s in shards if s["split"] == split) for split in ("train", "val")}}


def scan(path: str, offset: int, count: int, dtype: np.dtype, eos_id: int) -> tuple[str, int, int]:
    """(sha256, largest id, EOS count) of `count` ids at `offset`, read in 64 MiB blocks."""
    digest, largest, ends, left = hashlib.sha256(), -1, 0, count * dtype.itemsize
    with open(path, "rb") as f:
        f.seek(offset)
        while left:
            block = f.read(min(READ_BYTES, left))
            require(block, f"data.path: {path} ended early; it changed while being read")
            left -= len(block)
            digest.update(block)
            ids = np.frombuffer(block, dtype=dtype)
            largest = max(largest, int(ids.max()))
            ends += int(np.count_nonzero(ids == eos_id))
    return digest.hexdigest(), largest, ends


class StatedTokenizer:
    """The tokenizer the user says made the ids: named (evaluations load it to tokenize text), never run here."""

    def __init__(self, cfg: dict):
        tcfg = cfg.get("tokenizer") or {}
        require(tcfg.get("kind") == "hf" and tcfg.get("name"), "data.tokenizer.name: missing; name the tokenizer "
                "that made the ids (e.g. data.tokenizer.name=allenai/OLMo-2-1124-7B), as data=pretokenized needs")
        require(cfg.get("eos_id") is not None, "data.eos_id: missing; state the id that ends each document in the "
                                               "files (e.g. 50256 for GPT-2's, 100257 for OLMo 2's)")
        self.name, self.eos_id = str(tcfg["name"]), int(cfg["eos_id"])

    def describe(self, largest_id: int) -> dict:
        return {"kind": "hf", "name": self.name, "vocab_size": largest_id + 1, "eos_id": self.eos_id,
                "pretokenized": True}


def row_ids(row, field: str, index: int, eos_id: int) -> np.ndarray:
    """One document's ids from a `datasets` row, ending with the EOS id (added when the row lacks it)."""
    ids = row.get(field)
    require(ids is not None, f"data.ids_field={field!r}: row {index} has none; fields are {', '.join(row)}")
    ids = np.asarray(ids)
    require(ids.ndim == 1 and (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)),
            f"data.ids_field={field!r}: row {index} holds {ids.dtype} values, not token ids")
    require(ids.size == 0 or int(ids.min()) >= 0, f"data.ids_field={field!r}: row {index} has negative ids")
    if ids.size == 0 or ids[-1] != eos_id:
        ids = np.append(ids, eos_id)
    return ids
