"""The loss along a run, under its learning-rate schedule, for every size at once:

    L(N, t) = E + A / N^alpha + B / S(t)^beta + C N^-gamma x lr(t)

S(t) is the schedule's forward area in tokens (`lr_area_tokens`: each token weighted by its step's LR relative to
the peak; Tissue et al. 2024) and lr(t) the last step's LR relative to the peak (`lr_frac`). The first three terms
are Chinchilla's with D replaced by S: where the schedule has annealed to zero, that is all. The last is the loss a
run at LR `lr` carries above its annealed self, the SGD noise floor, which a cooldown removes: proportional to the LR,
as Tissue et al.'s annealing term and Luo et al. 2025's loss drop are at first order, with a power of N because the
ladders measured here show it growing with size. Both columns come from the training loop's own schedule code
(ladder.fit.curves), so the law forecasts a target under any schedule its recipe gives, cosine or WSD alike.

It is fitted jointly to every curve point of every rung (`collect curves=true`: the main run's evaluations and each
cooldown's end), on the shared optimiser like chinchilla. A run's points share its deviation from the law, so the
bootstrap resamples runs (the wild cluster bootstrap of `PowerLawLaw.bootstrap`), and the rolling folds that learn
the extrapolation error hold out whole sizes.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from ladder.errors import require
from ladder.fit.curves import SCHEDULE_COLUMNS
from ladder.fit.laws.base import PowerLawLaw, run_groups
from ladder.fit.powerlaw import PowerLawForm
from ladder.fit.table import Table

LR_FLOOR = 1e-9  # log(lr_frac) of a step at LR 0: the noise term is gone, not -inf


class Curve(PowerLawLaw):
    name = "curve"
    variables = ("params", "lr_area_tokens", "params")  # the third is the noise term's N
    scaling_terms = (0, 1)  # the noise term may grow with N (gamma < 0): only N and S must lower the loss
    required_columns = ("params", "tokens", "loss", *SCHEDULE_COLUMNS)
    reads_curves = True
    forecasts_curves = True
    form = PowerLawForm(("a", "b", "c"), ("alpha", "beta", "gamma"), (0, 1, 2), offset_of_term=(None, None, 3))
    default_grid = {"a": [0, 5, 10, 15, 20], "b": [0, 5, 10, 15, 20], "c": [-6, -3, 0], "alpha": [0, 0.5, 1],
                    "beta": [0, 0.5, 1], "gamma": [-0.5, 0, 0.5], "e": [-1, 0, 1]}

    def __init__(self, **options):
        options["bounds"] = {"alpha": [0, float("inf")], "beta": [0, float("inf")], "gamma": [-2, 2],
                             **(options.get("bounds") or {})}
        super().__init__(**options)
        self.run_effects_: dict[str, float] | None = None  # how one run's points leave the law together (fit)

    def _log_x(self, table: Table) -> np.ndarray:
        lr = np.maximum(np.asarray(table["lr_frac"], dtype=float), LR_FLOOR)
        return np.stack([np.log(table["params"]), np.log(table["lr_area_tokens"]), np.log(table["params"]),
                         np.log(lr)], axis=1)

    def check(self, table: Table) -> None:
        for column in SCHEDULE_COLUMNS:
            require(column in table and np.all(np.isfinite(table[column])),
                    f"{self.name}: needs each point's {column}; fit a ladder's runs with curves=true (their "
                    f"config.yaml gives the schedule), or give the column in the CSV (ladder.fit.curves)")
        require(np.all(table["lr_area_tokens"] > 0), f"{self.name}: a point before the first step (lr_area_tokens "
                                                     f"0); drop it")
        low, high = float(np.min(table["lr_frac"])), float(np.max(table["lr_frac"]))
        require(high - low > 0.1, f"{self.name}: every point has about the same LR ({low:.2g}-{high:.2g} of the peak), "
                                  f"so the annealing term cannot be told from the rest; add points from a cooldown "
                                  f"(WSD-S budgets) or from the main run")
        super().check(table)

    def fit(self, table: Table) -> "Curve":
        super().fit(table)
        residuals = np.log(table[self.target_column]) - self.log_draws(table)[0]
        self.run_effects_ = run_effects(residuals, run_groups(table), np.log(table["lr_area_tokens"]))
        return self

    def summary(self) -> dict:
        return {**super().summary(), "run_effects": self.run_effects_}

    def readable(self, theta):
        out = self.form.readable(theta)
        return {name: out[name] for name in ("E", "A", "B", "C", "alpha", "beta", "gamma")}


def run_effects(residuals: np.ndarray, groups: np.ndarray, log_area: np.ndarray) -> dict[str, float]:
    """How a run's points leave the law together, what its first evaluations say about its last
    (`ladder.fit.curves.log_covariance`):
    - level_sd: where runs end up off the law, the spread of the runs' mean log residuals beyond what the points'
      own scatter explains (one-way random effects, method of moments);
    - walk_sd: how far a run wanders from that level per e-fold of the schedule's area back from its end (a random
      walk, anchored at the end so the end's spread is the level's): early evaluations say less about the end
      than late ones. From successive residuals along each run, E[(r_{k+1} - r_k)^2] = 2 point_var + walk_var du;
    - point_sd: an evaluation's own scatter; within_sd: all of a point's scatter about its run's mean.
    Measured on scripts/bench_curves.py's prefixes (the final loss from the first 25% and 50% of a run): against a
    level alone, the OLMo ladder's errors fell from 0.60%/0.25% to 0.30%/0.20% with narrower intervals, the demo's
    held-out run went from outside its interval at 25% to inside. A walk anchored at the run's start widened the
    forecast before the run (OLMo: 4.4% to 6.9%); a slope in log tokens per run carried the law's shared shape error
    from a prefix to the end (OLMo: 0.79% from 25%, coverage 0.50 from 50%)."""
    labels = [g for g in np.unique(groups) if np.sum(groups == g) >= 2]
    if len(labels) < 2:
        spread = float(np.std(residuals))
        return {"level_sd": spread, "point_sd": spread, "walk_sd": 0.0, "within_sd": spread}
    means = np.array([residuals[groups == g].mean() for g in labels])
    sizes = np.array([np.sum(groups == g) for g in labels])
    within = sum(float(np.sum((residuals[groups == g] - m) ** 2)) for g, m in zip(labels, means))
    within_var = within / float(np.sum(sizes - 1))
    level_var = max(float(np.var(means, ddof=1)) - within_var * float(np.mean(1 / sizes)), 0.0)
    steps, squares = [], []
    for g in labels:
        order = np.argsort(log_area[groups == g])
        steps.append(np.diff(log_area[groups == g][order]))
        squares.append(np.diff(residuals[groups == g][order]) ** 2)
    steps, squares = np.concatenate(steps), np.concatenate(squares)
    (twice_point_var, walk_var), _ = nnls(np.stack([np.ones_like(steps), steps], axis=1), squares)
    return {"level_sd": float(np.sqrt(level_var)), "point_sd": float(np.sqrt(twice_point_var / 2)),
            "walk_sd": float(np.sqrt(walk_var)), "within_sd": float(np.sqrt(within_var))}
