"""PNG plots of a fit: loss vs compute with the law, its compute-optimal frontier and the forecast, residuals,
bootstrap draws, the compute-optimal frontier (N_opt vs C), isoFLOP parabolas, the two-step law and the backtest.
Each returns the path it wrote. Every axis says what it counts (N's convention, C's FLOPs convention), every line and
marker has a legend entry, and log axes read as plain numbers."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ladder.fit.table import Table, flops_per_nd  # noqa: E402
from ladder.io import atomic_write_bytes  # noqa: E402

FORECAST, ACTUAL = "crimson", "black"


def save(fig, path: Path) -> Path:
    """The figure as a PNG, written as every output is (atomic_write_bytes: no link followed, nothing torn)."""
    from io import BytesIO

    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def plain_log_axis(ax) -> None:
    """Tick labels as plain numbers (0.5, 2, 3, 1e+04) on log axes, not 5x10^-1."""
    from matplotlib.ticker import FuncFormatter

    def minor(axis):  # 2, 3, 5 between the decades, on an axis short enough to have room for them
        def label(v, _):
            lo, hi = sorted(axis.get_view_interval())
            return f"{v:g}" if hi / max(lo, 1e-300) < 30 and f"{v:.0e}"[0] in "235" else ""
        return FuncFormatter(label)

    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() == "log":
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(minor(axis))


def n_label(result: dict) -> str:
    """'N (non_embedding parameters)' or "N (column 'params')": what the fit counted as N."""
    used = str(result.get("params_used") or "")
    column = re.match(r"column '([^']+)'", used)
    if column:
        return f"N (column '{column.group(1)}')"
    return f"N ({used.split(' (')[0]})" if used else "N (parameters)"


def c_label(result: dict) -> str:
    convention = str(result.get("flops_convention") or "")
    return f"training compute C (FLOPs, {convention if convention.isidentifier() else 'as the table gives them'})"


LOSS_LABEL = "loss (nats per token)"


def plot_fit(law, table: Table, result: dict, directory: Path) -> list[Path]:
    paths = []
    if law.predicts_loss and law.metric == "loss":
        paths.append(loss_vs_compute(law, table, result, directory / "loss_vs_compute.png"))
        paths.append(residuals(law, table, result, directory / "residuals.png"))
    if getattr(law, "optima_", None) is not None:
        paths.append(frontier(law, table, result, directory / "frontier.png"))
    elif result.get("compute_optimal") and set(getattr(law, "variables", ())) == {"params", "tokens"}:
        paths.append(compute_optimal(law, table, result, directory / "compute_optimal.png"))
    if law.samples_:
        paths.append(bootstrap_exponents(law, directory / "bootstrap.png"))
    if law.name == "two_step":
        paths.append(two_step(law, table, result, directory / "two_step.png"))
    if result.get("backtest"):
        paths.append(backtest_errors(result["backtest"], directory / "backtest.png"))
    if result.get("curves"):
        paths.append(forecast_curves(law, table, result, directory / "curves.png"))
    return paths


def _compute_grid(table: Table, result: dict, n: int = 60) -> np.ndarray:
    """From below the smallest run to past the farthest target, so every target sits inside the axes."""
    reach = [table["flops"].max(), *[p["flops"] for p in result.get("predictions", []) if np.isfinite(p["flops"])]]
    return np.geomspace(table["flops"].min() / 2, max(reach) * 2, n)


def error_bars(value, lo, hi):
    """matplotlib's [below, above] from an interval; a point outside its own percentile interval (a skewed or
    clipped bootstrap) gets no bar on that side, and an interval that is not finite gets none."""
    value, lo, hi = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (value, lo, hi))
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        return None
    return [np.clip(value - lo, 0, None), np.clip(hi - value, 0, None)]


def _forecast_marker(ax, x, p: dict, label: str) -> None:
    ax.errorbar([x], [p["value"]], yerr=error_bars(p["value"], p["lo"], p["hi"]), fmt="*", color=FORECAST, ms=13,
                capsize=4, zorder=6, label=label)


def loss_vs_compute(law, table: Table, result: dict, path: Path) -> Path:
    """The runs against compute, the law at a few sizes and at the target's, its compute-optimal frontier, and the
    forecast with its predictive interval (with the measured loss, where there is one)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    log_n = np.log10(table["params"])
    norm = matplotlib.colors.Normalize(log_n.min(), log_n.max() + 1e-9)
    points = ax.scatter(table["flops"], table["loss"], c=log_n, cmap="viridis", norm=norm, s=18, zorder=3,
                        label="fitted runs")
    fig.colorbar(points, ax=ax, label=f"log10 {n_label(result)}")
    k = flops_per_nd(table)
    grid = _compute_grid(table, result)
    if set(getattr(law, "variables", ())) == {"params", "tokens"}:
        sizes = np.unique(table["params"])
        for i, size in enumerate(sizes[np.unique(np.linspace(0, len(sizes) - 1, min(8, len(sizes))).round()
                                                 .astype(int))]):
            own = table["tokens"][table["params"] == size]
            tokens = np.geomspace(own.min() / 2, own.max() * 2, 50)
            curve = law.predict(Table({"params": np.full(50, size), "tokens": tokens, "flops": k * size * tokens}))
            ax.plot(k * size * tokens, curve.value, color=plt.cm.viridis(norm(np.log10(size))), lw=1,
                    label="law at each fitted N" if i == 0 else None)
        for p in result.get("predictions", [])[:1]:
            if p.get("metric") == "loss" and np.isfinite(p["params"]):
                tokens = np.geomspace(p["tokens"] / 30, p["tokens"] * 2, 50)  # near the target's budget
                curve = law.predict(Table({"params": np.full(50, p["params"]), "tokens": tokens,
                                           "flops": k * p["params"] * tokens}))
                ax.plot(k * p["params"] * tokens, curve.value, color=FORECAST, lw=1, ls="--", label=f"law at the target's N "
                                                                               f"({p['params']:.3g})")
    optimal = law.compute_optimal(grid) if result.get("compute_optimal") else None
    if optimal and "loss" in optimal:
        ax.plot(grid, optimal["loss"], color="gray", lw=1.5, ls=":", label="compute-optimal frontier (law)")
    for p in result.get("predictions", []):
        if p.get("metric") == "loss":
            _forecast_marker(ax, p["flops"], p, f"forecast {p['name']} ({result.get('ci_level', 0.95):.0%} interval)")
    for actual in result.get("actuals", []):
        ax.scatter([actual["flops"]], [actual["loss"]], marker="o", facecolors="none", edgecolors=ACTUAL, s=110,
                   zorder=7, label=f"measured {actual['name']}")
    backtest_rows = (result.get("backtest") or {}).get("rows", [])
    if backtest_rows:
        ax.scatter([r["flops"] for r in backtest_rows], [r["actual"] for r in backtest_rows], marker="x", s=14,
                   color=ACTUAL, lw=0.8, zorder=4, label="held out by the backtest")
    ax.set(xscale="log", yscale="log", xlabel=c_label(result), ylabel=LOSS_LABEL,
           title=f"{law.name}: loss vs compute")
    ax.set_xlim(grid[0], grid[-1])
    plain_log_axis(ax)
    ax.legend(fontsize=7.5, loc="upper right")
    return save(fig, path)


def residuals(law, table: Table, result: dict, path: Path) -> Path:
    """Each point against the law fitted to all of them, by rung (against N when there are over 30 rungs or no rung
    names); one marker per budget."""
    residual = 100 * (table["loss"] / law.predict(table).value - 1)
    labels = table["rung"] if "rung" in table else table["run"] if "run" in table else None
    labels = labels.astype(str) if labels is not None else None
    order = np.argsort(table["params"], kind="stable")
    names = list(dict.fromkeys(labels[order].tolist())) if labels is not None else []
    by_rung = 0 < len(names) <= 30
    budgets = table["budget"].astype(str) if "budget" in table else None
    fig, ax = plt.subplots(figsize=(max(6.5, 0.45 * len(names)) if by_rung else 7, 4.2))
    markers = "osD^v<>ph"
    groups = dict.fromkeys(budgets.tolist()) if budgets is not None else [None]
    for j, budget in enumerate(groups):
        rows = budgets == budget if budget is not None else np.ones(len(table), bool)
        x = np.array([names.index(n) for n in labels[rows]]) if by_rung else table["params"][rows]
        ax.scatter(x, residual[rows], s=20, marker=markers[j % len(markers)],
                   label=str(budget) if budget is not None else "points")
    ax.axhline(0, color="gray", lw=1, label="the law")
    if by_rung:
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_xlabel("rung (by N)")
    else:
        ax.set(xscale="log", xlabel=n_label(result))
        plain_log_axis(ax)
    ax.set(ylabel="observed / fitted - 1 (%)", title=f"{law.name}: residuals")
    ax.legend(fontsize=7.5, title="budget" if budgets is not None and len(groups) <= 8 else None,
              title_fontsize=7.5, ncol=1 if len(groups) <= 8 else 3)
    return save(fig, path)


def bootstrap_exponents(law, path: Path) -> Path:
    names = [n for n in law.samples_ if n.split(".")[-1] in ("alpha", "beta", "a", "b")]
    names = names or list(law.samples_)[:4]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3), squeeze=False)
    for ax, name in zip(axes[0], names):
        draws = law.samples_[name][np.isfinite(law.samples_[name])]
        # draws piled on a bound differ by rounding only: 40 bins of that width do not exist
        spread = np.ptp(draws) > 1e-9 * max(1.0, float(np.abs(draws).max())) if draws.size else False
        ax.hist(draws, bins=40 if spread else 1, color="steelblue", label=f"{len(draws)} resamples")
        ax.axvline(law.coefficients_[name], color=FORECAST, label="fit to all points")
        ax.set(title=name, xlabel=f"{name} (bootstrap draws)", ylabel="resamples")
        ax.ticklabel_format(axis="x", useOffset=False)  # draws piled on a bound: no "1e-12+0.1" offset label
        ax.legend(fontsize=7)
    return save(fig, path)


def compute_optimal(law, table: Table, result: dict, path: Path) -> Path:
    """N_opt(C) of a law in N and D, with its bootstrap band, beside the fitted runs and the target."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    grid = _compute_grid(table, result)
    optimal = law.compute_optimal(grid)
    ax.plot(grid, optimal["params"], color="gray", label=f"N_opt ~ C^{optimal['a']:.3f} (law)")
    if "params_ci" in optimal:
        band = np.array(optimal["params_ci"])
        ax.fill_between(grid, band[:, 0], band[:, 1], color="gray", alpha=0.25,
                        label=f"{result.get('ci_level', 0.95):.0%} bootstrap band")
    ax.scatter(table["flops"], table["params"], s=16, color="steelblue", zorder=3, label="fitted runs")
    for p in result.get("predictions", [])[:1]:
        if np.isfinite(p["params"]):
            ax.scatter([p["flops"]], [p["params"]], marker="*", s=160, color=FORECAST, zorder=4,
                       label=f"target {p['name']}")
    ax.set(xscale="log", yscale="log", xlabel=c_label(result), ylabel=f"{n_label(result)}",
           title="compute-optimal frontier")
    ax.set_xlim(grid[0], grid[-1])
    plain_log_axis(ax)
    ax.legend(fontsize=8)
    return save(fig, path)


def frontier(law, table: Table, result: dict, path: Path) -> Path:
    """isoFLOP parabolas (or the loss envelope) with their minima, and the frontier fitted to the minima."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    optima = law.optima_
    if law.name == "isoflop":
        groups = law.groups(table)
        vertices = dict(zip(optima["flops"].tolist(), optima["params"].tolist()))  # budget -> N at its minimum
        for i, rows in enumerate(groups):
            color = plt.cm.viridis(i / max(1, len(groups) - 1))
            log_n, loss = np.log(table["params"][rows]), table["loss"][rows]
            budget = float(np.median(table["flops"][rows]))
            left.scatter(np.exp(log_n), loss, s=14, color=color, label=f"C = {budget:.2g}")
            if len(np.unique(log_n)) >= 3:
                near = np.argsort(np.abs(log_n - log_n[np.argmin(loss)]))[:law.fit_points or len(log_n)]
                coef = np.polyfit(log_n[near], loss[near], 2)  # the parabola its optimum came from
                grid = np.linspace(log_n[near].min(), log_n[near].max(), 50)
                left.plot(np.exp(grid), np.polyval(coef, grid), lw=1, color=color)
                if budget in vertices:
                    n_opt = vertices[budget]
                    left.scatter([n_opt], [np.polyval(coef, np.log(n_opt))], marker="v", s=60, color=FORECAST,
                                 zorder=4, label="minimum (optimum)" if budget == next(iter(vertices)) else None)
        left.set(xscale="log", xlabel=n_label(result), ylabel=LOSS_LABEL, title="isoFLOP curves")
        left.legend(fontsize=7, ncol=2)
    else:
        points = left.scatter(table["flops"], table["loss"], s=8, c=np.log10(table["params"]), label="runs")
        fig.colorbar(points, ax=left, label=f"log10 {n_label(result)}")
        left.set(xscale="log", yscale="log", xlabel=c_label(result), ylabel=LOSS_LABEL, title="loss envelope")
        left.legend(fontsize=8)
    plain_log_axis(left)
    right.scatter(optima["flops"], optima["params"], color=ACTUAL, label="optima (fitted)", zorder=3)
    reach = [optima["flops"].max() * 30, *[p["flops"] * 2 for p in result.get("predictions", [])
                                           if np.isfinite(p["flops"])]]
    grid = np.geomspace(optima["flops"].min() / 3, max(reach), 60)
    fit = law.compute_optimal(grid)
    right.plot(grid, fit["params"], color=FORECAST, label=f"N_opt ~ C^{law.coefficients_['a']:.3f}")
    if "params_ci" in fit:
        band = np.array(fit["params_ci"])
        right.fill_between(grid, band[:, 0], band[:, 1], color=FORECAST, alpha=0.2,
                           label=f"{result.get('ci_level', 0.95):.0%} bootstrap band")
    for p in result.get("predictions", []):
        if p.get("metric") == "params_opt":
            _forecast_marker(right, p["flops"], p, f"forecast {p['name']}")
    right.set(xscale="log", yscale="log", xlabel=c_label(result), ylabel=f"N_opt, {n_label(result)}",
              title="compute-optimal frontier")
    right.set_xlim(grid[0], grid[-1])
    plain_log_axis(right)
    right.legend(fontsize=8)
    return save(fig, path)


def two_step(law, table: Table, result: dict, path: Path) -> Path:
    """Step 1 (task loss against compute) and step 2 (accuracy against task loss), each with the target's
    forecast and its interval."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    step1 = law.step1_table(table)
    fitted = law.step1.predict(step1).value
    left.scatter(step1["flops"], step1["task_loss"], s=16, label="observed (step 1's points)")
    left.scatter(step1["flops"], fitted, marker="x", label="step 1 fit")
    x, y = law.step2_data_
    right.scatter(x, y, s=8, alpha=0.6, label="every evaluation (smoothed)")
    predicted = {p["metric"]: p for p in result.get("predictions", [])}
    grid_hi = max(x.max(), predicted["task_loss"]["hi"] if "task_loss" in predicted else 0) * 1.1
    grid = np.linspace(0, grid_hi, 100)
    from ladder.fit.laws.two_step import sigmoid
    right.plot(grid, sigmoid(grid, *law.sigmoid_), color="gray", label="step 2 sigmoid")
    reach = [step1["flops"].max()]
    if "task_loss" in predicted:
        task_loss, accuracy = predicted["task_loss"], predicted.get("accuracy")
        at = 6 * task_loss["params"] * task_loss["tokens"]  # step 1's compute, as the law counts it
        reach.append(at)
        _forecast_marker(left, at, task_loss, f"forecast {task_loss['name']}")
        if accuracy is not None:
            right.errorbar([task_loss["value"]], [accuracy["value"]],
                           xerr=error_bars(task_loss["value"], task_loss["lo"], task_loss["hi"]),
                           yerr=error_bars(accuracy["value"], accuracy["lo"], accuracy["hi"]), fmt="*",
                           color=FORECAST, ms=13, capsize=4, zorder=6, label=f"forecast {accuracy['name']}")
    task = f"{law.task} " if getattr(law, "task", None) else ""
    left.set(xscale="log", xlabel=f"compute 6 N D (FLOPs), {n_label(result)}",
             ylabel=f"{task}task loss (bits per byte)", title="step 1: (N, D) -> task loss")
    left.set_xlim(step1["flops"].min() / 2, max(reach) * 2)
    plain_log_axis(left)
    left.legend(fontsize=8)
    right.set(xlabel=f"{task}task loss (bits per byte)", ylabel=f"{getattr(law, 'accuracy', 'accuracy')}",
              title="step 2: task loss -> accuracy")
    right.legend(fontsize=8)
    return save(fig, path)


def backtest_errors(backtest: dict, path: Path) -> Path:
    """Each held-out row's forecast error against its extrapolation distance, with its interval, by fold."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    rows = backtest["rows"]
    folds = sorted({r["fold"] for r in rows})
    for i, fold in enumerate(folds):
        own = [r for r in rows if r["fold"] == fold]
        x = np.array([r["distance_efolds"] for r in own]) + 0.015 * (i - len(folds) / 2)  # folds side by side
        error = 100 * np.array([r["predicted"] / r["actual"] - 1 for r in own])
        lo = 100 * np.array([r["lo"] / r["actual"] - 1 for r in own])
        hi = 100 * np.array([r["hi"] / r["actual"] - 1 for r in own])
        color = plt.cm.viridis(i / max(1, len(folds) - 1))
        ax.errorbar(x, error, yerr=error_bars(error, lo, hi), fmt="o", ms=3,
                    lw=0.8, color=color, alpha=0.7,
                    label=f"fold {fold} ({np.mean([r['covered'] for r in own]):.0%} covered)")
    ax.axhline(0, color="gray", lw=1, label="no error")
    ax.set(xlabel="extrapolation distance (e-folds of N beyond the largest fitted size)",
           ylabel="forecast / actual - 1 (%)",
           title=f"backtest: {backtest['coverage']:.0%} of {len(rows)} rows inside their "
                 f"{backtest.get('level', 0.95):.0%} interval")
    ax.legend(fontsize=8)
    return save(fig, path)


def loss_curves(metrics: dict[str, list[dict]], path: Path) -> Path:
    """Validation loss against tokens for every run (main run and budget results), one colour per rung; `metrics`
    maps a run's name to its records (RunDir.metrics)."""
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (name, records) in enumerate(metrics.items()):
        if not records:
            continue
        color = plt.cm.viridis(i / max(1, len(metrics) - 1))
        train = [r for r in records if "loss" in r and "branch" not in r]
        ax.plot([r["tokens"] for r in train], [r["loss"] for r in train], color=color, alpha=0.25, lw=0.8)
        val = [r for r in records if "val_loss" in r and "budget" not in r]
        ax.plot([r["tokens"] for r in val], [r["val_loss"] for r in val], color=color, lw=1.5, label=name)
        budgets = [r for r in records if "budget" in r and "val_loss" in r]  # not `ladder eval`'s task scores
        ax.scatter([r["tokens"] for r in budgets], [r["val_loss"] for r in budgets], color=color, marker="*", s=80,
                   zorder=3)
    kinds = [Line2D([], [], color="gray", alpha=0.35, lw=0.8, label="train loss"),
             Line2D([], [], color="gray", lw=1.5, label="validation loss"),
             Line2D([], [], color="gray", marker="*", ls="", ms=9, label="budget (after its cooldown)")]
    handles, _ = ax.get_legend_handles_labels()
    ax.set(xscale="log", yscale="log", xlabel="tokens D", ylabel=LOSS_LABEL, title="loss curves")
    plain_log_axis(ax)
    ax.legend(handles=handles + kinds, fontsize=7.5, ncol=2)
    return save(fig, path)


def forecast_curves(law, table: Table | None, result: dict, path: Path) -> Path:
    """The curve law: each rung's evaluations with the law through them (when `table` is given), and each target's
    forecast curve with its band."""
    fig, ax = plt.subplots(figsize=(8, 5))
    runs = [] if table is None else table["run"] if "run" in table else np.full(len(table), "")
    for i, run in enumerate(dict.fromkeys(runs)):
        rows = table.take(np.flatnonzero(runs == run))
        order = np.argsort(rows["tokens"])
        rows = rows.take(order)
        color = plt.cm.viridis(i / max(1, len(set(runs)) - 1))
        ax.scatter(rows["tokens"], rows["loss"], color=color, s=14, label=str(run))
        main = np.flatnonzero(rows["lr_frac"] >= 0.999)  # the law through the main run's points
        if len(main) > 1:
            ax.plot(rows["tokens"][main], law.predict(rows.take(main)).value, color=color, lw=1, alpha=0.7)
    for curve in result["curves"]:
        tokens = np.asarray(curve["tokens"])
        ax.plot(tokens, curve["value"], color=FORECAST, lw=1.5, label=f"forecast: {curve['name']}")
        ax.fill_between(tokens, curve["lo"], curve["hi"], color=FORECAST, alpha=0.15,
                        label=f"{curve['level']:.0%} band")
    ax.set(xscale="log", yscale="log", xlabel="tokens D", ylabel=LOSS_LABEL, title="loss curves and the forecast run")
    plain_log_axis(ax)
    ax.legend(fontsize=7.5, ncol=2)
    return save(fig, path)


def plot_watch(curve: dict, report: dict, path: Path) -> Path:
    """A run's evaluations against its forecast band, and the final loss forecast from the run so far."""
    fig, ax = plt.subplots(figsize=(8, 5))
    tokens = np.asarray(curve["tokens"])
    ax.plot(tokens, curve["value"], color=FORECAST, lw=1.5, label="forecast before the run")
    ax.fill_between(tokens, curve["lo"], curve["hi"], color=FORECAST, alpha=0.15, label=f"{curve['level']:.0%} band")
    given = report["curve_given_run"]
    ax.plot(given["tokens"], given["value"], color="steelblue", lw=1.2, ls="--", label="given the run so far")
    ax.fill_between(given["tokens"], given["lo"], given["hi"], color="steelblue", alpha=0.12)
    points = report["points"]
    ax.scatter([p["tokens"] for p in points], [p["loss"] for p in points],
               c=[ACTUAL if p["inside"] else "orange" for p in points], s=16, zorder=3, label="the run")
    ax.set(xscale="log", yscale="log", xlabel="tokens D", ylabel=LOSS_LABEL, title=f"watching {curve['name']}")
    plain_log_axis(ax)
    ax.legend(fontsize=8)
    return save(fig, path)
