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
