"""The shape every law has: fit(table) -> coefficients, predict(points) -> values with intervals, bootstrap(table).

A law is a small class. `PowerLawLaw` carries everything shared by the laws of the form L = E + sum A/X^alpha
(grid of starts, batched L-BFGS, scipy polish, warm-started batched bootstrap, warnings); chinchilla and kaplan
only say which variables and starts they use.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field

import numpy as np

from ladder.errors import require
from ladder.fit.calibrate import ErrorModel, IntervalOptions, distance, learn_error_model, predictive, reach_of
from ladder.fit.optimize import lbfgs_batch, polish
from ladder.fit.powerlaw import OBJECTIVES, PowerLawForm
from ladder.fit.table import Table


@dataclass
class Prediction:
    metric: str  # what the values are: loss, task_loss, accuracy, params_opt, ...
    value: np.ndarray
    lo: np.ndarray  # the forecast interval at ci_level: predictive once calibrated, else the band; NaN if neither
    hi: np.ndarray
    band_lo: np.ndarray | None = None  # the mean law's bootstrap band (parameter uncertainty alone)
    band_hi: np.ndarray | None = None
    parts: dict[str, np.ndarray] = field(default_factory=dict)  # each part's sd: log units (relative) for losses,
    # accuracy units for accuracy
    distance: np.ndarray | None = None  # e-folds beyond the largest fitted value

    @classmethod
    def from_draws(cls, metric: str, value: np.ndarray, draws: np.ndarray | None, band: np.ndarray | None,
                   level: float, parts: dict | None = None, dist: np.ndarray | None = None) -> "Prediction":
        """Percentile intervals of predictive `draws` and of the `band` draws, (n, m) each or None."""
        nan = np.full_like(value, np.nan, dtype=float)
        band_lo, band_hi = percentile_interval(band, level) if band is not None else (nan, nan)
        lo, hi = percentile_interval(draws, level) if draws is not None else (band_lo, band_hi)
        return cls(metric, value, lo, hi, band_lo, band_hi, parts or {}, dist)


def percentile_interval(samples: np.ndarray, level: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    tail = 100 * (1 - level) / 2
    with np.errstate(invalid="ignore"):  # resamples that ran a coefficient to infinity: inf - inf between neighbours
        lo, hi = np.nanpercentile(samples, [tail, 100 - tail], axis=axis)
    return lo, hi


def spearman(x, y) -> float:
    """Rank correlation (ties get their mean rank)."""
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(x, dtype=float), np.asarray(y, dtype=float)).statistic)


def run_groups(table) -> np.ndarray:
    """Each row's run index: rows of one run (a WSD-S run's budgets, one curve's checkpoints) share it. Without a run
    column every row is its own run. Seeds are separate runs, so they count as replicates."""
    if "run" not in table:
        return np.arange(len(table))
    return np.unique(table["run"], return_inverse=True)[1]


def resample_counts(n_rows: int, n_resamples: int, seed: int, keep=None) -> np.ndarray:
    """(n_resamples, n_rows) counts: each resample is a multinomial draw of the rows. `keep(counts) -> bool` redraws
    resamples it rejects (too few sizes left to identify a law)."""
    rng = np.random.default_rng(seed)
    out = rng.multinomial(n_rows, np.full(n_rows, 1.0 / n_rows), size=n_resamples).astype(float)
    for i in range(n_resamples if keep is not None else 0):
        for _ in range(100):
            if keep(out[i]):
                break
            out[i] = rng.multinomial(n_rows, np.full(n_rows, 1.0 / n_rows))
    return out


class Law:
    name = "law"
    metric = "loss"
    predicts_loss = True  # False for frontier laws, which forecast N_opt and D_opt from compute alone
    required_columns = ("params", "tokens", "loss")
    reads_curves = False  # True: fitting a runs directory also reads every intermediate evaluation
    forecasts_curves = False  # True: it forecasts the loss along a target's run, under the target's schedule

    def __init__(self, ci_level: float = 0.95):
        self.ci_level = ci_level
        self.coefficients_: dict[str, float] = {}
        self.samples_: dict[str, np.ndarray] | None = None  # parameter name -> bootstrap draws
        self.objective_: dict = {}
        self.warnings_: list[str] = []
        self.n_points_ = 0
        self.error_: ErrorModel | None = None  # noise and extrapolation error, once calibrated
        self.resampling_: str | None = None  # how the bootstrap resampled, once run

    @property
    def observed_column(self) -> str:
        """The table's column of what the law forecasts (backtests score against it)."""
        return self.metric

    def calibrate(self, table: Table, options: IntervalOptions, seed: int = 0) -> "Law":
        """Learn the forecast error beyond parameter uncertainty; laws that cannot keep their bootstrap band."""
        return self

    def _set_error(self, error: ErrorModel | None, prefix: str = "") -> None:
        """Install an error model; calibrating again replaces the last one and its warnings."""
        if self.error_ is not None:
            old = {prefix + w for w in self.error_.warnings}
            self.warnings_ = [w for w in self.warnings_ if w not in old]
        self.error_ = error
        if error is not None:
            self.warnings_ += [prefix + w for w in error.warnings]

    def fit(self, table: Table) -> "Law":
        raise NotImplementedError

    def predict(self, points: Table) -> Prediction:
        raise NotImplementedError

    def bootstrap(self, table: Table, n: int, seed: int = 0) -> "Law":
        raise NotImplementedError

    def predict_all(self, points: Table) -> list[Prediction]:
        """Every metric the law forecasts (two_step: task loss, then accuracy)."""
        return [self.predict(points)]

    def ci(self) -> dict[str, list[float]]:
        if not self.samples_:
            return {}
        return {name: [float(v) for v in percentile_interval(draws, self.ci_level)]
                for name, draws in self.samples_.items()}

    def compute_optimal(self, flops: np.ndarray) -> dict | None:
        """N_opt, D_opt (and their loss) at each compute, for laws that define a frontier."""
        return None

    def summary(self) -> dict:
        return {"law": self.name, "n_points": self.n_points_, "coefficients": self.coefficients_, "ci": self.ci(),
                "ci_level": self.ci_level, "objective": self.objective_, "interval": self.interval_summary(),
                "warnings": self.warnings_}

    def interval_summary(self) -> dict:
        if self.error_ is None:
            return {"method": "bootstrap percentile band of the mean law (parameter uncertainty only)",
                    "level": self.ci_level, "resampling": self.resampling_}
        return {"method": "predictive: bootstrap band of the mean law + run-to-run noise + extrapolation error "
                          "learned by rolling backtests", "level": self.ci_level, "resampling": self.resampling_,
                "error_model": self.error_.to_dict()}


class PowerLawLaw(Law):
    """L = E + sum_k A_k / X_k^alpha_k over the table's columns `variables`, fitted as Besiroglu et al. 2024 do."""

    form: PowerLawForm
    variables: tuple[str, ...]
    default_grid: dict[str, list[float]]
    scaling_terms: tuple[int, ...] | None = None  # the terms the loss must fall along (None: every term)

    def __init__(self, objective: str = "huber_log", delta: float = 1e-3, grid: dict | None = None,
                 bounds: dict | None = None, max_iter: int = 1000, target_column: str = "loss",
                 n_polish: int = 20, screen: int = 0, ci_level: float = 0.95):
        super().__init__(ci_level)
        self.screen = int(screen)  # > 0: run L-BFGS from only the best `screen` grid starts (rolling folds)
        require(objective in OBJECTIVES, f"law.objective={objective!r}: use one of {', '.join(OBJECTIVES)}")
        require(delta > 0, f"law.delta={delta}: must be positive")
        self.objective_kind, self.delta, self.max_iter = objective, float(delta), int(max_iter)
        self.n_polish = max(1, int(n_polish))
        self.target_column = target_column
        grid = {**self.default_grid, **(grid or {})}
        unknown = set(grid) - set(self.form.names)
        require(not unknown, f"law.grid.{sorted(unknown)[0] if unknown else ''}: not a parameter of this law; "
                             f"its coefficients are {', '.join(self.form.names)}")
        self.grid = {name: [float(v) for v in grid[name]] for name in self.form.names}
        self.bounds = np.array([[-np.inf, np.inf]] * self.form.n_params)
        for name, (lo, hi) in (bounds or {}).items():
            require(name in self.form.names, f"law.bounds.{name}: not a parameter; use {', '.join(self.form.names)}")
            require(lo < hi, f"law.bounds.{name}=[{lo}, {hi}]: lower must be below upper")
            self.bounds[self.form.names.index(name)] = [lo, hi]
        self.theta_: np.ndarray | None = None
        self.restart_across_grid_: list[int] = []  # E collapsed to 0: its gradient vanishes there (bootstrap)
        self.on_bound_: list[int] = []  # coefficients the fit left on a bound, and their terms' (bootstrap)
        self.theta_samples_: np.ndarray | None = None
        self.reach_: dict[str, float] = {}  # the largest fitted value of each variable: distances start there
        self.scales_: dict[str, bool] = {}  # whether the loss falls with each variable in the fitted data

    # -- what a subclass may refine ---------------------------------------------------------------------------
    def check(self, table: Table) -> None:
        """Refuse data this law cannot identify."""
        require(len(table) > self.form.n_params,
                f"{self.name}: {len(table)} points for {self.form.n_params} coefficients; need more points than "
                f"coefficients")
        for variable in self.variables:
            require(len(np.unique(table[variable])) > 1,
                    f"{self.name}: every row has the same {variable}; its exponent cannot be identified "
                    f"(vary {variable} across rows)")

    def readable(self, theta: np.ndarray) -> dict[str, float]:
        return self.form.readable(theta)

    # -- shared machinery -------------------------------------------------------------------------------------
    def _log_x(self, table: Table) -> np.ndarray:
        return np.log(np.stack([table[v] for v in self.variables], axis=1))

    def _objective(self, table: Table, per_problem: str = "weights"):
        return self.form.objective(self._log_x(table), table[self.target_column], self.objective_kind, self.delta,
                                   per_problem)

    def fit(self, table: Table) -> "PowerLawLaw":
        self.check(table)
        fun = self._objective(table)
        starts = np.array(list(itertools.product(*(self.grid[name] for name in self.form.names))))
        starts = np.clip(starts, self.bounds[:, 0], self.bounds[:, 1])
        if 0 < self.screen < len(starts):
            f0 = fun(starts, None)[0]
            starts = starts[np.argsort(np.where(np.isfinite(f0), f0, np.inf))[:self.screen]]
        batch = lbfgs_batch(fun, starts, bounds=self.bounds, max_iter=self.max_iter)
        finite = np.isfinite(batch.f)
        pool = batch.converged & finite if (batch.converged & finite).any() else finite
        require(pool.any(), f"{self.name}: no start gave a finite objective; check the data's scale")
        # Polish the best few starts with scipy: the winner is scipy's optimum, and distinct optima with nearly the
        # same objective reveal a flat valley (loosely stopped starts alone would not).
        ranked = np.flatnonzero(pool)[np.argsort(batch.f[pool])][:self.n_polish]
        polished = [polish(fun, batch.x[i], bounds=self.bounds) for i in ranked]
        candidates = [(f, x) for x, f, _ in polished] + [(float(batch.f[i]), batch.x[i]) for i in ranked]
        value, theta = min(candidates, key=lambda c: c[0])
        self.theta_, self.coefficients_ = theta, self.readable(theta)
        self.n_points_ = len(table)
        self.reach_ = reach_of(table, self.variables)
        self.objective_ = {"kind": self.objective_kind, "delta": self.delta if self.objective_kind == "huber_log"
                           else None, "value": value, "n_starts": len(starts),
                           "n_converged": int(batch.converged.sum())}
        self.warnings_ = self._flat_valley_warnings([(f, x) for x, f, _ in polished], value)
        collapsed = self._collapse_warnings(theta, table)
        self.restart_across_grid_ = list(collapsed)
        self.on_bound_ = sorted(self._with_coefficients(self._on_bound(theta)))
        # a term that does not scale usually also sits on a bound: the louder warning says it, the bound's would repeat
        self.warnings_ += self._scaling_warnings(theta, table) or [*collapsed.values(), *self._bound_warnings(theta)]
        return self

    def bootstrap(self, table: Table, n: int, seed: int = 0) -> "PowerLawLaw":
        """Refit n resamples at once, each warm-started from the full-data optimum. Rows that are runs of their own
        are resampled with replacement (Besiroglu et al. 2024). Rows that share a run (a WSD-S run's budgets, one
        curve's checkpoints) get a wild cluster bootstrap instead: each resample flips every run's residuals by one
        random weight (Webb's six-point weights), so a run's rows move together and every size stays in every
        resample, which a few runs drawn with replacement would not keep (Cameron, Gelbach & Miller 2008)."""
        require(self.theta_ is not None, f"{self.name}: fit before bootstrap")
        if n <= 0:
            self.samples_, self.theta_samples_ = None, None
            return self
        groups = run_groups(table)
        starts = np.repeat(self.theta_[None, :], n, axis=0)
        rng = np.random.default_rng([seed, 1])  # a stream of its own: the resamples draw from default_rng(seed)
        # Resamples started where the gradient vanishes (E at 0) stay there: a point interval. They start across
        # the grid instead, so E's interval spans the values the resamples fit about as well from there.
        self._start_across_grid(starts, self.restart_across_grid_, rng)
        if len(np.unique(groups)) == len(table):
            log_x = self._log_x(table)

            def identifiable(counts):  # every variable keeps two distinct values, as `check` asks of the data
                return all(len(np.unique(log_x[counts > 0, k])) > 1 for k in range(len(self.variables)))

            fun, data = self._objective(table), resample_counts(len(table), n, seed, keep=identifiable)
            self.resampling_ = "rows with replacement (each row is its own run)"
        else:
            fun, data = self._objective(table, per_problem="targets"), self._wild_targets(table, groups, n, seed)
            self.resampling_ = f"wild cluster bootstrap over {len(np.unique(groups))} runs (Webb weights)"

        def fit_resamples(starts, label):
            # Relative stopping rule: scipy's absolute one would stop a ~1e-3 Huber objective at its first step.
            return lbfgs_batch(fun, starts, data=data, bounds=self.bounds, max_iter=self.max_iter, ftol=1e-10,
                               gtol=1e-9, f_floor=0.0, progress=f"bootstrap {self.name}{label}")

        batch = fit_resamples(starts, "")
        if self.on_bound_:
            # A coefficient on a bound often has its term shrunk to nothing there (the curve law's C at 1e-19 with
            # gamma at -2): no gradient leads a resample off the bound even where its data would. Each resample is
            # also fitted from starts across the grid for those coefficients, and keeps the better of the two fits.
            self._start_across_grid(starts, self.on_bound_, rng)
            other = fit_resamples(starts, " (off its bounds)")
            better = other.f < batch.f
            batch.x[better], batch.converged[better] = other.x[better], other.converged[better]
        self.theta_samples_ = batch.x
        draws = [self.readable(x) for x in batch.x]
        self.samples_ = {name: np.array([d[name] for d in draws]) for name in self.coefficients_}
        if not batch.converged.all():
            self.warnings_.append(f"bootstrap: {int((~batch.converged).sum())} of {n} resamples did not converge")
        return self

    def _start_across_grid(self, starts: np.ndarray, indices, rng) -> None:
        for i in indices:
            name = self.form.names[i]
            lo, hi = np.clip([min(self.grid[name]), max(self.grid[name])], *self.bounds[i])
            starts[:, i] = rng.uniform(lo, hi, len(starts))

    def _wild_targets(self, table: Table, groups: np.ndarray, n: int, seed: int) -> np.ndarray:
        """(n, rows) resampled observations: the fit times exp(run weight x residual), residuals inflated for the
        fitted parameters."""
        log_fit = self.form.log_predict(self.theta_, self._log_x(table))[0]
        residual = np.log(table[self.target_column]) - log_fit
        residual *= np.sqrt(len(table) / max(len(table) - self.form.n_params, 1))
        webb = np.sqrt(np.array([0.5, 1.0, 1.5]))
        weights = np.random.default_rng(seed).choice(np.concatenate([-webb, webb]), (n, int(groups.max()) + 1))
        return np.exp(log_fit[None, :] + weights[:, groups] * residual[None, :])

    def fresh(self, **attributes) -> "PowerLawLaw":
        """An unfitted copy with the same options (and `attributes` changed): the rolling folds' law."""
        clone = copy.copy(self)
        clone.__dict__.update(theta_=None, theta_samples_=None, samples_=None, coefficients_={}, warnings_=[],
                              objective_={}, error_=None, restart_across_grid_=[], on_bound_=[], **attributes)
        return clone

    def calibrate(self, table: Table, options: IntervalOptions, seed: int = 0) -> "PowerLawLaw":
        require(self.theta_ is not None, f"{self.name}: fit before calibrate")
        self._set_error(learn_error_model(self, table, options, seed) if options.method == "calibrated" else None)
        return self

    def log_draws(self, points: Table, seed: int = 0):
        """(point log forecast, predictive log draws or None, band log draws or None, distance) at `points`."""
        log_x = self._log_x(points)
        point = self.form.log_predict(self.theta_, log_x)[0]
        band = None if self.theta_samples_ is None else self.form.log_predict(self.theta_samples_, log_x)
        dist = distance(self.reach_, points)
        draws = predictive(point, band, self.error_, dist, seed) if (band is not None or self.error_) else None
        return point, draws, band, dist

    def summary(self) -> dict:
        """Law.summary plus the fitted vector of the log-sum-exp form and its bootstrap covariance: what a prior
        for `ladder design` is drawn from."""
        out = super().summary()
        if self.theta_ is not None:
            out["theta"] = {"names": self.form.names, "value": [float(v) for v in self.theta_],
                            "cov": None if self.theta_samples_ is None else np.cov(self.theta_samples_.T).tolist()}
        return out

    def parts(self, band: np.ndarray | None, dist: np.ndarray) -> dict[str, np.ndarray]:
        out = {"coefficients": np.nanstd(band, axis=0) if band is not None else np.full_like(dist, np.nan)}
        if self.error_ is not None:
            out.update(self.error_.parts(dist))
        return out

    def predict(self, points: Table) -> Prediction:
        return self.prediction(*self.log_draws(points))

    def prediction(self, point, draws, band, dist, metric: str | None = None) -> Prediction:
        """The Prediction of `log_draws`' output."""
        return Prediction.from_draws(metric or self.metric, np.exp(point), None if draws is None else np.exp(draws),
                                     None if band is None else np.exp(band), self.ci_level,
                                     self.parts(band, dist), dist)

    def _flat_valley_warnings(self, optima, best_value) -> list[str]:
        """Polished optima within 0.1% of the best objective that disagree on an exponent or on E."""
        near = [self.readable(x) for f, x in optima if f <= best_value * 1.001 + 1e-15]
        out = []
        for name in [n for n in self.coefficients_ if n in self.form.exponent_names or n == "E"]:
            values = np.array([d[name] for d in near])
            if len(values) > 1 and values.max() - values.min() > 0.02 * max(1.0, abs(self.coefficients_[name])):
                out.append(f"flat valley: optima within 0.1% of the best objective disagree on {name} "
                           f"({values.min():.3g} to {values.max():.3g}); the data do not pin it down")
        return out

    def _scaling_warnings(self, theta, table: Table) -> list[str]:
        """Terms that do not scale: an exponent at 0 (the term is a constant), or a term that vanishes at every row
        (under 1e-4 of the loss: the fit sent A to 0). Either way the loss does not fall with that variable in these
        data, and nothing forecast from the fit means much. `scales_` records it for the frontier."""
        _, exponents, _ = self.form.split(np.atleast_2d(theta))
        log_x = self._log_x(table)
        lse, probs = self.form._softmax(np.atleast_2d(theta), log_x)
        out = []
        self.scales_ = {}
        for k, variable in enumerate(self.variables):
            if self.scaling_terms is not None and k not in self.scaling_terms:
                continue
            exponent = float(exponents[0, self.form.exponent_of_term[k]])
            share = float(np.max(probs[k]))
            self.scales_[variable] = exponent > 1e-6 and share > 1e-4
            if not self.scales_[variable]:
                why = (f"its exponent is {exponent:.3g}" if exponent <= 1e-6
                       else "its term is under 1e-4 of the loss at every row")
                out.append(f"DOES NOT SCALE: the loss does not fall with {variable} in these data ({why}); forecasts "
                           f"from this fit mean nothing: check the loss column, the runs, or the range of {variable}")
        return out

    def _collapse_warnings(self, theta, table: Table) -> dict[int, str]:
        """{parameter index: warning} for E collapsed to 0: under 0.1% of the smallest loss. log E has no bound, and
        as E falls its gradient vanishes, so bootstrap resamples started there would stay there and give a point
        interval; they start E across its grid's range instead (`bootstrap`), so its interval spans the values the
        resamples fit about as well from there."""
        if not self.form.irreducible:
            return {}
        e_index = self.form.names.index("e")
        irreducible, smallest = float(np.exp(theta[e_index])), float(np.min(table[self.target_column]))
        if irreducible >= 1e-3 * smallest:
            return {}
        return {e_index: f"E collapsed to 0 ({irreducible:.2g}, under 0.1% of the smallest loss {smallest:.4g}): the "
                         f"data do not identify the irreducible loss; its interval spans the values that fit about "
                         f"as well, and forecasts lean on the extrapolation error: add sizes or longer budgets, or "
                         f"give law.bounds.e"}

    def _on_bound(self, theta) -> dict[int, str]:
        """{parameter index: 'lower' or 'upper'} for the coefficients the fit left on a bound."""
        out = {}
        for i in range(self.form.n_params):
            for side, bound in (("lower", self.bounds[i, 0]), ("upper", self.bounds[i, 1])):
                if np.isfinite(bound) and abs(theta[i] - bound) <= 1e-6 * (1 + abs(bound)):
                    out[i] = side
        return out

    def _with_coefficients(self, indices) -> set[int]:
        """`indices` and, for each exponent among them, the coefficients of its terms: an exponent moved alone off its
        bound would meet a term its coefficient has shrunk to nothing (the curve law's C at 1e-19 with gamma at -2),
        with no gradient to bring either back."""
        n_coefs = len(self.form.coef_names)
        out = set(indices)
        for i in indices:
            if n_coefs <= i < n_coefs + len(self.form.exponent_names):
                out |= {k for k, j in enumerate(self.form.exponent_of_term) if j == i - n_coefs}
        return out

    def _bound_warnings(self, theta) -> list[str]:
        return [f"{self.form.names[i]} sits on its {side} bound ({self.bounds[i, 0 if side == 'lower' else 1]:g}); "
                f"widen law.bounds.{self.form.names[i]} or distrust it" for i, side in self._on_bound(theta).items()]
