"""Ladders simulated from a known law, where an interval's promise can be checked against the truth.

Two designs: `sizes` (each size is one run, a WSD-S run whose budgets are its rows) and `isoflop` (each size sets a
compute budget, the one where it is compute-optimal at 20 tokens per parameter, and that budget is spent by runs of
their own at `spread` times that size, as isoFLOP ladders are). The targets are one run each at 3-10x the largest size.
Scenarios add what real ladders add to the law:
- exact: the law plus Gaussian run-to-run noise;
- curved: log L bends in log N (a curvature the law's form cannot follow), so extrapolation drifts;
- undertuned: the smaller rungs' losses sit 1-4% high (hyperparameters tuned for the larger ones);
- heavy_tailed: Student-t noise (2.5 degrees of freedom) of the same standard deviation;
- correlated: the budgets of one run share most of their noise (one seed, one data order).
"""

from __future__ import annotations

import numpy as np

from ladder.errors import require
from ladder.fit.table import Table

SCENARIOS = ("exact", "curved", "undertuned", "heavy_tailed", "correlated")
DESIGNS = ("sizes", "isoflop")
EPOCH_LAW = {"E": 1.817, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}  # Besiroglu et al. 2024
CURVATURE = 0.002  # added to log L per squared e-fold of N away from the ladder's middle


def chinchilla_loss(params, tokens, law=EPOCH_LAW):
    return law["E"] + law["A"] / np.asarray(params) ** law["alpha"] + law["B"] / np.asarray(tokens) ** law["beta"]


def simulate(scenario: str = "exact", seed: int = 0, sizes=tuple(np.geomspace(2e7, 1e9, 8)),
             multiples=(0.5, 1, 2, 4, 8), noise: float = 0.005, target_scales=(3, 5, 10),
             target_multiples=(1, 2, 4), law=EPOCH_LAW, design: str = "sizes",
             spread=(0.25, 0.5, 1, 2, 4)) -> tuple[Table, Table]:
    """(ladder rows, target rows): params, tokens (multiples of 20 tokens per parameter; `isoflop`: each budget's
    compute spread over `spread` times its optimal size), flops (6ND), loss, run."""
    require(scenario in SCENARIOS, f"scenario={scenario!r}: use one of {', '.join(SCENARIOS)}")
    require(design in DESIGNS, f"design={design!r}: use one of {', '.join(DESIGNS)}")
    rng = np.random.default_rng(seed)
    sizes = np.asarray(sizes, dtype=float)
    middle = np.exp(np.mean(np.log(sizes)))

    def truth(params, tokens):
        log_loss = np.log(chinchilla_loss(params, tokens, law))
        if scenario == "curved":
            log_loss = log_loss + CURVATURE * np.log(params / middle) ** 2
        return log_loss

    def run_noise(n_runs, per_run):
        if scenario == "heavy_tailed":
            return noise * rng.standard_t(2.5, (n_runs, per_run)) / np.sqrt(2.5 / 0.5)
        own = rng.normal(0, noise, (n_runs, per_run))
        if scenario == "correlated":  # correlation 0.64 between budgets of one run, same total sd
            return 0.6 * own + 0.8 * rng.normal(0, noise, (n_runs, 1))
        return own

    if design == "sizes":
        params = np.repeat(sizes, len(multiples))
        tokens = params * 20 * np.tile(np.asarray(multiples, dtype=float), len(sizes))
        log_loss = truth(params, tokens) + run_noise(len(sizes), len(multiples)).ravel()
        runs = [f"n{size:.3g}" for size in params]
    else:  # every row a run of its own, spending its budget's compute at another size
        optimal = np.repeat(sizes, len(spread))
        params = optimal * np.tile(np.asarray(spread, dtype=float), len(sizes))
        tokens = 20 * optimal ** 2 / params
        log_loss = truth(params, tokens) + run_noise(len(params), 1).ravel()
        runs = [f"c{6 * 20 * c ** 2:.3g}-n{n:.3g}" for c, n in zip(optimal, params)]
    if scenario == "undertuned":  # each model size its own offset, on every row it has
        named = sizes if design == "sizes" else np.unique(params)
        small = named < np.sort(sizes)[len(sizes) // 2 - 1]
        offset = dict(zip(named, np.where(small, rng.uniform(0.01, 0.04, len(named)), 0.0)))
        log_loss = log_loss + np.log1p([offset[n] for n in params])
    ladder = Table({"run": runs, "params": params, "tokens": tokens, "flops": 6 * params * tokens,
                    "loss": np.exp(log_loss)})

    target_params = np.repeat(sizes.max() * np.asarray(target_scales, dtype=float), len(target_multiples))
    target_tokens = target_params * 20 * np.tile(np.asarray(target_multiples, dtype=float), len(target_scales))
    target_log = truth(target_params, target_tokens) + run_noise(len(target_params), 1).ravel()
    targets = Table({"run": [f"target{i}" for i in range(len(target_params))], "params": target_params,
                     "tokens": target_tokens, "flops": 6 * target_params * target_tokens,
                     "loss": np.exp(target_log)})
    return ladder, targets


# -- whole loss curves, under a schedule -------------------------------------------------------------------------
# The truth is not the curve law's form: the annealing gain builds up with a lag after the LR drops (Tissue et al.
# 2024's momentum annealing area), where the curve law takes it as immediate; with momentum 0 it is the law's form.
# Each step's LR comes from the training loop's schedule code (ladder.schedule.step_factors).
CURVE_TRUTH = {**EPOCH_LAW, "C": 0.25, "gamma": 0.1, "momentum": 0.99}  # the noise floor C N^-gamma at the peak LR


def curve_recipe(params: float, schedule: dict) -> dict:
    """A recipe for a size, as the recipes scale them: the batch grows with N, warmup N tokens."""
    batch = int(2 ** round(np.log2(max(1024, 0.05 * params))))
    return {"batch_tokens": batch, "warmup_steps": max(1, round(params / batch)), "schedule": schedule}


def curve_truth(params: float, recipe: dict, budget_tokens: dict[str, float], tokens, branches=None,
                law=CURVE_TRUTH) -> np.ndarray:
    """The true loss at `tokens` into a run (schedule_columns' arguments): E + A/N^alpha + B/S1^beta +
    C N^-gamma (1 - S2), S1 the schedule's forward area in tokens, S2 the annealing area with `momentum` per step,
    which reaches 1 - lr (the curve law's term) once the gain has caught up with the LR's drops."""
    from ladder.schedule import step_factors

    batch = int(recipe["batch_tokens"])
    budget_steps = {label: int(t) // batch for label, t in budget_tokens.items()}
    steps = (np.asarray(tokens, dtype=float) // batch).astype(int)
    branches = [None] * len(steps) if branches is None else list(branches)
    loss = np.zeros(len(steps))
    for i, (step, branch) in enumerate(zip(steps, branches)):
        factors = np.asarray(step_factors(budget_steps, int(recipe["warmup_steps"]), recipe["schedule"], int(step),
                                          branch))
        area = factors.sum() * batch
        drops = np.maximum(-np.diff(factors, prepend=factors[:1]), 0.0)  # warmup raises the LR: no drop
        caught_up = 1 - law["momentum"] ** np.arange(len(drops), 0, -1)  # each drop's gain, grown since it happened
        annealed = float(np.sum(drops * caught_up))
        loss[i] = (law["E"] + law["A"] / params ** law["alpha"] + law["B"] / max(area, 1.0) ** law["beta"]
                   + law["C"] * params ** -law["gamma"] * (1 - annealed))
    return loss


def simulate_curve_run(params: float, recipe: dict, budget_tokens: dict[str, float], rng, points: int = 10,
                       run_noise: float = 0.005, point_noise: float = 0.002, name: str = "") -> Table:
    """One run as collect(curves=true) gives it: `points` main-run evaluations and each budget's end (WSD-S:
    each cooldown branch's), with the run's own offset and each evaluation's scatter, and the schedule columns."""
    from ladder.fit.curves import schedule_columns
    from ladder.schedule import run_steps

    batch = int(recipe["batch_tokens"])
    wsds = recipe["schedule"]["name"] == "wsds"
    require(wsds or len(budget_tokens) == 1, "a run that decays to its end has one budget (WSD-S: one per cooldown)")
    main_end = run_steps({k: int(t) for k, t in budget_tokens.items()}, batch, recipe["schedule"], wsds).main_end * batch
    main = (np.linspace(0, main_end, points + 1)[1:] // batch * batch)[:-1 if not wsds else None]
    ends = [float(int(t) // batch * batch) for t in budget_tokens.values()]
    tokens = np.concatenate([main, ends])
    branches = [None] * len(main) + ([*budget_tokens] if wsds else [None] * len(ends))
    columns = schedule_columns(recipe, budget_tokens, tokens, branches)
    truth = curve_truth(params, recipe, budget_tokens, tokens, branches)
    loss = truth * np.exp(run_noise * rng.standard_normal() + point_noise * rng.standard_normal(len(tokens)))
    return Table({"run": [name or f"n{params:.3g}"] * len(tokens), "params": np.full(len(tokens), float(params)),
                  "tokens": tokens, "flops": 6 * params * tokens, "loss": loss,
                  "final": np.array([0] * len(main) + [1] * len(ends)), **columns})
