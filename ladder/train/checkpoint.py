"""Checkpoints: one file each with a sha256 sidecar, written atomically; `latest` moves only after both are complete.

Loading verifies the checksum and falls back to the previous checkpoint when one is corrupt or truncated, saying so.
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import re
from pathlib import Path

import torch

from ladder.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from ladder.errors import LadderError

log = logging.getLogger("ladder.train")
_NAME = re.compile(r"^step_(\d+)(?:_(\w+))?\.pt$")


class Checkpoints:
    def __init__(self, directory: Path, keep: int = 2):
        self.directory, self.keep = Path(directory), max(1, keep)

    def save(self, state: dict, step: int, tag: str = "") -> Path:
        name = f"step_{step:08d}{'_' + tag if tag else ''}.pt"
        path = save_verified(self.directory / name, state, step=step)
        atomic_write_text(self.directory / "latest", name + "\n")
        self._prune(keep_name=name)
        return path

    def _all(self) -> list[Path]:
        found = [p for p in self.directory.glob("step_*.pt") if _NAME.match(p.name)]
        return sorted(found, key=lambda p: (int(_NAME.match(p.name).group(1)), p.stat().st_mtime_ns), reverse=True)

    def _prune(self, keep_name: str) -> None:
        for old in [p for p in self._all() if p.name != keep_name][self.keep - 1:]:
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)

    def pointed(self) -> Path | None:
        """The checkpoint `latest` names; None without one, or where it names none (not text, not a checkpoint's
        name: a torn or foreign file), said so: the newest checkpoint that verifies is used instead."""
        pointer = self.directory / "latest"
        if not pointer.exists():
            return None
        try:
            name = pointer.read_bytes().decode("utf-8").strip()
        except UnicodeDecodeError:
            name = None
        if name is None or not _NAME.match(name):
            log.warning("%s names no checkpoint (%r); using the newest one that verifies", pointer,
                        pointer.read_bytes()[:40])
            return None
        return self.directory / name

    def load_latest(self) -> dict | None:
        """The newest checkpoint that verifies, or None when there is none at all."""
        if not self.directory.exists():
            return None
        candidates = self._all()
        named = self.pointed()
        if named is not None:
            candidates = [named] + [c for c in candidates if c != named]
        for path in candidates:
            problem = verify(path)
            if problem is None:
                return safe_load(path)
            log.warning("checkpoint %s is unusable (%s); falling back to the previous one", path.name, problem)
        if candidates:
            raise LadderError(f"{self.directory}: every checkpoint is corrupt; delete them to restart the rung")
        return None


def save_verified(path: Path, state: dict, **meta) -> Path:
    """torch.save to `path` atomically, with a sidecar `.json` holding its sha256 and size."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    atomic_write_json(path.with_suffix(".json"), {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                                                  **meta})
    return path


def load_verified(path: Path) -> dict:
    """A file written by save_verified, or a one-line error when it is missing, truncated or corrupt."""
    problem = verify(path)
    if problem is not None:
        raise LadderError(f"{path}: unusable ({problem})")
    return safe_load(path)


def safe_load(path: Path) -> dict:
    """Tensors, numbers, strings and containers only (weights_only=True): a file someone sends you, with its own
    matching checksum, cannot run code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "refused"
        raise LadderError(f"{path}: holds objects a safe load refuses ({first[:160]}); it was written by an older "
                          f"ladder or by someone else: delete it (and its run directory's checkpoints) to "
                          f"retrain") from None


def verify(path: Path) -> str | None:
    if not path.exists():
        return "missing"
    try:
        meta = read_json(path.with_suffix(".json"))
    except LadderError as error:
        return f"no checksum: {error}"
    data = path.read_bytes()
    if len(data) != meta.get("bytes"):
        return f"truncated: {len(data)} of {meta.get('bytes')} bytes"
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        return "sha256 mismatch"
    return None
