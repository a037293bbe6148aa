"""Predictive intervals: what one run at the target would measure, not only where the mean law lies.

A forecast's log error has three parts, treated as independent:
- parameters: the law's bootstrap draws (resampling whole runs), a confidence band for the mean law;
- noise: one run's scatter around the law (seed, data order, in-range misfit), the robust scale of the fit's
  residuals;
- extrapolation: the law's form is only approximately right, an error that grows with the distance beyond the
  largest fitted rung. Its scale is learned from the ladder itself by rolling-origin backtests: fit the sizes up to
  50, 60, ..., 90% of the log-size range, forecast the larger rows, and keep the part of each fold's squared error
  that parameters and noise do not explain, per squared e-fold of distance. Each fold's errors share one fitted law,
  so a fold is one draw of the extrapolation error, not one per row: the folds are pooled by a median weighted by
  their number of sizes (robust to a fold that fell into a wild optimum; a fold of many sizes is more like the full
  fit) and shrunk towards a prior when they are few. Since the scale rests on a handful of folds, the extrapolation
  error is drawn from a Student t with interval.prior_dof (2) + (number of folds) degrees of freedom: few folds,
  heavier tails.

The interval is the percentile interval of band draws plus noise and extrapolation draws, so chained forecasts
(two_step's accuracy, the loss at the compute-optimal point) push the same draws through their own maps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ladder.errors import LadderError, require

FOLD_FRACTIONS = (0.5, 0.6, 0.7, 0.8, 0.9)
N_ERROR_DRAWS = 4000
# An e-fold of tokens counts as an e-fold of model size: the distance is the larger of the two. Measured
# (scripts/bench_calibration.py --token-weight; docs/fitting.md): N alone, or tokens at a quarter's weight, made
# isoFLOP-designed ladders' intervals 5-10% sharper at the same coverage, but rolling folds cut by size cannot see an
# error that grows with tokens, and a target trained far longer than any rung (an overtrained model) is the usual
# case where only tokens extrapolate.
LATER_AXES_WEIGHT = 1.0


@dataclass
class IntervalOptions:
    """The `interval` config group."""
    method: str = "calibrated"  # calibrated | bootstrap (the mean law's band alone, as before)
    folds: tuple[float, ...] = FOLD_FRACTIONS
    min_fold_sizes: int = 3  # a fold fitted on fewer sizes says little about a fit on many
    fold_bootstrap: int = 100
    fold_starts: int = 64  # grid starts kept per fold: the best by the fold's own objective
    # the prior's scale and weight and the t's degrees of freedom: docs/fitting.md, "Why these settings"
    prior_kappa: float = 0.012  # log error per e-fold of extrapolation; the low end of what Chinchilla's ladder teaches
    prior_weight: float = 0.5  # in folds
    prior_dof: float = 2.0  # the t's degrees of freedom before any fold: 2 + folds in all

    @classmethod
    def from_config(cls, options: dict | None) -> "IntervalOptions":
        options = dict(options or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        require(not unknown, f"interval.{unknown[0] if unknown else ''}: not an option; use {', '.join(sorted(known))}")
        out = cls(**{**options, "folds": tuple(float(f) for f in options.get("folds", FOLD_FRACTIONS))})
        require(out.method in ("calibrated", "bootstrap"),
                f"interval.method={out.method!r}: use calibrated or bootstrap")
        require(all(0 < f < 1 for f in out.folds), f"interval.folds={list(out.folds)}: fractions in (0, 1)")
        require(out.min_fold_sizes >= 2, f"interval.min_fold_sizes={out.min_fold_sizes}: at least 2")
        require(out.prior_kappa >= 0 and out.prior_weight >= 0 and out.prior_dof > 0,
                "interval.prior_kappa and interval.prior_weight: >= 0; interval.prior_dof: > 0")
        return out


@dataclass
class ErrorModel:
    """Noise and extrapolation error of a law's log forecast, beyond its parameter uncertainty."""
    noise_sd: float
    kappa: float  # scale of the extrapolation error per e-fold of distance
    dof: float = np.inf  # of the t the extrapolation error is drawn from
    learned_kappa: float | None = None  # what the folds alone say, before the prior
    folds: list[dict] = field(default_factory=list)
    prior_kappa: float = 0.0
    prior_weight: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def parts(self, distance: np.ndarray) -> dict[str, np.ndarray]:
        """Each part's sd in log units (relative); for the t, its sd where it has one (dof > 2), else its scale."""
        t_sd = np.sqrt(self.dof / (self.dof - 2)) if self.dof > 2 else 1.0
        return {"noise": np.full_like(distance, self.noise_sd, dtype=float),
                "extrapolation": t_sd * self.kappa * distance}

    def draws(self, distance: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
        """(n, m) draws of the log error at each of m distances."""
        rng = np.random.default_rng(seed)
        noise = rng.standard_normal((n, len(distance))) * self.noise_sd
        t = rng.standard_t(self.dof, (n, 1)) if np.isfinite(self.dof) else rng.standard_normal((n, 1))
        return noise + t * self.kappa * distance[None, :]

    def to_dict(self) -> dict:
        learned = [f for f in self.folds if f.get("used")]
        return {"noise_sd": self.noise_sd, "kappa_per_efold": self.kappa, "learned_kappa_per_efold": self.learned_kappa,
                "dof": self.dof, "n_folds": len(learned),
                "prior_kappa_per_efold": self.prior_kappa, "prior_weight": self.prior_weight,
                "max_fold_distance": max((f["max_distance"] for f in learned), default=0.0), "folds": self.folds}


def distance(reach: dict[str, float], points) -> np.ndarray:
    """Extrapolation distance in e-folds: how far the farthest variable lies beyond the largest fitted value (each
    variable after the first, model size, weighted by LATER_AXES_WEIGHT). `points` is a Table or a dict of columns."""
    out = np.zeros(np.shape(np.asarray(points[next(iter(reach))], dtype=float)))
    for k, (column, largest) in enumerate(reach.items()):
        weight = 1.0 if k == 0 else LATER_AXES_WEIGHT
        out = np.maximum(out, weight * np.log(np.asarray(points[column], dtype=float) / largest))
    return np.maximum(out, 0.0)


def reach_of(table, variables) -> dict[str, float]:
    return {v: float(np.max(table[v])) for v in variables}


def noise_sd(log_residuals: np.ndarray, n_params: int) -> float:
    """Robust scale of one run's scatter: 1.4826 MAD of the log residuals, inflated for the fitted parameters."""
    r = np.asarray(log_residuals, dtype=float)
    scale = 1.4826 * np.median(np.abs(r - np.median(r)))
    return float(scale * np.sqrt(len(r) / max(len(r) - n_params, 1)))


def rolling_folds(values: np.ndarray, fractions=FOLD_FRACTIONS, min_sizes: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit rows, held-out rows) for each cutoff at `fractions` of the log range of `values` (model sizes): the fit
    takes every row at or below the cutoff. Folds with fewer than `min_sizes` sizes, or the same rows as an earlier
    fold, are dropped."""
    log_v = np.log(np.asarray(values, dtype=float))
    lo, hi = log_v.min(), log_v.max()
    out, seen = [], set()
    for fraction in fractions:
        cut = lo + fraction * (hi - lo) + 1e-9 * max(1.0, hi - lo)
        fit_rows, held = np.flatnonzero(log_v <= cut), np.flatnonzero(log_v > cut)
        key = tuple(fit_rows)
        if len(np.unique(log_v[fit_rows])) < min_sizes or held.size == 0 or key in seen:
            continue
        seen.add(key)
        out.append((fit_rows, held))
    return out


def learn_error_model(law, table, options: IntervalOptions, seed: int = 0) -> ErrorModel:
    """Rolling-origin backtests of `law` (a fitted PowerLawLaw) on its own table: noise and the extrapolation scale."""
    column = law.variables[0]  # model size for chinchilla; a kaplan law's own variable
    point = law.log_draws(table)[0]
    residual = np.log(table[law.target_column]) - point
    noise = noise_sd(residual, law.form.n_params)
    # Without a bootstrap of the full fit, the folds go without one too, so their excess carries parameter error.
    fold_bootstrap = options.fold_bootstrap if law.theta_samples_ is not None else 0
    folds, excess, weights = [], [], []
    for fit_rows, held in rolling_folds(table[column], options.folds, options.min_fold_sizes):
        train, test = table.take(fit_rows), table.take(held)
        entry = {"fit_sizes": int(len(np.unique(train[column]))), "fit_rows": int(len(fit_rows)),
                 "test_rows": int(len(held))}
        try:
            fold_law = law.fresh(screen=options.fold_starts, n_polish=1).fit(train).bootstrap(train, fold_bootstrap, seed)
        except LadderError as error:
            folds.append({**entry, "used": False, "why": str(error)})
            continue
        fold_point, _, fold_band, _ = fold_law.log_draws(test)
        band_var = np.zeros_like(fold_point) if fold_band is None else np.nanvar(fold_band, axis=0)
        fold_noise = noise_sd(np.log(train[law.target_column]) - fold_law.log_draws(train)[0], law.form.n_params)
        r = np.log(test[law.target_column]) - fold_point
        d = distance(reach_of(train, law.variables), test)
        if not np.any(d > 0):
            folds.append({**entry, "used": False, "why": "no held-out row beyond the fold's largest values"})
            continue
        kappa2 = float(np.sum(r * r - band_var - fold_noise ** 2) / np.sum(d * d))
        excess.append(kappa2)
        weights.append(entry["fit_sizes"])
        folds.append({**entry, "used": True, "max_distance": float(d.max()),
                      "median_abs_error": float(np.median(np.abs(np.expm1(r)))), "excess_kappa2": kappa2})
    n = len(excess)
    # No chi-square correction of the median (it would be / 0.455 if each fold were one Gaussian draw): the folds'
    # bands are narrower than the full fit's (fewer sizes), which already inflates their excess; with the correction
    # the intervals on simulated ladders where the law is exact came out wider still (docs/fitting.md).
    learned = max(0.0, weighted_median(excess, weights)) if n else 0.0
    weight = options.prior_weight
    kappa2 = (weight * options.prior_kappa ** 2 + n * learned) / (weight + n) if weight + n > 0 else 0.0
    warnings = []
    sizes = len(np.unique(table[column]))
    if n == 0:
        warnings.append(f"interval: {sizes} sizes leave no rolling fold of {options.min_fold_sizes}+ sizes to learn "
                        f"the extrapolation error from; it is the prior, {options.prior_kappa:.3g} per e-fold "
                        f"(interval.prior_kappa). Add sizes to learn it from the ladder")
    elif n < 3:
        warnings.append(f"interval: the extrapolation error rests on {n} rolling fold(s) (of {sizes} sizes) and the "
                        f"prior; add sizes for a scale learned from the ladder")
    return ErrorModel(noise_sd=noise, kappa=float(np.sqrt(kappa2)), dof=float(options.prior_dof + n),
                      learned_kappa=float(np.sqrt(learned)) if n else None,
                      folds=folds, prior_kappa=options.prior_kappa,
                      prior_weight=weight, warnings=warnings)


def weighted_median(values, weights) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(np.asarray(weights, dtype=float)[order])
    return float(np.asarray(values)[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def predictive(point: np.ndarray, band_draws: np.ndarray | None, error: ErrorModel | None, dist: np.ndarray,
               seed: int = 0) -> np.ndarray:
    """(n, m) predictive draws of the log value: band draws (cycled to N_ERROR_DRAWS) plus noise and extrapolation
    draws."""
    if band_draws is None:
        band_draws = point[None, :]
    if error is None:
        return band_draws
    band_draws = band_draws[np.arange(max(N_ERROR_DRAWS, len(band_draws))) % len(band_draws)]
    return band_draws + error.draws(dist, len(band_draws), seed)


def interval_score(lo, hi, actual, level: float) -> np.ndarray:
    """Gneiting & Raftery (2007): width plus 2/alpha times the miss; lower is better."""
    alpha = 1 - level
    lo, hi, actual = (np.asarray(v, dtype=float) for v in (lo, hi, actual))
    return (hi - lo) + (2 / alpha) * np.maximum(lo - actual, 0) + (2 / alpha) * np.maximum(actual - hi, 0)
