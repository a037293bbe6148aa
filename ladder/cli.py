"""`ladder <command> [key=value ...]`: each command composes the Hydra config tree in conf/ with your overrides.

Bad input of any kind prints one line, `error: ...`, naming the field and the fix, and exits with status 2.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
from pathlib import Path

from ladder.config import compose_config, configure_logging, ladder_files
from ladder.help import COMMANDS, command_help, usage
from ladder.errors import LadderError
from ladder.io import check_writable, filesystem_error

HELP = ("-h", "--help")


def run(argv: list[str]) -> int:
    if not argv or argv[0] in (*HELP, "help"):
        wanted = argv[1] if len(argv) > 1 and argv[0] == "help" else None
        if wanted is not None and wanted not in COMMANDS:
            raise LadderError(f"help {wanted}: no such command; use one of {', '.join(COMMANDS)}")
        print(command_help(wanted) if wanted else usage())
        return 0
    command = argv[0]
    if command not in COMMANDS:
        raise LadderError(f"unknown command {command!r}; use one of {', '.join(COMMANDS)}")
    if any(a in HELP for a in argv[1:]):  # before any config is composed: help works whatever else is wrong
        print(command_help(command))
        return 0
    overrides = ladder_files([a for a in argv[1:] if a != "--cfg"])
    if command == "reproduce" and overrides and "=" not in overrides[0]:
        overrides[0] = f"dataset={overrides[0]}"  # `ladder reproduce chinchilla`
    cfg = compose_config(overrides)
    runs_dir = cfg.get("runs_dir")
    if runs_dir and Path(str(runs_dir)).is_file():
        raise LadderError(f"runs_dir={runs_dir}: a file; give a directory (it is made if missing)")
    if "--cfg" in argv:
        from omegaconf import OmegaConf
        print(OmegaConf.to_yaml(cfg, resolve=True))
        return 0
    for key, path, directory in outputs(command, cfg):  # before any work: a fit is not run to be lost
        check_writable(path, key, command, directory)
    configure_logging(command)
    module, function = COMMANDS[command][0].split(":")
    return getattr(importlib.import_module(module), function)(cfg, overrides) or 0


def outputs(command: str, cfg) -> list[tuple[str, str, bool]]:
    """(key, path, whether a directory) of what `command` writes; a default `out` is checked where it would go."""
    out, runs = cfg.get("out"), cfg.get("runs_dir")
    if command in ("train", "sweep", "eval", "demo") or (command == "export" and not out):
        return [("runs_dir", runs, True)]
    if command == "collect":
        return [("out", out, False)] if out else []
    defaults = {"fit": "fits", "tune": "tunes", "design": "designs", "export": out,
                "report": Path(str(runs)) / str(cfg.ladder.name) / "report"}
    return [("out", out or defaults[command], True)] if command in defaults else []


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else None
    try:
        return run(argv)
    except LadderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `ladder plan | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
    except OSError as error:  # the filesystem's: one line naming the path (any other OSError is a bug to show)
        line = filesystem_error(error)
        if line is None:
            raise
        resumes = command in ("train", "sweep", "demo") and error.errno in (errno.ENOSPC, errno.EDQUOT)
        print(f"error: {line}, and run the same command again" + (" (a rung resumes from its last checkpoint)"
                                                                   if resumes else ""), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
