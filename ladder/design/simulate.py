"""The expected forecast error of a candidate ladder, by simulation: what fitting it would give, many times over.

Each simulation draws a "true" law from the prior. A candidate's rows get that law plus one run's noise (the budgets
of one WSD-S run share part of it: one seed, one data order); the candidate is fitted with the objective and the
batched L-BFGS users get (`ladder fit` runs it from a grid of starts and polishes with scipy; here every problem
starts from the prior's mean, which is where the grid's best start lands when the data identify the law,
tests/test_design.py checks the two agree); the fit's forecast at the target is scored against what one run there
would measure: the true law, plus its own noise, plus the law's misfit beyond the ladder, drawn as the error model
says it grows, `kappa` per e-fold of distance past the ladder's largest N and D (ladder/fit/calibrate.py). A
simulation cannot teach more about that misfit than the backtests did; it says how it trades against noise and the
fit's own error for each candidate.

With a prior of the curve law (law=curve), a candidate's rows are every evaluation its runs will log (the main run's
and each cooldown's end, placed by the recipe's schedule as `collect curves=true` places them), and a run's
evaluations share part of their noise (the prior's `run_share`); the forecast scored is the target run's end.

Simulations share their random numbers across candidates (one truth, one target run, one misfit per simulation; one
noise draw per (size, tokens, seed) row and per run, keyed by what the row is), so candidates are compared on the
same draws: a candidate with an extra rung sees the same noise on the rows it shares with one without.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from ladder.design.prior import LawPrior, unfitted_law
from ladder.errors import require
from ladder.fit.calibrate import FOLD_FRACTIONS, distance, noise_sd, reach_of, rolling_folds
from ladder.fit.curves import SCHEDULE_COLUMNS
from ladder.fit.optimize import lbfgs_batch
from ladder.fit.table import Table

MAX_PROBLEMS = 8192  # problems fitted at once: memory stays flat for any number of candidates


@dataclass
class LadderRows:
    """A ladder as the results its runs give: the law's N and D of each row and the run it comes from; for the curve
    law, every evaluation with its place in the schedule."""
    params: np.ndarray
    tokens: np.ndarray
    run: np.ndarray  # labels: the budgets of one WSD-S run share one; seeds are runs of their own
    seed: np.ndarray  # the row's seed, which tells replicate rows apart
    schedule: dict[str, np.ndarray] | None = None  # lr_area_tokens and lr_frac of each row (ladder.fit.curves)

    @classmethod
    def of(cls, params, tokens, run=None, seed=None, schedule=None) -> "LadderRows":
        params, tokens = np.asarray(params, dtype=float), np.asarray(tokens, dtype=float)
        run = np.arange(len(params)).astype(str) if run is None else np.asarray(run).astype(str)
        seed = np.zeros(len(params), dtype=int) if seed is None else np.asarray(seed, dtype=int)
        schedule = None if schedule is None else {k: np.asarray(schedule[k], dtype=float) for k in SCHEDULE_COLUMNS}
        return cls(params, tokens, run, seed, schedule)

    def table(self) -> Table:
        return Table({"params": self.params, "tokens": self.tokens, **(self.schedule or {})})

    def __len__(self) -> int:
        return len(self.params)


@dataclass
class Outcome:
    """One candidate's simulated forecasts at each of m targets."""
    log_error: np.ndarray  # (sims, m) log forecast - log of what one run at the target measures; inf: fit failed
    band_sd: np.ndarray  # (m,) robust sd of the fit's log forecast around the true law: parameter error
    distance: np.ndarray  # (m,) e-folds beyond the ladder's largest N and D
    n_folds: int  # rolling folds `ladder fit` would learn the extrapolation scale from

    def abs_error(self) -> np.ndarray:
        """(sims, m) relative |error| of the forecast."""
        with np.errstate(over="ignore", invalid="ignore"):
            return np.where(np.isfinite(self.log_error), np.abs(np.expm1(self.log_error)), np.inf)

    def score(self, prior: LawPrior, level: float, target: int = 0, seed: int = 0, prior_dof: float = 2.0) -> dict:
        """At one target: the `level` quantile of |error| (the goal's measure) with an upper bound, the median,
        the width of the predictive interval users would get and how often it held the target run's value."""
        errors = self.abs_error()[:, target]
        n = len(errors)
        ordered = np.sort(errors)
        # one-sided 90% upper confidence bound on the quantile from n draws: an order statistic (binomial)
        upper = ordered[min(n - 1, int(binom.ppf(0.9, n, level)))]
        half = predictive_half_width(self.band_sd[target], prior, self.distance[target], prior_dof + self.n_folds,
                                     level, seed)
        finite = np.isfinite(self.log_error[:, target])
        # width as ladder fit reports it, (hi - lo) / forecast, for an interval of +-half in log units
        return {"error": float(np.quantile(errors, level, method="higher")), "error_upper": float(upper),
                "median_error": float(np.median(errors)), "width": float(2 * np.sinh(half)),
                "coverage": float(np.mean(np.abs(self.log_error[:, target]) <= half)),
                "band_sd": float(self.band_sd[target]), "distance_efolds": float(self.distance[target]),
                "failed_fits": float(1 - finite.mean()), "n_folds": self.n_folds, "sims": n}


def predictive_half_width(band_sd: float, prior: LawPrior, dist: float, dof: float, level: float,
                          seed: int = 0, n: int = 20000) -> float:
    """Half-width (log units) of the interval `ladder fit` would give: band, noise and a t-distributed extrapolation
    error of the prior's scale with interval.prior_dof + folds degrees of freedom, as calibrate.py draws it. The
    simulated misfit itself is Gaussian: the t's heavier tails are the fit's doubt about the scale, which the
    simulation knows, so the interval covers more than its level here (coverage ~0.99 at 95%)."""
    rng = np.random.default_rng(seed)
    draws = (band_sd * rng.standard_normal(n) + prior.noise_sd * rng.standard_normal(n)
             + prior.kappa * dist * rng.standard_t(dof, n))
    return float(np.quantile(np.abs(draws), level))


def simulate(ladders: list[LadderRows], target_params, target_tokens, prior: LawPrior, n_sims: int = 200,
             seed: int = 0, branch_correlation: float = 0.5, objective: str = "huber_log",
             delta: float = 1e-3, folds=FOLD_FRACTIONS, min_fold_sizes: int = 3,
             target_end: dict | None = None) -> list[Outcome]:
    """Each ladder's Outcome at the targets, from `n_sims` simulations shared by all ladders. A curve-law prior
    needs each target's schedule columns where its run ends (`target_end`), and ladders with their schedule
    columns; its runs' evaluations share `prior.run_share` of their noise in place of `branch_correlation`."""
    law = prior.make_law()
    if prior.law == "curve":
        require(target_end is not None and all(rows.schedule is not None for rows in ladders),
                "design: a curve-law prior needs every evaluation of each ladder's runs and the target run's "
                "schedule (ladder.design.search.rows_of(every_evaluation=True), target_end_schedule)")
    target_params = np.atleast_1d(np.asarray(target_params, dtype=float))
    target_tokens = np.atleast_1d(np.asarray(target_tokens, dtype=float))
    target = LadderRows.of(target_params, target_tokens, schedule=target_end).table()
    target_log_x = law._log_x(target)
    if prior.run_share is not None:
        branch_correlation = prior.run_share
    truths = prior.draw(n_sims, seed)
    rng = np.random.default_rng([seed, 1])
    target_noise = rng.standard_normal((n_sims, len(target_params)))
    misfit = rng.standard_normal(n_sims)
    true_at_target = law.form.log_predict(truths, target_log_x)

    problems = []  # (log X columns..., L, weight) per row of every (ladder, simulation)
    width = max(len(rows) for rows in ladders)
    tables = [rows.table() for rows in ladders]
    for rows, table in zip(ladders, tables):
        log_x = law._log_x(table)
        data = np.zeros((n_sims, width, log_x.shape[1] + 2))
        data[:, :, -2] = 1.0  # padding: L = 1 at log X = 0 with weight 0
        data[:, :len(rows), :-2] = log_x[None]
        data[:, :len(rows), -2] = rung_losses(rows, truths, prior.noise_sd, seed, branch_correlation, law)
        data[:, :len(rows), -1] = 1.0
        problems.append(data)
    data = np.concatenate(problems)
    forecasts = np.concatenate([fit_forecast(data[i:i + MAX_PROBLEMS], prior.theta, target_log_x, objective, delta,
                                             law) for i in range(0, len(data), MAX_PROBLEMS)])

    outcomes = []
    for c, rows in enumerate(ladders):
        forecast = forecasts[c * n_sims:(c + 1) * n_sims]
        dist = distance(reach_of(tables[c], dict.fromkeys(law.variables)), target)
        actual = true_at_target + prior.noise_sd * target_noise + prior.kappa * dist[None, :] * misfit[:, None]
        off = forecast - true_at_target
        band_sd = np.array([_robust_sd(off[:, j]) for j in range(off.shape[1])])
        n_folds = len(rolling_folds(rows.params, folds, min_fold_sizes))
        outcomes.append(Outcome(np.where(np.isfinite(forecast), forecast - actual, np.inf), band_sd, dist, n_folds))
    return outcomes


def rung_losses(rows: LadderRows, truths: np.ndarray, noise: float, seed: int,
                branch_correlation: float, law=None) -> np.ndarray:
    """(sims, rows) losses each simulated ladder measures: its true law (chinchilla unless `law`) times one run's
    noise."""
    law = law or unfitted_law("chinchilla")
    shared = np.array([list(rows.run).count(r) > 1 for r in rows.run])
    rho = np.where(shared, branch_correlation, 0.0)
    n_sims = len(truths)
    log_noise = noise * (np.sqrt(1 - rho) * _draws(_row_keys(rows), n_sims, seed)
                         + np.sqrt(rho) * _draws(_run_keys(rows), n_sims, seed))
    return np.exp(law.form.log_predict(truths, law._log_x(rows.table())) + log_noise)


def fit_forecast(data, start, target_log_x, objective, delta, law=None) -> np.ndarray:
    """(problems, m) log forecasts at the targets of each problem's fit (of `law`'s form within its bounds;
    chinchilla's unless given); NaN where it failed."""
    law = law or unfitted_law("chinchilla")
    fun = law.form.objective(None, None, objective, delta, per_problem="points")
    starts = np.repeat(start[None, :], len(data), axis=0)
    # The bootstrap's relative stopping rule: scipy's absolute one would stop a ~1e-3 Huber objective at once. The
    # curve law's C and gamma share a long flat valley where steps gain under 1e-10 of the objective and still move
    # the forecast ~1% (tests/test_design.py): it runs until the gradient itself vanishes (4x the time).
    ftol, gtol = (1e-10, 1e-9) if law.name == "chinchilla" else (0.0, 1e-14)
    batch = lbfgs_batch(fun, starts, data=data, bounds=law.bounds, max_iter=1000, ftol=ftol, gtol=gtol, f_floor=0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        forecast = law.form.log_predict(batch.x, target_log_x)
    # An unconverged fit still gives the user a forecast (the iteration cap is generous); only a non-finite one fails.
    forecast[~np.isfinite(batch.f)] = np.nan
    return forecast


def _robust_sd(values: np.ndarray) -> float:
    """calibrate.noise_sd's robust scale (no parameters to inflate for) over the fits that did not fail."""
    values = values[np.isfinite(values)]
    return noise_sd(values, 0) if values.size else float("inf")


def _row_keys(rows: LadderRows) -> list[tuple]:
    """What a row is: its size, tokens and seed, and for an evaluation its LR (a cooldown's end and the main run
    at the same tokens are two measurements)."""
    keys = [(round(float(np.log(n)), 6), round(float(np.log(d)), 6), int(s))
            for n, d, s in zip(rows.params, rows.tokens, rows.seed)]
    if rows.schedule:
        keys = [key + (round(float(lr), 6),) for key, lr in zip(keys, rows.schedule["lr_frac"])]
    return keys


def _run_keys(rows: LadderRows) -> list[tuple]:
    return [(round(float(np.log(n)), 6), int(s), str(r)) for n, s, r in zip(rows.params, rows.seed, rows.run)]


def _draws(keys: list[tuple], n_sims: int, seed: int) -> np.ndarray:
    """(n_sims, len(keys)) standard normals, one column per key and the same for the same key in any ladder."""
    return np.stack([np.random.default_rng([seed, 2, zlib.crc32(repr(key).encode())]).standard_normal(n_sims)
                     for key in keys], axis=1)
