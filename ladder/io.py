"""Atomic file writes (temp file, fsync, rename) and strict reads of the JSON files other stages depend on.

ladder never writes through a symbolic link: an atomic write refuses a destination that is one, files kept open
(locks, logs) are opened with O_NOFOLLOW, and a directory ladder owns whole (a run directory) is checked for links
before it is written (refuse_links); each refusal is one line naming the link.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from pathlib import Path

from ladder.errors import LadderError


_UMASK = os.umask(0)
os.umask(_UMASK)


def process_start(pid: int) -> str | None:
    """When process `pid` started, in the kernel's clock ticks since boot (Linux's /proc/<pid>/stat), or None where
    that is unknown. With the pid it names one process: a pid alone names another once the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the fields after the command name start at field 3


def pid_alive(pid: int, start: str | None = None) -> bool:
    """Whether a process of this id runs on this host (one we may not signal is alive too); given the `start` that
    process_start() recorded, whether it is still that process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return start is None or process_start(pid) in (None, start)


def link_refused(path: str | Path) -> LadderError:
    try:
        target = f" (to {os.readlink(path)})"
    except OSError:
        target = ""
    return LadderError(f"{path}: is a symbolic link{target}; ladder never writes through links: remove it")


def refuse_link(path: str | Path) -> None:
    if os.path.islink(path):
        raise link_refused(path)


def refuse_links(directory: str | Path, keep: tuple[str, ...] = ()) -> None:
    """Refuse `directory`, or anything below it, being a symbolic link (`keep`: directories at its top that belong
    to a tool with links of its own inside: not looked into)."""
    top = os.fspath(directory)
    refuse_link(top)
    for parent, dirs, files in os.walk(top):  # a linked directory is listed, never entered
        for name in dirs + files:
            refuse_link(os.path.join(parent, name))
        if parent == top:
            dirs[:] = [d for d in dirs if d not in keep]


def open_no_follow(path: str | Path, mode: str = "a"):
    """open(path, mode) that refuses a symbolic link at `path` in one line: O_NOFOLLOW leaves no moment between a
    check and the open in which a link could be put there."""
    def opener(name, flags):
        return os.open(name, flags | os.O_NOFOLLOW, 0o666)
    try:
        return open(path, mode, opener=opener)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):  # EMLINK: the BSDs
            raise link_refused(path) from None
        raise


def temp_dir_beside(path: str | Path) -> Path:
    """A new, empty, hidden directory beside `path` (its name unique), with the permissions mkdir gives: a whole
    directory is built there and renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    made = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    os.chmod(made, 0o777 & ~_UMASK)  # mkdtemp makes 0700
    return made


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    refuse_link(path)  # the rename would replace a link, not write through it; refused all the same, never dropped
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
