"""The run directory, the contract the stages share. Only this module names a run file or builds a run path:
training writes through it; status, collect, eval, the report, tune, the demo and the benches read through it.

  runs/<ladder>/<rung>/
    config.yaml     the fully resolved config, with the resolved rung (shape, recipe, budgets)
    version.json    git commit and dirty flag, package version, data fingerprint, torch, python, device
    identity        the hash of the rung's config the files here belong to
    metrics.jsonl   one JSON object per record, appended and flushed
    summary.json    status (running, done, failed, interrupted) and every result, rewritten atomically
    checkpoints/    see train/checkpoint.py
    budgets/        <budget>.pt: the model at each budget's end (train.save_budget_models), read by `ladder eval`
  runs/<ladder>/report/  the ladder's report page (report/)
  runs/<ladder>-heldout/<target>/  the target trained as a run of its own (`ladder demo`)
  runs/<ladder>/.sweep/
    jobs.json       rung (or prepare:<data>) -> scheduler job id, appended by every sweep
    <stamp>-<n>/    Hydra's multirun directories

A run directory and everything in it are ladder's: a symbolic link there (a lock or metrics.jsonl pointing at a file
elsewhere, a linked checkpoints/) would carry writes out of runs_dir, so a trainer or evaluator refuses it in one line
before writing (W&B's wandb/ keeps links of its own inside). runs_dir itself, or a ladder's directory, may be a link.

Torch-free, so the fit side reads runs without it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from typing import Iterator

from ladder import __version__
from ladder.errors import LadderError
from ladder.io import (NUMBER, TEXT, WHOLE, Each, atomic_write_json, atomic_write_text, check_shape, open_no_follow,
                       pid_alive, process_start, read_json, read_metrics, refuse_links)

STATUSES = ("running", "done", "failed", "interrupted")
# The shape of each run file, checked where it is read: a file that is valid JSON of another shape is one line
# naming the field, never a traceback in status, collect or the report.
RETRAIN = "restore it, or delete the run directory to retrain"
LEASE = {"host": TEXT, "pid": WHOLE, "heartbeat": NUMBER, "start?": TEXT}
SUMMARY = {
    "status": (lambda v: v in STATUSES, f"one of {', '.join(STATUSES)}"),
    "budgets": Each({"tokens": NUMBER, "flops": NUMBER, "loss?": NUMBER, "finished_at?": NUMBER,
                     "eval?": Each((lambda v: v is None or NUMBER[0](v), "a number or null"))}),
    "lease?": LEASE, "flops_per_token?": Each(NUMBER),
    **{f"{name}?": NUMBER for name in ("params", "non_embedding_params", "olmo_params", "embedding_params", "seed",
                                       "lr", "batch_tokens", "steps_done", "main_steps", "tokens_seen",
                                       "trained_tokens", "last_loss", "tokens_per_s", "mfu", "eta_s", "wall_time_s",
                                       "eval_time_s", "repeat_factor")},
    **{f"{name}?": TEXT for name in ("reason", "ladder", "rung", "size", "flops_convention", "identity",
                                     "rung_identity", "data_fingerprint", "wandb_id")}}
JOBS = Each((lambda v: isinstance(v, (str, int)) and not isinstance(v, bool), "a job id"))
# a metrics record's numbers: a diverged step's loss is logged as NaN or inf, a number all the same
RECORD = {f"{name}?": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number")
          for name in ("step", "tokens", "flops", "loss", "val_loss", "lr", "elapsed_s")}


def code_version() -> dict:
    root = Path(__file__).resolve().parents[1]  # the checkout: ladder/rundir.py -> .

    def git(*args):
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
            return out.stdout.strip() if out.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            return None
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": bool(status) if commit else None, "package_version": __version__}


def ladder_dir(runs_dir: str | Path, ladder: str) -> Path:
    return Path(runs_dir) / ladder


def report_dir(runs_dir: str | Path, ladder: str) -> Path:
    """The ladder's report page (index.html, report.md) and the fits it shows."""
    return ladder_dir(runs_dir, ladder) / "report"


def heldout_ladder(ladder: str) -> str:
    """The one-rung ladder that trains a ladder's target as a run of its own (`ladder demo`)."""
    return f"{ladder}-heldout"


def sweep_dir(runs_dir: str | Path, ladder: str) -> Path:
    """Where a ladder's sweeps keep Hydra's multirun directories and the job records."""
    return ladder_dir(runs_dir, ladder) / ".sweep"


class RunBusy(LadderError):
    """Another process holds the rung's lock: it is being trained (a sweep leaves it to that process)."""


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.metrics_path = self.path / "metrics.jsonl"
        self.summary_path = self.path / "summary.json"
        self.config_path = self.path / "config.yaml"
        self.checkpoints = self.path / "checkpoints"

    @classmethod
    def of(cls, runs_dir: str | Path, ladder: str, rung: str) -> "RunDir":
        return cls(ladder_dir(runs_dir, ladder) / rung)

    @property
    def name(self) -> str:
        return self.path.name

    @contextmanager
    def lock(self):
        """An OS lock on the run directory for as long as one process trains it: a second `ladder train` of the
        rung is refused, and the lock goes with the process however it dies."""
        self.refuse_links()
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open_no_follow(self.path / ".lock", "a+")
        locked = True
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                raise RunBusy(f"{self.path}: already being trained by {holder}; wait for it, or stop it and run "
                              f"again to resume") from None
            locked = False  # ENOLCK, EOPNOTSUPP: NFS without lockd, some parallel filesystems
            logging.getLogger("ladder.train").warning(
                "%s: this filesystem has no file locks (%s); nothing stops a second trainer of this rung",
                self.path, error.strerror)
        if locked:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            handle.flush()
        try:
            yield
        finally:
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def refuse_links(self) -> None:
        """Refuse, in one line, a run directory that is a symbolic link or holds one (see the module's docstring)."""
        refuse_links(self.path, keep=("wandb",))

    def clear(self) -> None:
        """Everything a previous run left (train.overwrite=true), except the lock this process holds."""
        for path in self.path.iterdir():
            if path.name != ".lock":
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    def remove_partial_writes(self) -> list[Path]:
        """Temp files a kill left mid-write (each as big as a checkpoint): never read, so removed on start."""
        found = [p for d in (self.checkpoints, self.path / "budgets", self.path) if d.is_dir()
                 for p in d.glob(".*.tmp")]
        for path in found:
            path.unlink(missing_ok=True)
        return found

    def budget_model(self, label: str) -> Path:
        """The weights at a budget's end (after its cooldown), for evaluating it later."""
        return self.path / "budgets" / f"{label}.pt"

    def summary(self) -> dict | None:
        """summary.json, checked against SUMMARY (None if not written)."""
        if not self.summary_path.exists():
            return None
        summary = read_json(self.summary_path)
        if not isinstance(summary, dict) or "status" not in summary:
            raise LadderError(f"{self.summary_path}: not a rung summary (a {type(summary).__name__} without "
                              f"'status'); {RETRAIN}")
        return check_shape(self.summary_path, {"budgets": {}, **summary}, SUMMARY, RETRAIN)

    def metrics(self) -> list[dict]:
        """Every record of metrics.jsonl ([] before the first), each an object whose numbers are numbers."""
        if not self.metrics_path.exists():
            return []
        records = read_metrics(self.metrics_path)
        for number, record in enumerate(records, 1):
            check_shape(f"{self.metrics_path}:{number}", record, RECORD, "truncate the file before that line")
        return records

    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.summary_path, summary)

    def claim(self, config_yaml: str, identity: str) -> None:
        """Write config.yaml, or check that a partial run here was started with the same rung identity."""
        self.path.mkdir(parents=True, exist_ok=True)
        identity_file = self.path / "identity"
        if identity_file.exists() and identity_file.read_text().strip() != identity:
            raise LadderError(f"{self.path}: holds a run of a different configuration (identity "
                              f"{identity_file.read_text().strip()[:12]} != {identity[:12]}); use another runs_dir "
                              f"or delete that directory")
        atomic_write_text(self.config_path, config_yaml)
        atomic_write_text(identity_file, identity + "\n")

    def write_version(self, data_fingerprint: str, device: str, torch_version: str) -> None:
        atomic_write_json(self.path / "version.json", {
            **code_version(), "data_fingerprint": data_fingerprint, "torch": torch_version,
            "python": sys.version.split()[0], "platform": platform.platform(), "host": socket.gethostname(),
            "device": device})


def iter_runs(directory: str | Path) -> Iterator[RunDir]:
    """Every run directory below `directory` (a runs dir, a ladder's dir or one rung's), in path order."""
    for summary in sorted(Path(directory).glob("**/summary.json")):
        yield RunDir(summary.parent)


def has_runs(directory: str | Path) -> bool:
    return Path(directory).is_dir() and next(iter_runs(directory), None) is not None


class JobRecords:
    """The sweep's jobs.json: rung (or prepare:<data directory>) -> scheduler job id, for `ladder status`."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def of(cls, runs_dir: str | Path, ladder: str) -> "JobRecords":
        return cls(sweep_dir(runs_dir, ladder) / "jobs.json")

    @classmethod
    def beside(cls, multirun_dir: str | Path) -> "JobRecords":
        """The records of the ladder one of its multirun directories (sweep_dir / <stamp>) belongs to."""
        return cls(Path(multirun_dir).parent / "jobs.json")

    def read(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        return check_shape(self.path, read_json(self.path), JOBS, "delete it (ladder status then asks no scheduler "
                                                                 "about these rungs)")

    def record(self, ids: dict[str, str]) -> None:
        atomic_write_json(self.path, {**self.read(), **ids})


LEASE_TIMEOUT_S = 1800  # a running rung on another host whose heartbeat is further than this from now is stale


def lease() -> dict:
    """Who trains a rung: the host, the pid with its start time (a pid alone names another process once reused),
    and a heartbeat the trainer renews each minute."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": process_start(os.getpid()),
            "heartbeat": round(time.time(), 1)}


def lease_alive(summary: dict, now: float | None = None) -> bool | None:
    """Whether a running rung's process is alive: on this host by its pid and start time, elsewhere by its
    heartbeat, within LEASE_TIMEOUT_S of now on either side (a heartbeat from the future, another host's clock
    ahead, goes stale too, never holds the rung forever). None where the summary has no lease (written before
    leases were)."""
    held = summary.get("lease")
    if not held:
        return None
    if held["host"] == socket.gethostname():
        return pid_alive(held["pid"], held.get("start"))
    return abs((now or time.time()) - held["heartbeat"]) < LEASE_TIMEOUT_S


class MetricsLog:
    """metrics.jsonl, appended and flushed per record; truncated back to a checkpoint's offset on resume."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = path, enabled
        self.file = open_no_follow(path, "a") if enabled else None

    def offset(self) -> int:
        return self.file.tell() if self.enabled else 0

    def truncate(self, offset: int) -> None:
        """Back to a checkpoint's offset; a log shorter than that lost records (truncate would pad it with NULs)."""
        if self.enabled:
            self.file.flush()
            size = os.path.getsize(self.path)
            if size < offset:
                raise LadderError(f"{self.path}: {size} bytes, shorter than the {offset} its checkpoint recorded "
                                  f"(records were lost); restore the file, or delete the run directory to retrain")
            self.file.truncate(offset)
            self.file.seek(offset)

    def write(self, record: dict) -> None:
        if self.enabled:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.enabled:
            self.file.close()
