"""Chinchilla's parametric law (Hoffmann et al. 2022, Approach 3) as Besiroglu et al. 2024 fit it:
L(N, D) = E + A / N^alpha + B / D^beta. With tie_exponents, alpha = beta (Gadre et al. 2024's over-training law).
"""

from __future__ import annotations

import numpy as np

from ladder.errors import require
from ladder.fit.calibrate import distance, predictive
from ladder.fit.laws.base import PowerLawLaw, percentile_interval
from ladder.fit.powerlaw import PowerLawForm
from ladder.fit.table import Table, flops_per_nd

BESIROGLU_GRID = {"a": [0, 5, 10, 15, 20, 25], "b": [0, 5, 10, 15, 20, 25], "alpha": [0, 0.5, 1, 1.5, 2],
                  "beta": [0, 0.5, 1, 1.5, 2], "e": [-1, -0.5, 0, 0.5, 1]}


class Chinchilla(PowerLawLaw):
    name = "chinchilla"
    variables = ("params", "tokens")

    def __init__(self, tie_exponents: bool = False, **options):
        self.tie_exponents = bool(tie_exponents)
        if self.tie_exponents:  # beta is alpha: its bound and its starts, if any (conf/law gives both), are alpha's
            options["bounds"] = {k: v for k, v in (options.get("bounds") or {}).items() if k != "beta"}
            options["grid"] = {k: v for k, v in (options.get("grid") or {}).items() if k != "beta"}
            self.form = PowerLawForm(("a", "b"), ("alpha",), (0, 0))
            self.default_grid = {k: v for k, v in BESIROGLU_GRID.items() if k != "beta"}
        else:
            self.form = PowerLawForm(("a", "b"), ("alpha", "beta"), (0, 1))
            self.default_grid = BESIROGLU_GRID
        super().__init__(**options)

    def readable(self, theta):
        out = self.form.readable(theta)
        if self.tie_exponents:
            out["beta"] = out["alpha"]
        return {name: out[name] for name in ("E", "A", "B", "alpha", "beta")}

    def check(self, table: Table) -> None:
        super().check(table)
        flops = table["params"] * table["tokens"]
        require(not np.allclose(flops, flops[0], rtol=1e-6),
                f"{self.name}: every row has the same compute N*D; N and D cannot be told apart "
                f"(add rows at other budgets)")
        self.flops_per_nd_ = flops_per_nd(table) if "flops" in table else 6.0

    def compute_optimal(self, flops: np.ndarray) -> dict:
        """argmin over N of L(N, C / (k N)) with k = FLOPs per N*D of the fitted table (6 for chinchilla_6nd)."""
        flops = np.atleast_1d(np.asarray(flops, dtype=float))
        k = getattr(self, "flops_per_nd_", 6.0)
        if not all(self.scales_.values()):
            return None  # no interior optimum when the loss does not fall with N or D (fit warns: DOES NOT SCALE)

        def frontier(p):
            with np.errstate(all="ignore"):  # degenerate bootstrap draws give inf/NaN; percentiles skip them
                return _frontier(p)

        def _frontier(p):
            p = {k: np.float64(v) for k, v in p.items()}  # a negative base gives NaN, not a complex number
            s = p["alpha"] + p["beta"]
            g = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / s)
            n_opt = g * (flops / k) ** (p["beta"] / s)
            d_opt = flops / (k * n_opt)
            loss = p["E"] + p["A"] / n_opt ** p["alpha"] + p["B"] / d_opt ** p["beta"]
            return {"a": p["beta"] / s, "b": p["alpha"] / s, "params": n_opt, "tokens": d_opt, "loss": loss}

        point = frontier(self.coefficients_)
        out = {"a": point["a"], "b": point["b"], "flops": flops.tolist(), "flops_per_nd": k}
        band = None
        if self.samples_ is not None:
            draws = [frontier({name: self.samples_[name][i] for name in self.samples_})
                     for i in range(len(self.samples_["E"]))]
            for key in ("a", "b", "params", "tokens", "loss"):
                stacked = np.array([d[key] for d in draws])
                out[f"{key}_ci"] = _pairs(*percentile_interval(stacked, self.ci_level))
            band = np.log(np.array([d["loss"] for d in draws]))
        if self.error_ is not None:  # the loss one run at the optimum would measure, not only the mean law's band
            at = {"params": np.atleast_1d(point["params"]), "tokens": np.atleast_1d(point["tokens"])}
            dist = distance(self.reach_, at)
            log_loss = np.log(np.atleast_1d(point["loss"]))
            predicted = predictive(log_loss, band, self.error_, dist)
            out["loss_band"] = out.get("loss_ci")
            out["loss_ci"] = _pairs(*np.exp(percentile_interval(predicted, self.ci_level)))
            out["loss_distance"] = dist.tolist()
        for key in ("params", "tokens", "loss"):
            out[key] = np.atleast_1d(point[key]).tolist()
        return out


def _pairs(lo, hi) -> list:
    return np.stack([np.atleast_1d(lo), np.atleast_1d(hi)], axis=-1).tolist()
