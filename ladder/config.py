"""The configuration: conf/'s Hydra tree composed with the user's overrides, every bad key or group a one-line error.
On the ground floor: the CLI and every stage that composes a config (sweep jobs, tune, reproduce, the benches)
import it from here.
"""

from __future__ import annotations

import os
from pathlib import Path

from ladder.errors import LadderError

CONF_DIR = Path(os.environ.get("LADDER_CONF", Path(__file__).resolve().parent.parent / "conf"))

PLUGIN_OPTIONS = {"hydra/launcher": {"basic", "submitit_local", "submitit_slurm"}}


def compose_config(overrides: list[str]):
    """The composed config; a missing or misspelt key or group option becomes a one-line LadderError."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import InterpolationResolutionError, OmegaConfBaseException

    search = [Path(p.strip().removeprefix("file://").rstrip("]")) for o in overrides
              if o.startswith("hydra.searchpath=") for p in o.split("=", 1)[1].lstrip("[").split(",") if "file://" in p]
    for override in overrides:
        _check_group_choice(override, search)
    import yaml

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
        OmegaConf.to_container(cfg, resolve=True)  # every ${...} now, where a bad one is one line, not mid-command
        return cfg
    except InterpolationResolutionError as error:  # ${oc.env:UNSET}, ${no.such.key}
        reason = str(error).splitlines()[0].removeprefix("KeyError raised while resolving interpolation: ")
        raise LadderError(f"{error.full_key}: its ${{...}} cannot be resolved ({reason.strip()}); set what it names, "
                          f"or write the value itself") from None
    except (HydraException, OmegaConfBaseException) as error:
        message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
        raise LadderError(message) from None
    except UnicodeDecodeError as error:  # a file no check above named (one a ladder file's defaults pull in)
        raise LadderError(f"a config file is not UTF-8 text ({error.reason} at byte {error.start}); a config file "
                          f"is YAML text") from None
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
        if not path.exists():
            raise LadderError(f"{key}={value}: no such file")
        if not path.is_file():  # a directory, or a link to a device (/dev/zero) or a pipe: never read
            raise LadderError(f"{key}={value}: not a regular file ({path}); give a YAML file")
        if path.suffix != ".yaml":
            raise LadderError(f"{key}={value}: Hydra reads .yaml files only; rename it {path.stem}.yaml")
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
        for path in {d / key / f"{choice}.yaml" for d in (CONF_DIR, *search)}:
            if path.is_file():
                check_config_file(path)


MAX_CONFIG_VALUES = 100_000  # a ladder file holds hundreds; YAML aliases nested ten deep ("billion laughs") 10^8


def check_config_file(path: Path) -> None:
    """A config file Hydra is about to read: UTF-8 text, and no more than MAX_CONFIG_VALUES values once its YAML
    aliases are expanded (Hydra expands every one; counted here on the unexpanded node graph, in moments)."""
    import yaml

    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise LadderError(f"{path}: not UTF-8 text (byte {error.start}); a config file is YAML text") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return  # Hydra reads it next and says where (compose_config)
    sizes: dict[int, int] = {}

    def size(node) -> int:
        if id(node) not in sizes:
            sizes[id(node)] = MAX_CONFIG_VALUES + 1  # while counting: a node that holds itself never ends
            children = node.value if isinstance(node.value, list) else []
            sizes[id(node)] = 1 + sum(size(c) for pair in children for c in (pair if isinstance(pair, tuple) else
                                                                              (pair,)))
        return sizes[id(node)]
    if root is not None and size(root) > MAX_CONFIG_VALUES:
        raise LadderError(f"{path}: expands to more than {MAX_CONFIG_VALUES:,} values (YAML aliases nested in "
                          f"aliases); write the values out, or use fewer aliases")


def configure_logging(command: str) -> None:
    """One log format for every command and job: a training rung logs its INFO lines, the rest warnings only."""
    import logging
    logging.basicConfig(level=logging.INFO if command == "train" else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
