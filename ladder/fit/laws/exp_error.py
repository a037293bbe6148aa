"""Gadre et al. 2024's downstream law: a task's average top-1 error from the loss, Err(L) = eps - k exp(-gamma L).

Fitted by least squares on the error (scipy's curve_fit, as their code does) from a few starts, the best kept;
the bootstrap resamples rows (each row is a run). It forecasts from a loss, so its points need the loss column:
chain it after a loss law (their over-training law is `law=chinchilla law.tie_exponents=true law.objective=mse`).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from ladder.errors import require
from ladder.fit.laws.base import Law, Prediction, resample_counts
from ladder.fit.table import Table
from ladder.progress import each

NAMES = ("eps", "k", "gamma")
STARTS = {"eps": [0.5, 0.8, 1.0], "k": [1.0, 10.0, 100.0], "gamma": [0.5, 1.0, 2.0]}


def exp_error(loss, eps, k, gamma):
    return eps - k * np.exp(-gamma * np.asarray(loss, dtype=float))


class ExpError(Law):
    name = "exp_error"
    metric = "error"
    required_columns = ("loss",)

    def __init__(self, error: str = "error", ci_level: float = 0.95):
        """`error`: the table's column of the task error (Gadre et al.'s err_avg17, say)."""
        super().__init__(ci_level)
        self.error_column = str(error)
        self.theta_: np.ndarray | None = None
        self.theta_samples_: np.ndarray | None = None

    @property
    def observed_column(self) -> str:
        return self.error_column

    def _xy(self, table: Table) -> tuple[np.ndarray, np.ndarray]:
        for column in ("loss", self.error_column):
            require(column in table, f"{self.name}: needs a {column!r} column (law.error=NAME names the error's)")
        return np.asarray(table["loss"], dtype=float), np.asarray(table[self.error_column], dtype=float)

    @staticmethod
    def _fit(x: np.ndarray, y: np.ndarray, starts) -> np.ndarray | None:
        best, best_sse = None, np.inf
        for p0 in starts:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", OptimizeWarning)
                    params, _ = curve_fit(exp_error, x, y, p0=p0, maxfev=20000)
            except RuntimeError:  # no convergence from this start
                continue
            sse = float(np.sum((exp_error(x, *params) - y) ** 2))
            if np.isfinite(sse) and sse < best_sse:
                best, best_sse = params, sse
        return best

    def fit(self, table: Table) -> "ExpError":
        x, y = self._xy(table)
        require(len(x) > len(NAMES), f"{self.name}: {len(x)} rows for {len(NAMES)} parameters; need more rows")
        theta = self._fit(x, y, itertools.product(*(STARTS[n] for n in NAMES)))
        require(theta is not None, f"{self.name}: no start converged; check that the error falls with the loss")
        self.theta_, self.coefficients_ = theta, dict(zip(NAMES, map(float, theta)))
        self.objective_ = {"kind": "least squares on the error (curve_fit)",
                           "value": float(np.sum((exp_error(x, *theta) - y) ** 2))}
        self.n_points_ = len(x)
        self.warnings_ = [] if theta[2] > 0 else [f"gamma = {theta[2]:.3g}: the error does not fall with the loss"]
        return self

    def bootstrap(self, table: Table, n: int, seed: int = 0) -> "ExpError":
        require(self.theta_ is not None, f"{self.name}: fit before bootstrap")
        if n <= 0:
            self.samples_, self.theta_samples_ = None, None
            return self
        x, y = self._xy(table)
        draws = []
        for counts in each(resample_counts(len(x), n, seed), n, f"bootstrap {self.name}", "fit"):
            rows = np.repeat(np.arange(len(x)), counts.astype(int))
            theta = self._fit(x[rows], y[rows], [self.theta_]) if len(np.unique(x[rows])) > len(NAMES) else None
            draws.append(np.full(len(NAMES), np.nan) if theta is None else theta)
        self.theta_samples_ = np.array(draws)
        self.samples_ = {name: self.theta_samples_[:, i] for i, name in enumerate(NAMES)}
        return self

    def predict(self, points: Table) -> Prediction:
        require("loss" in points, f"{self.name} forecasts the error from a loss: give points with a loss column "
                                  f"(targets=FILE.csv with loss, or a loss law's forecast)")
        loss = np.asarray(points["loss"], dtype=float)
        value = exp_error(loss, *self.theta_)
        band = None if self.theta_samples_ is None else exp_error(loss[None, :], *(self.theta_samples_[:, i, None]
                                                                                  for i in range(len(NAMES))))
        return Prediction.from_draws(self.metric, value, None, band, self.ci_level)
