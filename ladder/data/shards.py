"""The prepared corpus as memory-mapped shards, and the stateless sampler that reads it.

Batches are a pure function of (seed, step, rank, world_size): resuming or changing the number of ranks needs no
loader state. The training split is cut into windows of seq_len + 1 tokens; each epoch visits every window once in
an order seeded by (seed, epoch); the global batch of a step is the next `batch_sequences` windows of that order,
split into equal, disjoint shares across ranks.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ladder.data.prepare import load_manifest
from ladder.errors import LadderError, require


VERIFY_FULL_BYTES = 8 << 30  # data.verify=auto hashes every shard up to this much data; above, sizes only


class TokenData:
    """A prepared corpus: its shards (files ladder wrote, or byte ranges of a pretokenized corpus's own files) as
    read-only memory maps, checked against the manifest first."""

    def __init__(self, directory: str | Path, verify: bool | str = True):
        self.directory = Path(directory)
        self.manifest = load_manifest(self.directory)
        self.splits: dict[str, list[np.ndarray]] = {"train": [], "val": []}
        shards = self.manifest["shards"]
        if str(verify) == "auto":
            verify = sum(s["bytes"] for s in shards) <= VERIFY_FULL_BYTES
        for shard in shards:
            path = self.directory / shard["path"]  # a pretokenized corpus's files are absolute paths
            offset = int(shard.get("offset", 0))
            if not path.exists() or path.stat().st_size != shard.get("file_bytes", shard["bytes"]):
                raise LadderError(f"{path}: missing or truncated (expected {shard.get('file_bytes', shard['bytes'])} "
                                  f"bytes); delete {self.directory} and run `ladder prepare` again")
            if verify:
                digest, left = hashlib.sha256(), shard["bytes"]
                with open(path, "rb") as f:
                    f.seek(offset)
                    while left and (chunk := f.read(min(1 << 24, left))):
                        digest.update(chunk)
                        left -= len(chunk)
                if digest.hexdigest() != shard["sha256"]:
                    raise LadderError(f"{path}: sha256 mismatch, the shard is corrupted; delete {self.directory} "
                                      f"and run `ladder prepare` again")
            self.splits[shard["split"]].append(np.memmap(path, dtype=self.manifest["dtype"], mode="r", offset=offset,
                                                         shape=(int(shard["tokens"]),)))

    @property
    def fingerprint(self) -> str:
        return self.manifest["fingerprint"]

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["tokenizer"]["vocab_size"])

    def tokens(self, split: str) -> int:
        return int(self.manifest["tokens"][split])

    def validation_windows(self, seq_len: int, max_tokens: int) -> torch.Tensor:
        """The fixed held-out set: consecutive windows from the start of the validation split, the same for every
        rung of a ladder (same manifest, same seq_len)."""
        rows, need = [], max(1, max_tokens // seq_len)
        for shard in self.splits["val"]:
            for start in range(0, len(shard) - seq_len, seq_len):
                rows.append(np.asarray(shard[start:start + seq_len + 1], dtype=np.int64))
                if len(rows) == need:
                    return torch.from_numpy(np.stack(rows))
        require(rows, f"{self.directory}: the validation split is shorter than one sequence of {seq_len}; "
                      f"raise data.val_fraction")
        return torch.from_numpy(np.stack(rows))


class Sampler:
    def __init__(self, data: TokenData, seq_len: int, batch_sequences: int, seed: int):
        self.seq_len, self.batch_sequences, self.seed = seq_len, batch_sequences, seed
        self.shards = data.splits["train"]
        counts = np.array([max(0, (len(s) - 1) // seq_len) for s in self.shards])
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        self.windows = int(self.starts[-1])
        require(self.windows >= batch_sequences,
                f"{data.directory}: {self.windows} training windows of {seq_len} tokens, fewer than one batch "
                f"({batch_sequences}); use a larger corpus or a smaller batch")

    @property
    def epoch_tokens(self) -> int:
        return self.windows * self.seq_len

    def repeat_factor(self, tokens: int) -> float:
        """How many times a run of `tokens` tokens reads the training data (> 1: repeated epochs)."""
        return tokens / self.epoch_tokens

    @lru_cache(maxsize=4)
    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.windows)

    def window_ids(self, step: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
        require(self.batch_sequences % world_size == 0,
                f"batch of {self.batch_sequences} sequences does not split over {world_size} ranks; make the "
                f"recipe's batch a multiple of the world size")
        share = self.batch_sequences // world_size
        positions = step * self.batch_sequences + rank * share + np.arange(share)
        epochs, within = np.divmod(positions, self.windows)
        return np.array([self._order(int(e))[w] for e, w in zip(epochs, within)])

    def step_windows(self, step: int, rank: int = 0, world_size: int = 1) -> torch.Tensor:
        """This rank's windows of seq_len + 1 tokens for `step`: [batch_sequences / world_size, seq_len + 1] int64,
        one contiguous tensor (pinned and copied to a GPU whole)."""
        rows = []
        for window in self.window_ids(step, rank, world_size):
            shard = int(np.searchsorted(self.starts, window, side="right") - 1)
            start = (int(window) - int(self.starts[shard])) * self.seq_len
            rows.append(np.asarray(self.shards[shard][start:start + self.seq_len + 1], dtype=np.int64))
        return torch.from_numpy(np.stack(rows))

    def batch(self, step: int, rank: int = 0, world_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets), each [batch_sequences / world_size, seq_len] int64."""
        tokens = self.step_windows(step, rank, world_size)
        return tokens[:, :-1], tokens[:, 1:]
