"""Compute-optimal frontiers: Chinchilla's Approach 2 (isoFLOP parabolas) and Approach 1 (the loss envelope).

Both find (C, N_opt, D_opt) points and fit N_opt = k * C^a and D_opt = k' * C^b by least squares in log space.
An isoFLOP curve's minimum comes from a parabola through the sizes nearest its lowest loss (`fit_points`, 7), not
through all of them: L(log N) at fixed compute is a sum of exponentials, not a parabola, and a parabola through
sizes spread over three decades puts the minimum off by a bias that grows with the spread and is the same sign at
every budget, so it moves the exponent a by several of its standard errors (tests/test_fit_laws.py, simulated).
"""

from __future__ import annotations

import warnings

import numpy as np

from ladder.errors import require
from ladder.fit.laws.base import Law, Prediction, percentile_interval
from ladder.fit.table import Table, flops_per_nd
from ladder.progress import each
from ladder.recipe import is_flops_budget

SAME_COMPUTE = 0.01  # rows within 1% of compute belong to one isoFLOP curve (token counts round to batches)


def _power_fit(flops, values) -> tuple[float, float]:
    """(exponent, coefficient) of values = coefficient * flops^exponent."""
    slope, intercept = np.polyfit(np.log(flops), np.log(values), 1)
    return float(slope), float(np.exp(intercept))


class FrontierLaw(Law):
    """Shared by isoflop and envelope: optimum points -> power laws -> N_opt, D_opt at any compute."""

    predicts_loss = False
    metric = "params_opt"

    def optima(self, table: Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """(C, N_opt, D_opt, warnings)."""
        raise NotImplementedError

    def _fit_params(self, table: Table) -> dict | None:
        flops, n_opt, d_opt, _ = self.optima(table)
        if len(flops) < 2 or np.ptp(np.log(flops)) == 0:
            return None
        a, k_n = _power_fit(flops, n_opt)
        b, k_d = _power_fit(flops, d_opt)
        return {"a": a, "k_params": k_n, "b": b, "k_tokens": k_d}

    def fit(self, table: Table) -> "FrontierLaw":
        flops, n_opt, d_opt, warnings = self.optima(table)
        require(len(flops) >= 2, f"{self.name}: {len(flops)} usable compute budget(s) after dropping edge minima; "
                                 f"need at least 2 (add sizes around each budget's minimum, or more budgets)")
        self.optima_ = {"flops": flops, "params": n_opt, "tokens": d_opt}
        self.coefficients_ = self._fit_params(table)
        self.n_points_ = len(table)
        self.objective_ = {"kind": "least squares on log N_opt and log D_opt vs log C", "n_optima": len(flops)}
        self.warnings_ = warnings
        return self

    def bootstrap(self, table: Table, n: int, seed: int = 0) -> "FrontierLaw":
        if n <= 0:
            return self
        rng = np.random.default_rng(seed)
        draws = []
        for _ in each(range(n), n, f"bootstrap {self.name}", "fit"):
            params = self._fit_params(table.take(self._resample(table, rng)))
            draws.append(params or {k: np.nan for k in self.coefficients_})
        self.samples_ = {k: np.array([d[k] for d in draws]) for k in self.coefficients_}
        return self

    def _resample(self, table: Table, rng) -> np.ndarray:
        return rng.integers(0, len(table), len(table))

    def _frontier(self, p, flops):
        return p["k_params"] * flops ** p["a"], p["k_tokens"] * flops ** p["b"]

    def compute_optimal(self, flops) -> dict:
        flops = np.atleast_1d(np.asarray(flops, dtype=float))
        n_opt, d_opt = self._frontier(self.coefficients_, flops)
        out = {"a": self.coefficients_["a"], "b": self.coefficients_["b"], "flops": flops.tolist(),
               "params": n_opt.tolist(), "tokens": d_opt.tolist()}
        if self.samples_:
            n_draws, d_draws = zip(*[self._frontier({k: v[i] for k, v in self.samples_.items()}, flops)
                                     for i in range(len(self.samples_["a"]))])
            for key, draws in (("params", n_draws), ("tokens", d_draws)):
                lo, hi = percentile_interval(np.array(draws), self.ci_level)
                out[f"{key}_ci"] = np.stack([lo, hi], axis=-1).tolist()
            for key in ("a", "b"):
                out[f"{key}_ci"] = self.ci()[key]
        return out

    def predict(self, points: Table) -> Prediction:
        optimal = self.compute_optimal(points["flops"])
        lo_hi = np.array(optimal.get("params_ci", [[np.nan, np.nan]] * len(points["flops"])))
        return Prediction("params_opt", np.array(optimal["params"]), lo_hi[:, 0], lo_hi[:, 1])


class IsoFLOP(FrontierLaw):
    """Approach 2: per compute budget, the minimum over log N of a parabola fitted to loss."""

    name = "isoflop"

    def __init__(self, fit_points: int = 7, ci_level: float = 0.95):
        super().__init__(ci_level)
        self.fit_points = int(fit_points)  # k: the k sizes nearest the lowest loss; 0: every size of the budget
        require(self.fit_points == 0 or self.fit_points >= 3, f"law.fit_points={fit_points}: 0 (every size) or "
                                                              f"at least 3 (a parabola needs three)")

    def fit(self, table: Table) -> "IsoFLOP":
        curves = [rows for rows in self.groups(table) if len(np.unique(table["params"][rows])) >= 3]
        require(curves, "isoflop: no isoFLOP curve (3+ sizes at one compute) in these rows: a ladder of budgets in "
                        "multiples of C has none (its compute grows with N); train FLOPs budgets "
                        "(ladder.budgets=[1e18F,3e18F,...]) for an isoFLOP sweep, or fit law=chinchilla")
        return super().fit(table)

    def groups(self, table: Table) -> list[np.ndarray]:
        """The isoFLOP curves: rows of one FLOPs budget label (`1e18F`, as `ladder collect` writes them), else rows
        of equal compute. Labels like `2xC` are not isoFLOP curves (their compute grows with N): compute decides."""
        if "budget" in table and all(is_flops_budget(label) for label in table["budget"]):
            keys = table["budget"]
            return [np.flatnonzero(keys == key) for key in dict.fromkeys(keys.tolist())]
        flops = table["flops"]
        order = np.argsort(flops)
        breaks = np.flatnonzero(np.diff(np.log(flops[order])) > SAME_COMPUTE) + 1
        return [np.sort(chunk) for chunk in np.split(order, breaks)]

    def optima(self, table: Table):
        flops_out, n_out, dropped = [], [], []
        for rows in self.groups(table):
            log_n, loss = np.log(table["params"][rows]), table["loss"][rows]
            budget = float(np.median(table["flops"][rows]))
            if len(np.unique(log_n)) < 3:
                dropped.append(f"budget C={budget:.3g}: fewer than 3 sizes, dropped")
                continue
            lowest = int(np.argmin(loss))
            if log_n[lowest] in (log_n.min(), log_n.max()):
                dropped.append(f"budget C={budget:.3g}: lowest loss at the edge of the sampled sizes "
                                f"(N={np.exp(log_n[lowest]):.3g}), dropped")
                continue
            if self.fit_points:
                near = np.argsort(np.abs(log_n - log_n[lowest]))[:self.fit_points]
                log_n, loss = log_n[near], loss[near]
            with warnings.catch_warnings():  # a bootstrap resample repeats sizes: polyfit calls it ill-conditioned
                warnings.simplefilter("ignore", np.exceptions.RankWarning)
                curvature, slope, _ = np.polyfit(log_n, loss, 2)
            vertex = -slope / (2 * curvature) if curvature > 0 else np.nan
            if not (curvature > 0 and log_n.min() < vertex < log_n.max()):
                dropped.append(f"budget C={budget:.3g}: parabola has no minimum inside the sampled sizes, dropped")
                continue
            flops_out.append(budget)
            n_out.append(np.exp(vertex))
        flops_arr, n_arr = np.array(flops_out), np.array(n_out)
        k = flops_per_nd(table)
        return flops_arr, n_arr, flops_arr / (k * n_arr) if len(n_arr) else n_arr, dropped

    def _resample(self, table, rng):
        # Resample within each budget, so every isoFLOP curve keeps its budget.
        return np.concatenate([rng.choice(rows, len(rows)) for rows in self.groups(table)])


class Envelope(FrontierLaw):
    """Approach 1: in each log-compute bin, the run with the lowest loss is compute-optimal there."""

    name = "envelope"

    def __init__(self, bins: int = 20, ci_level: float = 0.95):
        super().__init__(ci_level)
        self.bins = int(bins)
        require(self.bins >= 2, f"law.bins={bins}: need at least 2 compute bins")

    def optima(self, table: Table):
        log_c = np.log(table["flops"])
        edges = np.linspace(log_c.min(), log_c.max() + 1e-9, self.bins + 1)
        which = np.digitize(log_c, edges) - 1
        smallest, largest = table["params"].min(), table["params"].max()
        flops, n_opt, d_opt, at_edge = [], [], [], 0
        for b in range(self.bins):
            rows = np.flatnonzero(which == b)
            if rows.size == 0:
                continue
            best = rows[np.argmin(table["loss"][rows])]
            if table["params"][best] in (smallest, largest):
                at_edge += 1  # won only because no smaller (larger) size was trained: not an optimum
                continue
            flops.append(table["flops"][best])
            n_opt.append(table["params"][best])
            d_opt.append(table["tokens"][best])
        warnings = [f"envelope: {at_edge} of the compute bins are won by the smallest or largest size, dropped"] \
            if at_edge else []
        return np.array(flops), np.array(n_opt), np.array(d_opt), warnings
