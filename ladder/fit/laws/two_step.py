"""Task forecasts in two steps (Bhagia et al. 2024): (N, D) -> task loss -> accuracy.

Step 1 fits the chinchilla form to the task loss, one point per schedule: the mean of its last `step1.window`
evaluations, at its final tokens (the OLMo ladder's rule). A schedule is a run (column `run`), or, where rows name a
`budget` (`ladder collect`'s tables), each budget of the run (a WSD-S cooldown); a run's rows without a budget (its
main run's checkpoints, at the stable learning rate) then end none. A `final` column plays no part in step 1, so a
table of checkpoints gives what `ladder reproduce olmo` gives.
Step 2 fits accuracy = a / (1 + exp(-k (L - L0))) + b to the task loss over all rows (each
run's first `step2.skip_frac` dropped (rounded up), a trailing moving average of `step2.window` rows), plus the
anchor point (L = 0, accuracy = `step2.maximum`), from OLMo's start (a = `step2.minimum` - 1, k = 3, L0 = 0.9,
b = `step2.maximum`; the minimum is the task's chance accuracy). Neither is a bound: the bounds stay a in [-1, 0],
b in [0, 1]. These are the OLMo ladder's rules
(allenai/OLMo-ladder, src/scripts/step2.py): its published predictions are reproduced (tests/test_fit_reproduce.py). The chained prediction carries both steps' bootstrap uncertainty and, once calibrated, step
1's noise and extrapolation error (learned by step 1's own rolling backtests) and step 2's scatter around the sigmoid.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from ladder.errors import require
from ladder.fit.calibrate import IntervalOptions, noise_sd
from ladder.fit.laws.base import Law, Prediction
from ladder.fit.laws.chinchilla import Chinchilla
from ladder.fit.table import Table
from ladder.progress import each

SIGMOID_NAMES = ("a", "k", "L0", "b")
SIGMOID_BOUNDS = ([-1.0, 0.0, 0.0, 0.0], [0.0, np.inf, np.inf, 1.0])


def sigmoid(task_loss, a, k, l0, b):
    return a / (1 + np.exp(-k * (task_loss - l0))) + b


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of each value and up to window - 1 before it."""
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(idx - window, 0)
    return (cumsum[idx] - cumsum[start]) / (idx - start)


def schedules(table: Table):
    """(run, row indices) of each schedule that ends in a result: a run's budget where the table names budgets (rows
    with an empty budget are a WSD-S main run's checkpoints: they end no schedule), else the whole run."""
    runs = np.asarray(table["run"]).astype(str)
    budgets = np.asarray(table["budget"]).astype(str) if "budget" in table else np.full(len(runs), "")
    budgets = np.where(np.isin(budgets, ["", "nan", "None"]), "", budgets)  # a blank cell, however it was read
    for run in dict.fromkeys(runs.tolist()):
        rows = np.flatnonzero(runs == run)
        named = [b for b in dict.fromkeys(budgets[rows].tolist()) if b]
        if not named:  # a run of plain checkpoints: one schedule
            yield run, rows
        for budget in named:
            yield run, rows[budgets[rows] == budget]


class TwoStep(Law):
    name = "two_step"
    metric = "accuracy"
    required_columns = ("params", "tokens", "run", "task_loss", "accuracy")
    reads_curves = True  # step 2 wants every checkpoint of every run

    def __init__(self, step1: dict | None = None, step2: dict | None = None, task: str | None = None,
                 accuracy: str = "acc", ci_level: float = 0.95):
        """`task` and `accuracy` name the eval columns (eval/<task>/bpb, eval/<task>/<accuracy>) for the report."""
        super().__init__(ci_level)
        self.task, self.accuracy = task, accuracy
        step1 = {"window": 5, "objective": "huber_log", "delta": 1e-3, **(step1 or {})}
        step2 = {"skip_frac": 0.1, "window": 5, "minimum": 0.25, "maximum": 1.0, **(step2 or {})}
        unknown = sorted(set(step2) - {"skip_frac", "window", "minimum", "maximum"})
        require(not unknown, f"law.step2.{unknown[0] if unknown else ''}: not an option; use skip_frac, window, "
                             f"minimum, maximum")
        self.step1_window = int(step1.pop("window"))
        self.skip_frac, self.step2_window = float(step2["skip_frac"]), int(step2["window"])
        self.minimum, self.maximum = float(step2["minimum"]), float(step2["maximum"])
        require(0 <= self.minimum < self.maximum <= 1, f"law.step2.minimum={self.minimum}, maximum={self.maximum}: "
                                                       f"accuracies with 0 <= minimum < maximum <= 1")
        require(self.step1_window >= 1 and self.step2_window >= 1, "law.step1.window and law.step2.window: >= 1")
        require(0 <= self.skip_frac < 1, f"law.step2.skip_frac={self.skip_frac}: must be in [0, 1)")
        self.step1 = Chinchilla(target_column="task_loss", ci_level=ci_level, **step1)
        self.sigmoid_samples_: np.ndarray | None = None  # step 2's bootstrap draws, once run
        self.step2_noise_ = 0.0  # one checkpoint's accuracy scatter around the sigmoid, once calibrated

    # -- the two data sets -------------------------------------------------------------------------------------
    def step1_table(self, table: Table) -> Table:
        rows = []
        for run, idx in schedules(table):
            idx = idx[np.argsort(table["tokens"][idx], kind="stable")]
            last = idx[-self.step1_window:]
            rows.append((run, table["params"][idx[-1]], table["tokens"][idx[-1]],
                         float(np.mean(table["task_loss"][last]))))
        run, params, tokens, task_loss = zip(*rows)
        return Table({"run": list(run), "params": params, "tokens": tokens, "task_loss": task_loss,
                      "flops": 6 * np.array(params) * np.array(tokens)})

    def step2_points(self, table: Table, window: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        window = self.step2_window if window is None else window
        xs, ys = [np.array([0.0])], [np.array([self.maximum])]  # the anchor: a perfect model is (nearly) always right
        for run in dict.fromkeys(table["run"].tolist()):
            idx = np.flatnonzero(table["run"] == run)
            idx = idx[np.argsort(table["tokens"][idx])]
            idx = idx[int(np.ceil(self.skip_frac * len(idx))):]
            xs.append(trailing_mean(table["task_loss"][idx], window))
            ys.append(trailing_mean(table["accuracy"][idx], window))
        return np.concatenate(xs), np.concatenate(ys)

    def fit_sigmoid(self, x: np.ndarray, y: np.ndarray, p0=None) -> np.ndarray:
        p0 = [self.minimum - 1.0, 3.0, 0.9, self.maximum] if p0 is None else p0  # OLMo's start (a, k, L0, b)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            lower, upper = np.array(SIGMOID_BOUNDS[0]) + 1e-9, np.array(SIGMOID_BOUNDS[1]) - 1e-9
            params, _ = curve_fit(sigmoid, x, y, p0=np.clip(p0, lower, upper), bounds=SIGMOID_BOUNDS, maxfev=20000)
        return params

    # -- the law's shape ---------------------------------------------------------------------------------------
    def fit(self, table: Table) -> "TwoStep":
        for column in self.required_columns:
            require(column in table, f"two_step: needs a {column!r} column (set columns.{column}=NAME)")
        self.step1.fit(self.step1_table(table))
        x, y = self.step2_points(table)
        require(len(x) > 5, f"two_step: {len(x) - 1} step-2 rows after skipping; need more checkpoints per run")
        self.sigmoid_ = self.fit_sigmoid(x, y)
        self.step2_data_ = (x, y)
        self.coefficients_ = {**{f"step1.{k}": v for k, v in self.step1.coefficients_.items()},
                        **{f"step2.{k}": float(v) for k, v in zip(SIGMOID_NAMES, self.sigmoid_)}}
        self.objective_ = {"step1": self.step1.objective_, "step2": "least squares on accuracy (curve_fit)"}
        self.warnings_ = [f"step1: {w}" for w in self.step1.warnings_]
        for i, name in enumerate(SIGMOID_NAMES):
            lo, hi = SIGMOID_BOUNDS[0][i], SIGMOID_BOUNDS[1][i]
            if np.isclose(self.sigmoid_[i], lo) or np.isclose(self.sigmoid_[i], hi):
                self.warnings_.append(f"step2.{name} sits on its bound; the sigmoid is poorly determined")
        self.n_points_ = len(table)
        return self

    def bootstrap(self, table: Table, n: int, seed: int = 0) -> "TwoStep":
        if n <= 0:
            self.step1.bootstrap(self.step1_table(table), 0)
            self.samples_, self.sigmoid_samples_ = None, None
            return self
        self.step1.bootstrap(self.step1_table(table), n, seed)
        x, y = self.step2_data_
        rng = np.random.default_rng(seed + 1)
        draws = []
        for _ in each(range(n), n, f"bootstrap {self.name} (step 2)", "fit"):
            pick = np.concatenate([[0], rng.integers(1, len(x), len(x) - 1)])  # keep the anchor in every resample
            try:
                draws.append(self.fit_sigmoid(x[pick], y[pick], p0=self.sigmoid_))
            except RuntimeError:
                draws.append(np.full(4, np.nan))
        self.sigmoid_samples_ = np.array(draws)
        self.samples_ = {**{f"step1.{k}": v for k, v in self.step1.samples_.items()},
                         **{f"step2.{k}": self.sigmoid_samples_[:, i] for i, k in enumerate(SIGMOID_NAMES)}}
        return self

    def calibrate(self, table: Table, options: IntervalOptions, seed: int = 0) -> "TwoStep":
        """Step 1's error model from its own rolling backtests; step 2's scatter of accuracy around the sigmoid."""
        self.step1.calibrate(self.step1_table(table), options, seed)
        self._set_error(self.step1.error_, prefix="step1: ")
        # One checkpoint's scatter: the raw points (the fit's are smoothed over a window), anchor left out.
        x, y = self.step2_points(table, window=1)
        self.step2_noise_ = noise_sd(y[1:] - sigmoid(x[1:], *self.sigmoid_), len(SIGMOID_NAMES)) \
            if self.error_ is not None else 0.0
        return self

    def interval_summary(self) -> dict:
        out = self.step1.interval_summary()
        if self.error_ is not None:
            out["step2_noise_sd"] = self.step2_noise_
        return out

    def _accuracy(self, task_log_draws: np.ndarray, noise: float, seed: int) -> np.ndarray:
        """Accuracy draws: each task-loss draw through a sigmoid draw (cycled), plus step 2's scatter."""
        curves = self.sigmoid_[None, :] if self.sigmoid_samples_ is None else self.sigmoid_samples_
        pick = curves[np.arange(len(task_log_draws)) % len(curves)]
        draws = sigmoid(np.exp(task_log_draws), *(pick[:, i, None] for i in range(len(SIGMOID_NAMES))))
        if noise > 0:
            draws = draws + np.random.default_rng(seed).normal(0, noise, draws.shape)
        return np.clip(draws, 0.0, 1.0)

    def predict_all(self, points: Table) -> list[Prediction]:
        point, task_draws, task_band, dist = self.step1.log_draws(points)
        task = self.step1.prediction(point, task_draws, task_band, dist, metric="task_loss")
        accuracy = sigmoid(task.value, *self.sigmoid_)
        noise = self.step2_noise_ if self.error_ is not None else 0.0
        draws = None if task_draws is None else self._accuracy(task_draws, noise, seed=1)
        band = None if task_band is None else self._accuracy(task_band, 0.0, seed=1)
        parts = {"coefficients": np.nanstd(band, axis=0) if band is not None else np.full_like(accuracy, np.nan)}
        if self.error_ is not None:  # step 1's parts carried through the sigmoid's slope at the forecast
            step = 1e-4 * task.value
            slope = np.abs(sigmoid(task.value + step, *self.sigmoid_) - sigmoid(task.value - step, *self.sigmoid_)) \
                / (2 * step)
            carried = self.error_.parts(dist)
            parts.update(noise=np.hypot(slope * task.value * carried["noise"], noise),
                         extrapolation=slope * task.value * carried["extrapolation"])
        return [task, Prediction.from_draws("accuracy", accuracy, draws, band, self.ci_level, parts, dist)]

    def predict(self, points: Table) -> Prediction:
        return self.predict_all(points)[-1]
