"""The tokenize stage of `ladder prepare`, run by datatrove's executor (https://github.com/huggingface/datatrove).

The corpus is cut into `data.tasks` pieces (contiguous runs of its files, `datasets`' IterableDataset.shard, so the
pieces in order are the corpus in order). One task reads, splits, tokenizes and writes one piece to its own shards,
then `piece_NNNNN.json`; the executor runs the tasks `workers` at a time and, run again, skips the ones it recorded as
completed, so a prepare killed halfway resumes from its finished pieces. The number of tasks, not of workers, decides
the bytes written: 1 worker and 16 write the same shards.

The processes the executor forks (its workers, its Manager) inherit the corpus lock's file and would hold it after
the prepare that started them died, blocking every later prepare: on Linux each one dies with its parent
(PR_SET_PDEATHSIG), and a SIGTERM to the prepare ends them before it exits. datatrove's console log and stats go to
`datatrove/console.log` beside its task logs, never to the terminal.
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import os
import signal
import sys
import threading
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from unittest.mock import patch

import numpy as np
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.base import PipelineStep

from ladder.data.pretokenized import row_ids
from ladder.data.sources import Source, documents, records
from ladder.data.tokenizers import load_saved
from ladder.errors import LadderError, require
from ladder.io import TEXT, WHOLE, atomic_write_json, check_kind, check_shape, read_json

BATCH_DOCUMENTS = 256
PIECE = "piece_{:05d}.json"
PIECE_RECORD = {"shards": [{"path": TEXT, "split": (lambda v: v in ("train", "val"), "train or val"),
                            "tokens": WHOLE, "bytes": WHOLE, "sha256": TEXT}],
                "tokens": {"train": WHOLE, "val": WHOLE}, "documents": {"train": WHOLE, "val": WHOLE},
                "text_bytes?": WHOLE, "max_id?": WHOLE}


def is_validation(seed: int, key, fraction: float) -> bool:
    """A document's split depends only on (seed, its key): deterministic, and independent of the others."""
    h = int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "little")
    return h / 2**64 < fraction


def document_key(index: int, piece: int, tasks: int):
    """A document's index in its piece; with one piece, its index in the corpus (what every cache before pieces
    was split by, so their fingerprints hold)."""
    return index if tasks == 1 else f"{piece}/{index}"


def piece_limit(limit, piece: int, tasks: int) -> int | None:
    """data.max_documents dealt among the pieces exactly (the first documents of each piece; all of it with one)."""
    if limit is None:
        return None
    share, rest = divmod(int(limit), tasks)
    return share + (piece < rest)


class ShardWriter:
    """Appends token arrays to `<prefix>_NNN.bin` files of at most `shard_tokens` tokens, hashing as it goes."""

    def __init__(self, directory: Path, prefix: str, split: str, dtype, shard_tokens: int):
        self.directory, self.prefix, self.split = directory, prefix, split
        self.dtype, self.shard_tokens = np.dtype(dtype), shard_tokens
        self.shards: list[dict] = []
        self.file = None
        self.tokens = self.documents = 0

    def _open_next(self):
        self._close()
        path = self.directory / f"{self.prefix}_{len(self.shards):03d}.bin"
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


class TokenizePiece(PipelineStep):
    """One datatrove task: the piece `rank` of `tasks` of the corpus -> its train and validation shards."""

    name, type = "tokenize into shards", "ladder"

    def __init__(self, source: Source, directory: Path, tokenizer: dict, *, dtype: str, shard_tokens: int,
                 seed: int, val_fraction: float, split_by: str, limit: int | None, max_train_tokens: int | None):
        super().__init__()
        self.source, self.directory, self.tokenizer = source, Path(directory), tokenizer
        self.dtype, self.shard_tokens, self.seed, self.val_fraction = dtype, shard_tokens, seed, val_fraction
        self.split_by, self.limit, self.max_train_tokens = split_by, limit, max_train_tokens

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        for stale in self.directory.glob(f"*_{rank:05d}_*.bin"):  # a killed attempt at this piece
            stale.unlink()
        writers = {split: ShardWriter(self.directory, f"{split}_{rank:05d}", split, self.dtype, self.shard_tokens)
                   for split in ("train", "val")}
        if self.source.kind == "pretokenized":
            text_bytes, largest = 0, self._copy_ids(writers, rank, world_size)
        else:
            text_bytes, largest = self._tokenize(writers, rank, world_size), None
        shards = writers["train"].close() + writers["val"].close()
        self.stat_update("tokens", value=writers["train"].tokens + writers["val"].tokens)
        atomic_write_json(self.directory / PIECE.format(rank), {
            "shards": shards, "text_bytes": text_bytes, "max_id": largest,
            "tokens": {split: w.tokens for split, w in writers.items()},
            "documents": {split: w.documents for split, w in writers.items()}})

    def _tokenize(self, writers: dict, rank: int, world_size: int) -> int:
        """Text -> ids -> shards; returns the text's UTF-8 bytes."""
        tokenizer = load_saved(self.tokenizer, self.directory)
        eos = np.array([tokenizer.eos_id])
        text_bytes = 0
        limit = piece_limit(self.limit, rank, world_size)
        stream = ((i, text) for i, text in enumerate(documents(self.source, limit, (rank, world_size)))
                  if text)  # empty documents: skipped
        while batch := list(itertools.islice(stream, BATCH_DOCUMENTS)):
            indices, texts = zip(*batch)
            if self.split_by == "token_range":  # a few documents: each one's ids whole, its tail to validation
                for ids in tokenizer.encode_batch(list(texts)):
                    cut = len(ids) - int(round(self.val_fraction * len(ids)))
                    writers["train"].write(np.concatenate([ids[:cut], eos]))
                    writers["val"].write(np.concatenate([ids[cut:], eos]))
            else:  # each piece of a document written as it is encoded: no document's ids are ever held whole
                current, writer = None, None
                for i, ids in tokenizer.encode_pieces(list(texts)):
                    if i != current:
                        if current is not None:
                            writer.write(eos)
                        current = i
                        key = document_key(indices[i], rank, world_size)
                        writer = writers["val" if is_validation(self.seed, key, self.val_fraction) else "train"]
                    writer.write(ids, ends_document=False)
                if current is not None:
                    writer.write(eos)
            text_bytes += sum(len(t.encode("utf-8")) for t in texts)
            self.stat_update("documents", value=len(texts))
            if self.max_train_tokens is not None and writers["train"].tokens >= self.max_train_tokens:
                break  # this piece's share of data.max_tokens: the rest of the corpus is never read
        return text_bytes

    def _copy_ids(self, writers: dict, rank: int, world_size: int) -> int:
        """A `datasets` dataset's rows of ids -> shards, split by document; returns the largest id."""
        eos, largest = int(self.tokenizer["eos_id"]), -1
        limit = np.iinfo(self.dtype).max
        for i, row in enumerate(records(self.source, piece_limit(self.limit, rank, world_size), (rank, world_size))):
            ids = row_ids(row, self.source.text_field, i, eos)
            top = int(ids.max())
            require(top <= limit, f"data.dtype={self.dtype}: row {i} has id {top}; use data.dtype=uint32")
            largest = max(largest, top)
            key = document_key(i, rank, world_size)
            writers["val" if is_validation(self.seed, key, self.val_fraction) else "train"].write(ids)
            if self.max_train_tokens is not None and writers["train"].tokens >= self.max_train_tokens:
                break
        return largest


def run_pieces(step: TokenizePiece, tasks: int, workers: int) -> list[dict]:
    """Every piece, `workers` tasks at a time (finished ones from an earlier attempt skipped), in piece order."""
    from datatrove.utils.logging import setup_default_logger

    # fork on Linux: workers inherit the imported datasets and tokenizers, which forkserver's re-import costs ~2 s a
    # worker (2 workers on 2 cores: 1.84x one, against 1.67x); elsewhere (macOS) fork is unsafe, so forkserver
    start_method = "fork" if sys.platform == "linux" else "forkserver"
    workers = min(workers, tasks)
    # several workers: each one's tokenizer on one thread (and no warning that the fork turned its threads off);
    # patch.dict puts the environment back whole, so datatrove's DATATROVE_* of an in-process run do not outlive it
    single = {"TOKENIZERS_PARALLELISM": "false"} if workers > 1 else {}
    logs = step.directory / "datatrove"
    check_kind(logs, True, "datatrove's logs")
    logs.mkdir(parents=True, exist_ok=True)
    try:
        with patch.dict(os.environ, single), open(logs / "console.log", "a") as console, redirect_stderr(console), \
                children_die_with_us():
            # datatrove's console log (loguru on stderr) and its stats go to a file beside its task logs, not the
            # terminal: loguru's handler holds the stderr of the moment it was added, so it is added again here
            setup_default_logger()
            LocalPipelineExecutor(pipeline=[step], tasks=tasks, workers=workers, logging_dir=str(logs),
                                  start_method=start_method).run()
    finally:
        setup_default_logger()  # loguru back on this process's stderr, as datatrove set it at import
    return [read_piece(step.directory, rank) for rank in range(tasks)]


def read_piece(directory: Path, rank: int) -> dict:
    """A finished piece's record, checked against PIECE_RECORD, and its shards as it recorded them: a piece whose
    record or shards are not what it wrote is redone when its completion mark is deleted, which the error says."""
    path = directory / PIECE.format(rank)
    fix = f"delete {directory / 'datatrove' / 'completions' / f'{rank:05d}'} to redo that piece, and run again"
    piece = check_shape(path, read_json(path), PIECE_RECORD, fix)
    for shard in piece["shards"]:
        file = directory / shard["path"]
        if not file.is_file() or file.stat().st_size != shard["bytes"]:
            raise LadderError(f"{file}: missing or not the {shard['bytes']} bytes {path.name} recorded; {fix}")
    return piece


# -- the executor's processes end with the prepare that forked them ------------------------------------------------
_PR_SET_PDEATHSIG = 1
_prctl = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform == "linux" else None
_forks = {"watched": False, "parent": 0}


def _before_fork() -> None:
    _forks["parent"] = os.getpid()


def _in_child() -> None:
    if not _forks["watched"]:
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: a worker ends at once when told
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # a half-written piece is redone on resume
        if os.getppid() != _forks["parent"]:  # the parent died before the line above
            os._exit(1)


os.register_at_fork(before=_before_fork, after_in_child=_in_child)


def _end_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through the executor: its pool terminates the workers, its Manager ends


@contextmanager
def children_die_with_us():
    """While the executor runs: every process forked dies with its parent (Linux), and a SIGTERM ends the workers
    before this process exits (with status 143, as the signal's default would), so no worker outlives a prepare
    to hold the corpus lock."""
    main = threading.current_thread() is threading.main_thread()  # only the main thread may set a handler
    previous = signal.signal(signal.SIGTERM, _end_on_sigterm) if main else None
    _forks["watched"] = True
    try:
        yield
    finally:
        _forks["watched"] = False
        if main:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
