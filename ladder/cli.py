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
    if command in ("fit", "report", "tune") and cfg.get("out") and Path(str(cfg.out)).is_file():
        raise LadderError(f"out={cfg.out}: a file; `ladder {command}` writes a directory there, give another path")
    if "--cfg" in argv:
        from omegaconf import OmegaConf
        print(OmegaConf.to_yaml(cfg, resolve=True))
        return 0
    configure_logging(command)
    module, function = COMMANDS[command][0].split(":")
    return getattr(importlib.import_module(module), function)(cfg, overrides) or 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except LadderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `ladder plan | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        print(f"error: disk full writing {error.filename or 'a file'}; free space and run the same command again "
              f"(a rung resumes from its last checkpoint)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
