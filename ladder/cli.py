"""`ladder <command> [key=value ...]`: each command composes the Hydra config tree in conf/ with your overrides.

Bad input of any kind prints one line, `error: ...`, naming the field and the fix, and exits with status 2.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import sys
from pathlib import Path

from ladder.errors import LadderError

CONF_DIR = Path(os.environ.get("LADDER_CONF", Path(__file__).resolve().parent.parent / "conf"))

# command -> (module:function, one-line help). Modules load lazily so `ladder plan` never imports torch.
COMMANDS = {
    "demo": ("ladder.commands:demo", "the main job: a tiny ladder, a fit and a checked forecast, offline on CPU"),
    "plan": ("ladder.commands:plan", "resolve a ladder into rungs and print what it will cost"),
    "prepare": ("ladder.commands:prepare", "tokenize a corpus into cached shards with a manifest"),
    "train": ("ladder.commands:train", "train one rung (resumes from its latest checkpoint)"),
    "sweep": ("ladder.commands:sweep", "launch every unfinished rung as a Hydra multirun (local or Slurm)"),
    "status": ("ladder.commands:status", "a table of the ladder's rungs: state, tokens, loss, jobs"),
    "report": ("ladder.commands:report", "one self-contained HTML page of a ladder: plan, curves, fit, forecast, backtest"),
    "fit": ("ladder.commands:fit", "fit a scaling law to a CSV or a runs directory and forecast targets"),
    "eval": ("ladder.commands:evaluate", "score a finished rung's budgets on eval tasks and corpora (eval=[...])"),
    "export": ("ladder.commands:export", "a finished rung's budget as a transformers model and tokenizer (out=DIR)"),
    "collect": ("ladder.commands:collect", "gather run directories (or a CSV, or W&B) into one tidy CSV"),
    "reproduce": ("ladder.commands:reproduce", "refit published data (chinchilla, olmo, gadre) beside the published fits"),
    "tune": ("ladder.commands:tune", "sweep the learning rate at small sizes and fit a rule: a tuned recipe YAML"),
    "design": ("ladder.commands:design", "the cheapest ladder that forecasts the target within design.error"),
}

USAGE = "usage: ladder <command> [key=value ...] [--cfg]\n\ncommands:\n" + "\n".join(
    f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()) + (
    "\n\nOverrides are Hydra's: ladder=olmo target.params=13e9 hardware.gpu=a100 format=json. "
    "--cfg prints the composed config.")


PLUGIN_OPTIONS = {"hydra/launcher": {"basic", "submitit_local", "submitit_slurm"}}


def compose_config(overrides: list[str]):
    """The composed config; a missing or misspelt key or group option becomes a one-line LadderError."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    search = [Path(p.strip().removeprefix("file://").rstrip("]")) for o in overrides
              if o.startswith("hydra.searchpath=") for p in o.split("=", 1)[1].lstrip("[").split(",") if "file://" in p]
    for override in overrides:
        _check_group_choice(override, search)
    import yaml

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as error:
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        raise LadderError(message) from None
    except yaml.YAMLError as error:  # a conf file that is not YAML (a tab, an unclosed bracket)
        mark = getattr(error, "problem_mark", None)
        where = f"{mark.name}, line {mark.line + 1}" if mark else "a config file"
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise LadderError(f"{where}: not valid YAML ({problem}); fix that line (YAML indents with spaces, never "
                          f"tabs)") from None


FILE_GROUPS = ("ladder", "recipe")  # groups that also take a file: ladder=DIR/ladder/NAME.yaml, recipe=DIR/recipe/...


def ladder_files(overrides: list[str]) -> list[str]:
    """`ladder=DIR/ladder/NAME.yaml` (a ladder file outside conf/, as `ladder design` writes it) becomes
    `hydra.searchpath=[file://DIR]` and `ladder=NAME`, so every command, and the jobs a sweep launches, compose it;
    `recipe=DIR/recipe/NAME.yaml` (as `ladder tune` writes it) likewise."""
    out, search = [], []
    for override in overrides:
        key, _, value = override.partition("=")
        if key not in FILE_GROUPS or not value.endswith((".yaml", ".yml")):
            out.append(override)
            continue
        path = Path(value).expanduser().resolve()
        if path.suffix != ".yaml":
            raise LadderError(f"{key}={value}: Hydra reads .yaml files only; rename it {path.stem}.yaml")
        if not path.is_file():
            raise LadderError(f"{key}={value}: no such file")
        if path.parent.name != key:
            raise LadderError(f"{key}={value}: a {key} file must sit in a directory named {key}/ (as conf/{key}/ "
                              f"does); move it there")
        if (CONF_DIR / key / path.name).exists():  # conf/ comes first on Hydra's search path
            raise LadderError(f"{key}={value}: {path.stem} is also a built-in {key} (conf/{key}/{path.name}), "
                              f"which would load instead; rename the file")
        search.append(f"file://{path.parent.parent}")
        out.append(f"{key}={path.stem}")
    if search:
        out.insert(0, f"hydra.searchpath=[{','.join(dict.fromkeys(search))}]")
    return out


def _check_group_choice(override: str, search: list[Path] = ()) -> None:
    key, sep, value = override.lstrip("+~").partition("=")
    group = CONF_DIR / key
    if not sep or "." in key or not group.is_dir():
        return
    options = sorted({p.stem for d in (CONF_DIR, *search) for p in (d / key).glob("*.yaml")}
                     | PLUGIN_OPTIONS.get(key, set()))
    listed = value.startswith("[") and value.endswith("]")  # several at once: eval=[hellaswag,arc_easy]
    chosen = [v.strip() for v in value[1:-1].split(",") if v.strip()] if listed else [value]
    for choice in chosen:
        if choice not in options:
            raise LadderError(f"{key}={value}: no such {key} {choice!r}; use one of {', '.join(options)} "
                              f"(files in {group})")


def run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, overrides = argv[0], ladder_files([a for a in argv[1:] if a != "--cfg"])
    if command not in COMMANDS:
        raise LadderError(f"unknown command {command!r}; use one of {', '.join(COMMANDS)}")
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
    module, function = COMMANDS[command][0].split(":")
    return getattr(importlib.import_module(module), function)(cfg, overrides) or 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except LadderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        print(f"error: disk full writing {error.filename or 'a file'}; free space and run the same command again "
              f"(a rung resumes from its last checkpoint)", file=sys.stderr)
        return 2


def print_json(data) -> None:
    from ladder.io import _json_safe
    print(json.dumps(_json_safe(data), indent=2, default=float))  # NaN as null: valid JSON


if __name__ == "__main__":
    sys.exit(main())
