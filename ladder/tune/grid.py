"""The tune's runs as a ladder of their own: each (size, setting) is a size entry whose `recipe:` scales the ladder's
recipe, so `ladder sweep` launches them like any rungs (Hydra multirun, local or Slurm) and `ladder status` follows
them. A WSD-S recipe gives every budget of one (size, setting) from one run (its cooldown branches)."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import yaml

from ladder.errors import require
from ladder.plan import Plan, split_recipe
from ladder.recipe import to_number

# tune option -> (name tag, recipe key it scales or sets, how)
KNOBS = {"lr_multipliers": ("lr", ("lr", "base"), "scale"),
         "batch_multipliers": ("b", ("batch", "base_sequences"), "scale"),
         "warmup_multipliers": ("w", ("warmup_tokens_per_param",), "scale"),
         "beta2": ("beta2-", ("beta2",), "set")}


@dataclass
class TuneOptions:
    sizes: list[str] | None = None  # of the ladder; None: its `default_sizes` smallest
    budgets: list | None = None  # None: the ladder's
    lr_multipliers: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0, 4.0])
    batch_multipliers: list[float] = field(default_factory=lambda: [1.0])
    warmup_multipliers: list[float] = field(default_factory=lambda: [1.0])
    beta2: list[float] = field(default_factory=list)  # []: the recipe's
    default_sizes: int = 3
    window: int = 3
    noise: float = 0.005
    extend: int = 2
    rule: str = "N,D"
    name: str | None = None

    @classmethod
    def from_config(cls, cfg: dict) -> "TuneOptions":
        cfg = dict(cfg)
        options = cls(**{k: v for k, v in cfg.items() if k in cls.__dataclass_fields__})
        unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
        require(not unknown, f"tune.{unknown[0] if unknown else ''}: not a tune option; use one of "
                             f"{', '.join(cls.__dataclass_fields__)}")
        for key in ("lr_multipliers", "batch_multipliers", "warmup_multipliers", "beta2"):
            values = [to_number(v, f"tune.{key}") for v in (getattr(options, key) or [])]
            require(all(v > 0 for v in values), f"tune.{key}={values}: must be positive")
            require(len(set(values)) == len(values), f"tune.{key}={values}: has a value twice")
            setattr(options, key, sorted(values))
        require(len(options.lr_multipliers) >= 3, f"tune.lr_multipliers={options.lr_multipliers}: give at least 3 "
                                                  f"(a minimum needs a point on each side)")
        require(all(0 < v < 1 for v in options.beta2), f"tune.beta2={options.beta2}: values must be in (0, 1)")
        require(options.rule in ("N", "N,D"), f"tune.rule={options.rule!r}: use N or N,D")
        for key, least in (("window", 3), ("extend", 0), ("default_sizes", 2)):
            value = to_number(getattr(options, key), f"tune.{key}")
            require(value == int(value) and value >= least, f"tune.{key}={getattr(options, key)}: must be a whole "
                                                            f"number >= {least}")
            setattr(options, key, int(value))
        options.noise = to_number(options.noise, "tune.noise")
        require(0 < options.noise < 0.5, f"tune.noise={options.noise}: one run's relative loss noise, e.g. 0.005")
        require(options.name is None or re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(options.name)) is not None,
                f"tune.name={options.name!r}: a plain name (letters, digits, - _ .), no path separators (it names "
                f"the recipe file written)")
        return options

    def settings(self) -> list[dict]:
        """Every combination of the non-LR knobs that were given more than the recipe's value."""
        axes = {k: getattr(self, k) for k in ("batch_multipliers", "warmup_multipliers", "beta2")
                if getattr(self, k) and getattr(self, k) != [1.0] or k == "beta2" and getattr(self, k)}
        return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())] or [{}]


def tune_sizes(plan: Plan, options: TuneOptions) -> list[str]:
    """The sizes to tune: `tune.sizes`, or the ladder's smallest few (by parameters)."""
    by_size = {}
    for rung in plan.rungs:
        by_size.setdefault(rung.size, rung.counts.total)
    if options.sizes:
        for size in options.sizes:
            require(str(size) in by_size, f"tune.sizes: {size!r} is not a size of ladder {plan.ladder}; use some of "
                                          f"{', '.join(by_size)}")
        require(len(set(map(str, options.sizes))) >= 2, f"tune.sizes={list(options.sizes)}: give 2 sizes or more "
                                                       f"(a rule across sizes needs them)")
        return [str(s) for s in options.sizes]
    require(len(by_size) >= 2, f"ladder {plan.ladder} has one size; a learning-rate rule needs 2 or more: add sizes "
                               f"to the ladder (ladder.sizes)")
    return sorted(by_size, key=by_size.get)[: max(2, int(options.default_sizes))]


def run_name(size: str, lr_multiplier: float, setting: dict) -> str:
    """`tiny-14k-lr0.5x`, `tiny-14k-lr2x-b0.5x-beta2-0.99`: a plain name that is also a directory name."""
    parts = [size, f"lr{lr_multiplier:g}x"]
    for key, value in setting.items():
        tag, _, how = KNOBS[key]
        parts.append(f"{tag}{value:g}x" if how == "scale" else f"{tag}{value:g}")
    return "-".join(parts)


def size_entry(original: dict, recipe: dict, lr_multiplier: float, setting: dict, own: dict) -> dict:
    """The ladder's size entry with the recipe scaled for this run (absolute values: the entry stands alone);
    `own` is the entry's own recipe overrides, kept."""
    entry = dict(original)
    own = {k: (dict(v) if isinstance(v, dict) else v) for k, v in own.items()}
    for key, value in {"lr_multipliers": lr_multiplier, **setting}.items():
        _, path, how = KNOBS[key]
        current = recipe
        for part in path:
            current = current[part]
        new = float(f"{to_number(current, 'recipe.' + '.'.join(path)) * value:.6g}") if how == "scale" else value
        if len(path) == 2:
            own.setdefault(path[0], {})[path[1]] = new
        else:
            own[path[0]] = new
    entry["recipe"] = own
    return entry


def tune_ladder(ladder: dict, recipe: dict, sizes: list[str], grid: dict[str, list[float]], settings: list[dict],
                budgets: list, name: str) -> tuple[dict, dict]:
    """(the tune ladder's `ladder:` mapping, run name -> {size, lr_multiplier, setting})."""
    entries, runs = {}, {}
    for size in sizes:
        original, merged = split_recipe(dict(ladder["sizes"][size]), recipe, f"ladder.sizes.{size}")
        for multiplier in grid[size]:
            for setting in settings:
                run = run_name(size, multiplier, setting)
                entries[run] = size_entry(original, merged, multiplier, setting,
                                          dict(ladder["sizes"][size]).get("recipe") or {})
                runs[run] = {"size": size, "lr_multiplier": multiplier, "setting": setting}
    body = {key: ladder[key] for key in ("vocab_size", "seq_len", "tie_embeddings", "params_convention",
                                         "shape_rule") if key in ladder}
    body.update(name=name, sizes=entries, budgets=list(budgets), seeds=[0])
    return body, runs


def ladder_file(body: dict, target: dict, recipe_name: str, comment: str) -> str:
    head = ["# @package _global_", f"# Written by `ladder tune`: {comment}",
            "# Each size entry's recipe: scales the ladder's recipe for one point of the tune's grid."]
    defaults = {"defaults": [{"override /recipe": recipe_name}]}
    return "\n".join(head) + "\n" + yaml.safe_dump(defaults, sort_keys=False) + yaml.safe_dump(
        {"ladder": body, "target": target}, sort_keys=False)
