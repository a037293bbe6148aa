"""Atomic file writes (temp file, fsync, rename) and strict reads of the JSON files other stages depend on: each
file's shape (check_shape, with the schema its owning module keeps) is checked where it is read, in one line.

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


def check_kind(path: str | Path, directory: bool, what: str) -> None:
    """Refuse, in one line, a file where ladder keeps a directory (`what`), or a directory where it keeps a file."""
    path = Path(path)
    if path.exists() and path.is_dir() != directory:
        raise LadderError(f"{path}: a {'file' if directory else 'directory'} where ladder keeps {what}; remove it and "
                          f"run the same command again")


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
    check_kind(path, False, "a file it writes")
    check_kind(path.parent, True, "a directory it writes into")
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
    """Every record, each a JSON object; a line that is not one (a torn write, a stray byte) is an error naming the
    line, never skipped."""
    records = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                record = None
            if not isinstance(record, dict):
                raise LadderError(f"{path}:{number}: corrupt metrics record; truncate the file before it")
            records.append(record)
    return records


# -- the shape of a JSON file: a schema is a dict of fields (a name ending in "?" may be missing or null), Each(shape)
# for a mapping of any keys, [shape] for a list of items, or a (test, "what it must be") pair for one value
class Each:
    def __init__(self, shape):
        self.shape = shape


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


NUMBER = (is_number, "a number")
WHOLE = (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number")
TEXT = (lambda v: isinstance(v, str), "text")
_MISSING = object()


def _what(shape) -> str:
    return shape[1] if isinstance(shape, tuple) else "a list" if isinstance(shape, list) else "a mapping"


def shape_error(value, shape, field: str = "") -> tuple[str, object, str] | None:
    """(the field, its value, what it must be) where `value` first differs from `shape`; None where it fits."""
    if isinstance(shape, (dict, Each)) and not isinstance(value, dict):
        return field, value, "a mapping"
    if isinstance(shape, list):
        if not isinstance(value, list):
            return field, value, "a list"
        for i, item in enumerate(value):
            if found := shape_error(item, shape[0], f"{field}[{i}]"):
                return found
        return None
    if isinstance(shape, Each):
        for key, inner in value.items():
            if found := shape_error(inner, shape.shape, f"{field}.{key}" if field else str(key)):
                return found
        return None
    if isinstance(shape, dict):
        for key, inner in shape.items():
            name = key.rstrip("?")
            where = f"{field}.{name}" if field else name
            if value.get(name) is None:
                if not key.endswith("?"):
                    return where, value.get(name, _MISSING), _what(inner)
            elif found := shape_error(value[name], inner, where):
                return found
        return None
    test, what = shape
    return None if test(value) else (field, value, what)


def check_shape(path: str | Path, value, shape, fix: str):
    """`value`, read from `path`, or a one-line error naming the file, the field and `fix`."""
    found = shape_error(value, shape)
    if found is not None:
        field, got, what = found
        shown = "missing" if got is _MISSING else json.dumps(got)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise LadderError(f"{path}: {field or 'the file'} is {shown}, not {what}; {fix}")
    return value


# -- filesystem errors: where a write cannot go, said in one line before the work, and the errors that come later
FILESYSTEM = {errno.ENOSPC: ("disk full", "free space"), errno.EDQUOT: ("disk quota exceeded", "free space"),
              errno.EROFS: ("read-only filesystem", "give a writable path"),
              errno.EFBIG: ("file too large", "raise the file size limit (ulimit -f) or write elsewhere"),
              errno.ENAMETOOLONG: ("name too long", "give a shorter path"),
              errno.EACCES: ("permission denied", "change its permissions or give another path"),
              errno.EPERM: ("not permitted", "change its permissions or give another path")}


def filesystem_error(error: OSError) -> str | None:
    """One line for an OSError the filesystem raised (None for any other): what happened, the path, the fix."""
    if error.errno not in FILESYSTEM:
        return None
    what, fix = FILESYSTEM[error.errno]
    return f"{what} ({_short(error.filename) if error.filename else 'writing a file'}); {fix}"


def check_writable(path: str | Path, key: str, command: str, directory: bool = True) -> None:
    """Before any work: whether `path` (a directory the command makes or fills, else a file it writes) can be
    written, as `key`=path in the message: a file in the way, a read-only filesystem, no permission, a name too
    long. It probes the nearest existing directory with a temporary file, and leaves nothing behind."""
    path = Path(path)
    what = "a directory" if directory else "a file"
    try:
        if path.exists() and path.is_dir() != directory:
            raise LadderError(f"{key}={path}: {'a file' if directory else 'a directory'}; `ladder {command}` writes "
                              f"{what} there, give another path")
        existing = path.absolute() if directory else path.absolute().parent
        while not existing.is_dir():
            if existing.exists() or existing.is_symlink():  # a file, or a dangling link, where a directory must be
                raise LadderError(f"{key}={path}: {existing} is not a directory; `ladder {command}` writes {what} "
                                  f"below it, give another path")
            existing = existing.parent
        limit = os.pathconf(existing, "PC_NAME_MAX")
        if any(len(part.encode()) > limit for part in path.absolute().relative_to(existing).parts):
            raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG))
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".ladder-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        what, fix = FILESYSTEM.get(error.errno, (error.strerror, "give another path"))
        raise LadderError(f"{key}={_short(path)}: cannot be written there ({what}); {fix} (nothing was "
                          f"written)") from None


def _short(path) -> str:
    """A path for a one-line message: a name of hundreds of characters is cut."""
    text = str(path)
    return text if len(text) <= 120 else text[:80] + "..." + text[-30:]
