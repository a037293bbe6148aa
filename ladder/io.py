"""Atomic file writes (temp file, fsync, rename) and strict reads of the JSON files other stages depend on."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from ladder.errors import LadderError


_UMASK = os.umask(0)
os.umask(_UMASK)


def pid_alive(pid: int) -> bool:
    """Whether a process of this id runs on this host (one we may not signal is alive too)."""
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are for everyone the umask allows
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf; null says "no value"
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        return _json_safe(value.item())
    return value


def atomic_write_json(path: str | Path, data) -> None:
    atomic_write_text(path, json.dumps(_json_safe(data), indent=2) + "\n")


def read_json(path: str | Path) -> dict:
    """A JSON file, or a one-line error naming it: a corrupt file is never silently used."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise LadderError(f"{path}: not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LadderError(f"{path}: corrupt JSON ({error}); delete or restore it") from None


def read_metrics(path: Path) -> list[dict]:
    """Every record; a line that is not JSON (a torn write) is an error naming the line, never skipped."""
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise LadderError(f"{path}:{number}: corrupt metrics record; truncate the file before it") from None
    return records
