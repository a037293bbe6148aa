"""From a learning-rate sweep to a rule: the optimum of each loss-vs-LR curve, then a power law through the optima.

Torch-free numpy, so `ladder fit` reads a tune's rule without the training stack. The optimum of one curve is the
vertex of a parabola in log LR through the few points nearest its minimum (the curve is asymmetric far from it: high
learning rates blow up), with a standard error from the parabola's residuals, never below one run's noise. The rule is
log LR_opt = a + b log(N / N0) + c log(m / m0) (m = tokens per parameter) by weighted least squares; the budget term is
dropped when the sweep has one budget or `form="N"`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ladder.errors import require
from ladder.io import NUMBER, TEXT, WHOLE, check_shape, is_number, read_json

# Published learning-rate rules, each in its own authors' parameter count (named), for the report's comparison.
PUBLISHED_RULES = {
    "porian": ("Porian et al. 2024: 0.0047 (N/108M)^-1/3", lambda n, tokens: 0.0047 * (n / 108e6) ** (-1 / 3)),
    "step_law": ("Step Law (Li et al. 2025): 1.79 N^-0.713 D^0.307",
                 lambda n, tokens: 1.79 * n ** -0.713 * tokens ** 0.307),
}


@dataclass
class Optimum:
    """The best learning rate of one loss-vs-LR curve (one size, budget and setting)."""

    lr: float  # exp of the parabola's vertex in log LR
    log_lr_se: float
    dof: int  # degrees of freedom of log_lr_se: 0 when one run's noise (the floor) set it, else the residuals'
    loss: float  # the parabola's value at its vertex
    curvature: float  # d^2 loss / d(log lr)^2 / 2, relative to the loss: the loss cost of an LR e-fold off is this
    at_edge: bool  # the lowest loss sits at the grid's end: the optimum lies beyond, only a bound is known
    points: int  # points the parabola used

    def to_dict(self) -> dict:
        return dict(vars(self))

    def interval(self, level: float) -> tuple[float, float]:
        z = quantile(level, self.dof)
        return self.lr * math.exp(-z * self.log_lr_se), self.lr * math.exp(z * self.log_lr_se)


def quantile(level: float, dof: int) -> float:
    """The two-sided `level` quantile: Student's t with `dof` degrees of freedom, normal when dof is 0 (a known
    scale)."""
    upper = 0.5 + level / 2
    return float(stats.t.ppf(upper, dof) if dof > 0 else stats.norm.ppf(upper))


def curve_optimum(lrs, losses, window: int = 3, noise: float = 0.005) -> Optimum:
    """The vertex of a least-squares parabola in log LR through the `window` finished points nearest the lowest loss
    (a NaN or infinite loss is a diverged run). `noise` is one run's relative loss noise: the floor of the residual
    scale (a parabola through 3 points has no residuals to measure it by). A vertex outside the points used, or a
    curve with no minimum, falls back to the lowest point, uncertain by a grid step."""
    x, y = np.log(np.asarray(lrs, float)), np.asarray(losses, float)
    y = np.where(np.isnan(y), np.inf, y)  # a diverged run (no loss) is worse than any finished one
    order = np.argsort(x)
    x, y = x[order], y[order]
    # a minimum beside a diverged run is interior: the grid's edge is where the grid ends, diverged points included
    at_edge = int(np.argmin(y)) in (0, len(x) - 1)
    x, y = x[np.isfinite(y)], y[np.isfinite(y)]
    require(len(x) >= 3, f"a learning-rate curve needs 3 finished points; it has {len(x)}")
    best = int(np.argmin(y))
    width = max(3, min(int(window), len(x)))
    start = min(max(0, best - width // 2), len(x) - width)
    xs, ys = x[start:start + width], y[start:start + width]
    design = np.vander(xs, 3)  # columns x^2, x, 1
    coef, *_ = np.linalg.lstsq(design, ys, rcond=None)
    a, b, _ = coef
    dof = len(xs) - 3
    floor = noise * float(ys.min())
    residual_sd = float(np.sqrt(np.sum((design @ coef - ys) ** 2) / dof)) if dof > 0 else 0.0
    spacing = float(np.median(np.diff(x)))
    vertex = -b / (2 * a) if a > 0 else np.nan
    if at_edge or not xs[0] <= vertex <= xs[-1]:
        return Optimum(lr=float(np.exp(x[best])), log_lr_se=spacing, dof=0, loss=float(y[best]), curvature=np.nan,
                       at_edge=at_edge, points=len(xs))
    cov = max(residual_sd, floor) ** 2 * np.linalg.inv(design.T @ design)
    grad = np.array([b / (2 * a ** 2), -1 / (2 * a)])
    se = float(np.sqrt(max(grad @ cov[:2, :2] @ grad, 0.0)))
    loss = float(np.polyval(coef, vertex))
    return Optimum(lr=float(np.exp(vertex)), log_lr_se=min(se, spacing * len(xs)),
                   dof=dof if residual_sd > floor else 0, loss=loss, curvature=float(a / loss), at_edge=False,
                   points=len(xs))


def lr_cost(curvature: float, lr: float, lr_opt: float) -> float:
    """The relative loss an LR off its optimum costs, by a parabola in log LR of this curvature."""
    return float(curvature) * math.log(lr / lr_opt) ** 2


def _numbers(length: int) -> tuple:
    return (lambda v: isinstance(v, list) and len(v) == length and all(map(is_number, v)), f"a list of {length} numbers")


POSITIVE = (lambda v: is_number(v) and v > 0, "a positive number")
# What `ladder fit` reads of a tune.json (fit.tune): the rule and the curves' curvatures by size.
TUNE_RESULT = {"params_for": TEXT, "best_setting?": {},
               "rule": {"coef": _numbers(3), "cov": [_numbers(3)], "n_ref": POSITIVE, "m_ref": POSITIVE,
                        "form": (lambda v: v in ("N", "N,D"), "N or N,D"), "dof": WHOLE, "scale": NUMBER,
                        "level": (lambda v: is_number(v) and 0 < v < 1, "a probability")},
               "curves": [{"setting?": {}, "size": TEXT, "n": POSITIVE,
                           "curvature?": NUMBER}]}


def read_tune(path, key: str = "fit.tune") -> dict:
    """A tune.json that `ladder tune` wrote, checked against TUNE_RESULT: one line naming a field of another shape."""
    tune = check_shape(f"{key}={path}", read_json(path), TUNE_RESULT, "run ladder tune again, or restore the file")
    require(len(tune["rule"]["cov"]) == 3, f"{key}={path}: rule.cov is not 3 x 3; run ladder tune again")
    return tune


def nearest_curvature(curves: list[dict], n: float) -> tuple[float, str | None]:
    """The median curvature of the tuned size nearest n (in log N), and that size."""
    tuned = [c for c in curves if np.isfinite(c["curvature"] if c["curvature"] is not None else np.nan)]
    if not tuned:
        return np.nan, None
    size = min(tuned, key=lambda c: abs(math.log(c["n"] / n)))["size"]
    return float(np.median([c["curvature"] for c in tuned if c["size"] == size])), size


@dataclass
class LRRule:
    """log LR_opt = a + b log(N/n_ref) + c log(m/m_ref), with the coefficients' covariance."""

    coef: np.ndarray  # [a, b, c] (c = 0 for form "N")
    cov: np.ndarray
    n_ref: float
    m_ref: float
    form: str  # "N" | "N,D"
    dof: int
    scale: float  # sqrt of the reduced chi-square the covariance was inflated by (>= 1)
    level: float
    note: str = ""  # why the form is not the one asked for

    @property
    def exponent(self) -> float:
        return float(self.coef[1])

    def _design(self, n, tokens_per_param) -> np.ndarray:
        n, m = np.broadcast_arrays(np.asarray(n, float), np.asarray(tokens_per_param, float))
        return np.stack([np.ones_like(n), np.log(n / self.n_ref), np.log(m / self.m_ref)], axis=-1)

    def predict(self, n, tokens_per_param) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """LR_opt and its `level` interval (the rule's own uncertainty) at sizes n and tokens per parameter."""
        design = self._design(n, tokens_per_param)
        log_lr = design @ self.coef
        se = np.sqrt(np.einsum("...i,ij,...j->...", design, self.cov, design))
        z = self._quantile()
        return np.exp(log_lr), np.exp(log_lr - z * se), np.exp(log_lr + z * se)

    def coef_interval(self) -> dict:
        z = self._quantile()
        se = np.sqrt(np.diag(self.cov))
        names = ["log_lr_at_ref", "size_exponent", "budget_exponent"]
        return {name: [float(self.coef[i] - z * se[i]), float(self.coef[i] + z * se[i])]
                for i, name in enumerate(names) if self.form == "N,D" or i < 2}

    def _quantile(self) -> float:
        return quantile(self.level, self.dof)

    def recipe_lr(self, ref_params: float, tokens_per_param: float) -> dict:
        """The recipe's `lr` rule (base * (N/ref_params)^exponent) at one tokens-per-parameter multiple."""
        base, _, _ = self.predict(ref_params, tokens_per_param)
        return {"base": float(f"{float(base):.4g}"), "ref_params": float(ref_params),
                "exponent": float(f"{self.exponent:.4g}")}

    def to_dict(self) -> dict:
        return {"form": self.form, "coef": self.coef.tolist(), "cov": self.cov.tolist(), "n_ref": self.n_ref,
                "m_ref": self.m_ref, "dof": self.dof, "scale": self.scale, "level": self.level,
                "intervals": self.coef_interval(), "note": self.note}

    @classmethod
    def from_dict(cls, d: dict) -> "LRRule":
        return cls(coef=np.asarray(d["coef"], float), cov=np.asarray(d["cov"], float), n_ref=float(d["n_ref"]),
                   m_ref=float(d["m_ref"]), form=d["form"], dof=int(d["dof"]), scale=float(d["scale"]),
                   level=float(d["level"]))


def fit_rule(n, tokens_per_param, log_lr, log_lr_se, form: str = "N,D", level: float = 0.95,
             runs=None) -> LRRule:
    """Weighted least squares through the optima. The optima of one run (`runs`: the budgets of one WSD-S run share
    its noise) count, together, as one run's worth: each weight is divided by its run's number of optima. The
    covariance is inflated by the reduced chi-square when the optima scatter more than their errors say (the power
    law's misfit counts as uncertainty), and intervals are t with the residual degrees of freedom."""
    require(form in ("N", "N,D"), f"tune.rule={form!r}: use N or N,D")
    n, m = np.asarray(n, float), np.asarray(tokens_per_param, float)
    y, se = np.asarray(log_lr, float), np.asarray(log_lr_se, float)
    sizes = len(np.unique(np.round(np.log(n), 3)))
    require(sizes >= 2, f"tune: the learning-rate rule needs interior optima at 2 sizes or more; it has {sizes} "
                        f"(widen tune.lr_multipliers or add tune.sizes)")
    note = ""
    if form == "N,D" and np.ptp(np.log(m)) < 0.1:  # budgets within 10% (rounding to whole batches) say nothing of D
        form, note = "N", "the budgets are within 10% of each other: fitted LR_opt(N)"
    rule = LRRule(coef=np.zeros(3), cov=np.zeros((3, 3)), n_ref=float(np.exp(np.mean(np.log(n)))),
                  m_ref=float(np.exp(np.mean(np.log(m)))), form=form, dof=0, scale=1.0, level=level, note=note)
    full = rule._design(n, m)
    if form == "N,D" and not (len(y) > 3 and np.linalg.matrix_rank(full) == 3):
        form = rule.form = "N"  # too few optima to tell D's effect from N's: the size rule alone
        rule.note = f"{len(y)} interior optima are too few for LR_opt(N, D): fitted LR_opt(N)"
    p = 3 if form == "N,D" else 2
    design = full[:, :p]
    require(len(y) > p and np.linalg.matrix_rank(design) == p,
            f"tune: {len(y)} interior optima cannot fit LR_opt(N) with an error; add sizes (tune.sizes) or widen "
            f"tune.lr_multipliers")
    runs = np.arange(len(y)) if runs is None else np.asarray([str(r) for r in runs])
    _, index, counts = np.unique(runs, return_inverse=True, return_counts=True)
    weights = 1 / np.maximum(se, 1e-6) ** 2 / counts[index]
    inverse = np.linalg.inv(design.T @ (design * weights[:, None]))
    coef = inverse @ design.T @ (weights * y)
    dof = len(y) - p
    chi2 = float(np.sum(weights * (y - design @ coef) ** 2))
    scale = math.sqrt(max(1.0, chi2 / dof))
    rule.coef[:p], rule.cov[:p, :p] = coef, inverse * scale ** 2
    rule.dof, rule.scale = dof, scale
    return rule
