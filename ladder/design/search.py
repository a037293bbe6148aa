"""Candidate ladders -> their plans and costs -> their simulated forecast error -> the frontier and the cheapest one
that meets the goal.

A candidate is a ladder config (sizes, budgets, seeds, recipe) resolved by `make_plan` exactly as `ladder plan`
resolves it, so its GPU-hours, FLOPs and rows are the ones the written ladder YAML will have. Sizes come from the
shape rule (the largest rung as a fraction of the target, then rungs a constant factor apart below it) and from the
ladder's own sizes (its presets); budgets, seeds and recipes (WSD-S branches or one cosine run per budget) are
crossed with them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
from omegaconf import OmegaConf

from ladder.design.prior import LawPrior
from ladder.design.simulate import LadderRows, simulate
from ladder.fit.calibrate import IntervalOptions
from ladder.fit.curves import SCHEDULE_COLUMNS, schedule_columns
from ladder.errors import require
from ladder.model import ParamCount, count_params
from ladder.plan import Plan, make_plan, plan_to_dict, resolve_spec
from ladder.recipe import to_number
from ladder.report import human


@dataclass
class DesignOptions:
    """The `design` config group."""
    error: float = 0.05
    max_gpu_hours: float | None = None
    max_params: float | None = None
    params: ParamCount = ParamCount.total  # the prior law's N (design.params)
    prior: str = "epoch"
    noise: float | None = None
    kappa: float | None = None
    branch_correlation: float = 0.5
    largest: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)
    n_sizes: tuple[int, ...] = (3, 5, 8)
    size_ratio: float = 2.0
    budgets: tuple[tuple[str, ...], ...] = (("0.5xC", "1xC", "2xC"), ("1xC", "4xC"), ("1xC", "2xC", "5xC", "10xC"),
                                           ("1xC", "4xC", "16xC"))
    seeds: tuple[int, ...] = (1, 2)
    recipes: tuple[str, ...] = ()  # recipe names to compare; empty: the ladder's own
    presets: bool = True
    sims: int = 200
    check_sims: int = 400
    seed: int = 0
    name: str | None = None

    @classmethod
    def from_config(cls, options: dict | None) -> "DesignOptions":
        options = {k: v for k, v in dict(options or {}).items() if v is not None}
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        require(not unknown, f"design.{unknown[0] if unknown else ''}: not an option; use {', '.join(sorted(known))}")
        for key in ("error", "max_gpu_hours", "max_params", "noise", "kappa", "size_ratio", "branch_correlation"):
            if key in options:
                options[key] = to_number(options[key], f"design.{key}")
        for key in ("largest", "n_sizes", "seeds", "recipes", "budgets"):
            if key in options:
                require(isinstance(options[key], (list, tuple)), f"design.{key}={options[key]!r}: give a list")
        budgets = options.get("budgets", cls.budgets)
        require(all(isinstance(group, (list, tuple)) for group in budgets),
                f"design.budgets={budgets!r}: a list of budget lists, e.g. [[1xC,4xC],[1xC,2xC,5xC,10xC]]")
        for key in ("sims", "check_sims", "seed"):
            if key in options:
                options[key] = _integer(options[key], f"design.{key}")
        out = cls(**{**options,
                     "largest": tuple(to_number(v, "design.largest") for v in options.get("largest", cls.largest)),
                     "n_sizes": tuple(_integer(v, "design.n_sizes") for v in options.get("n_sizes", cls.n_sizes)),
                     "seeds": tuple(_integer(v, "design.seeds") for v in options.get("seeds", cls.seeds)),
                     "recipes": tuple(str(v) for v in options.get("recipes", ())),
                     "budgets": tuple(tuple(str(b) for b in group) for group in budgets)})
        require(0 < out.error < 1, f"design.error={out.error}: a relative error in (0, 1), e.g. 0.02 for 2%")
        require(out.max_gpu_hours is None or out.max_gpu_hours > 0, "design.max_gpu_hours: must be positive")
        require(out.max_params is None or out.max_params > 0, "design.max_params: must be positive")
        out.params = ParamCount.named(out.params, "design.params")
        require(all(0 < f <= 1 for f in out.largest), f"design.largest={list(out.largest)}: fractions of the "
                                                      f"target's params in (0, 1]")
        require(all(n >= 2 for n in out.n_sizes), f"design.n_sizes={list(out.n_sizes)}: at least 2 sizes each")
        require(out.size_ratio > 1, f"design.size_ratio={out.size_ratio}: the factor between rungs, > 1")
        require(all(s >= 1 for s in out.seeds), f"design.seeds={list(out.seeds)}: seeds per size, >= 1")
        require(all(len(group) > 0 for group in out.budgets), "design.budgets: each entry is a non-empty list")
        require(0 <= out.branch_correlation < 1, f"design.branch_correlation={out.branch_correlation}: in [0, 1)")
        require(out.sims >= 20 and out.check_sims >= 20, "design.sims and design.check_sims: at least 20")
        require(out.name is None or re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(out.name)) is not None,
                f"design.name={out.name!r}: a plain name (letters, digits, - _ .), no path separators")
        return out


def _integer(value, where: str) -> int:
    number = to_number(value, where)
    require(number == int(number), f"{where}={value!r}: must be a whole number")
    return int(number)


@dataclass
class Candidate:
    name: str  # what it is, in a few words
    recipe: str
    sizes: dict[str, dict]  # ladder.sizes entries
    budgets: list[str]
    seeds: list[int]
    plan: Plan
    rows: LadderRows
    gpu_hours: float
    cost_fraction: float  # of the target's FLOPs
    largest_params: float  # in design.params
    score: dict = field(default_factory=dict)


def candidate_ladders(cfgs: dict, options: DesignOptions, every_evaluation: bool = False) -> list[Candidate]:
    """Every candidate within design.max_params; `cfgs` maps a recipe name to the config composed with it. With
    `every_evaluation`, each candidate's rows are its runs' every evaluation (a prior of the curve law)."""
    first = next(iter(cfgs.values()))
    # sizes for the shape rule are total parameters; design.max_params bounds the law's N (design.params)
    target_params = make_plan(first).target.counts.total
    largest = sorted({f * target_params for f in options.largest})
    size_sets = [_ruled_sizes(first.ladder, top / options.size_ratio ** np.arange(k)[::-1])
                 for top in largest for k in options.n_sizes]
    if options.presets:
        size_sets.append(OmegaConf.to_container(first.ladder.sizes, resolve=True))
    out, seen = [], set()
    for recipe, cfg in cfgs.items():
        for sizes in size_sets:
            if len(sizes) < 2:
                continue
            for budgets in options.budgets:
                for n_seeds in options.seeds:
                    candidate = _resolve(cfg, recipe, sizes, list(budgets), list(range(n_seeds)), options,
                                         every_evaluation)
                    key = (recipe, tuple(sorted(candidate.rows.params.round())), tuple(budgets), n_seeds)
                    if key in seen or _too_big(candidate, options):
                        continue
                    seen.add(key)
                    out.append(candidate)
    require(out, f"design: no candidate ladder: design.max_params={options.max_params} leaves none, or the shape "
                 f"rule cannot build 2+ of the sizes below design.largest={list(options.largest)} (the vocabulary's "
                 f"embeddings outweigh them); raise design.largest or design.max_params")
    return out


def _too_big(candidate: Candidate, options: DesignOptions) -> bool:
    return options.max_params is not None and candidate.largest_params > options.max_params * 1.02


def _resolve(cfg, recipe: str, sizes: dict, budgets: list[str], seeds: list[int], options: DesignOptions,
             every_evaluation: bool) -> Candidate:
    cfg = OmegaConf.merge(cfg, {"ladder": {"sizes": None}})
    cfg = OmegaConf.merge(cfg, {"ladder": {"sizes": sizes, "budgets": budgets, "seeds": seeds}})
    plan = make_plan(cfg)
    cost = plan_to_dict(plan)
    n = sorted({r.counts.by_convention(options.params) for r in plan.rungs})
    name = (f"{len(n)} sizes {human(n[0])}-{human(n[-1])} x [{', '.join(budgets)}] x {len(seeds)} seed"
            f"{'s' if len(seeds) > 1 else ''} ({recipe})")
    return Candidate(name, recipe, sizes, budgets, seeds, plan, rows_of(plan, options.params, every_evaluation),
                     cost["ladder_gpu_hours"], cost["cost_fraction"], float(n[-1]))


def rows_of(plan: Plan, params_convention: ParamCount, every_evaluation: bool = False) -> LadderRows:
    """The results a planned ladder gives, N in `params_convention`: one row per (rung, budget), or with
    `every_evaluation` every evaluation the rung's run logs (the main run's, then each budget's end: `collect
    curves=true`'s rows), placed in its schedule."""
    if not every_evaluation:
        rows = [(rung.counts.by_convention(params_convention), tokens, rung.name, rung.seed)
                for rung in plan.rungs for tokens in rung.budgets.values()]
        return LadderRows.of(*map(list, zip(*rows)))
    rows, columns = [], {k: [] for k in SCHEDULE_COLUMNS}
    for rung in plan.rungs:
        steps, batch = rung.run_steps, rung.recipe.batch_tokens
        branching = bool(steps.forks)
        points = [(s * batch, None) for s in steps.eval_steps(rung.eval_points)]
        points += [(tokens, label if branching else None) for label, tokens in rung.budgets.items()]
        tokens, branches = zip(*points)
        for column, values in schedule_columns(rung.recipe.to_dict(), rung.budgets, tokens, branches).items():
            columns[column] += list(values)
        rows += [(rung.counts.by_convention(params_convention), t, rung.name, rung.seed) for t in tokens]
    return LadderRows.of(*map(list, zip(*rows)), schedule=columns)


def target_end_schedule(cfg, plan: Plan) -> dict[str, list[float]]:
    """The schedule columns where the target's run ends: trained under `cfg`'s `recipe` group for its tokens as one
    budget, the recipe resolved at the target's size in the recipe's own convention (recipe.params_for)."""
    from ladder.fit.curves import target_paths
    from ladder.fit.table import Table

    target = plan.target
    ends, _ = target_paths(Table({"name": [target.name], "params": [float(target.counts.by_convention(
        plan.params_for))], "tokens": [float(target.tokens)]}), OmegaConf.to_container(cfg.recipe, resolve=True),
                           target.spec.seq_len)
    return {column: [float(ends[column][0])] for column in SCHEDULE_COLUMNS}


def _ruled_sizes(lad, params: np.ndarray) -> dict[str, dict]:
    """ladder.sizes entries for the shape rule, without sizes it cannot build (below what the vocabulary's
    embeddings alone weigh, the rule's shape misses the count by more than 10%)."""
    sizes = {}
    for n in params:
        entry = {"params": float(f"{n:.3g}")}
        if abs(count_params(resolve_spec(entry, lad, "design")).total / entry["params"] - 1) <= 0.1:
            sizes[_size_name(n)] = entry
    return sizes


def _size_name(params: float) -> str:
    return "d-" + human(float(f"{params:.3g}")).lower()


def score_candidates(candidates: list[Candidate], prior: LawPrior, options: DesignOptions, level: float,
                     interval: IntervalOptions | None = None, seed: int | None = None,
                     sims: int | None = None, target_end: dict | None = None) -> list[dict]:
    """Simulate every candidate at the target (`sims` and `seed` default to design's); attach and return the
    scores. `interval` is what `ladder fit` would calibrate with: its folds and the t's degrees of freedom;
    `target_end`, the target run's schedule columns at its end (a curve-law prior)."""
    interval = interval or IntervalOptions()
    target = candidates[0].plan.target
    outcomes = simulate([c.rows for c in candidates], target.counts.by_convention(options.params), target.tokens,
                        prior, sims or options.sims, options.seed if seed is None else seed,
                        options.branch_correlation, folds=interval.folds, min_fold_sizes=interval.min_fold_sizes,
                        target_end=target_end)
    scores = [outcome.score(prior, level, prior_dof=interval.prior_dof) for outcome in outcomes]
    if seed is None and sims is None:
        for candidate, score in zip(candidates, scores):
            candidate.score = score
    return scores


def frontier(candidates: list[Candidate]) -> list[Candidate]:
    """The candidates no cheaper one beats on expected error, cheapest first."""
    out, best = [], math.inf
    for candidate in sorted(candidates, key=lambda c: (c.gpu_hours, c.score["error"])):
        if candidate.score["error"] < best:
            out.append(candidate)
            best = candidate.score["error"]
    return out


def choose(candidates: list[Candidate], options: DesignOptions) -> tuple[Candidate | None, list[Candidate]]:
    """(the cheapest candidate whose error meets the goal with 90% confidence (its quantile's upper bound), or None;
    the candidates within design.max_gpu_hours)."""
    affordable = [c for c in candidates if options.max_gpu_hours is None or c.gpu_hours <= options.max_gpu_hours]
    meeting = [c for c in affordable if c.score["error_upper"] <= options.error]
    return (min(meeting, key=lambda c: c.gpu_hours) if meeting else None), affordable
