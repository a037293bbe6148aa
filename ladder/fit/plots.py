"""PNG plots of a fit: loss vs compute with the law and the forecast band, residuals, bootstrap exponents,
isoFLOP parabolas and the frontier. Each returns the paths it wrote."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ladder.fit.table import Table, flops_per_nd  # noqa: E402


def save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def plain_log_axis(ax) -> None:
    """Tick labels as plain numbers (0.5, 2, 3, 1e+04) on log axes, not 5x10^-1."""
    from matplotlib.ticker import FuncFormatter

    def minor(axis):  # 2, 3, 5 between the decades, on an axis short enough to have room for them
        def label(v, _):
            lo, hi = sorted(axis.get_view_interval())
            return f"{v:g}" if hi / max(lo, 1e-300) < 30 and f"{v:.1g}"[0] in "235" else ""
        return FuncFormatter(label)

    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() == "log":
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(minor(axis))


def plot_fit(law, table: Table, result: dict, directory: Path) -> list[Path]:
    paths = []
    if law.predicts_loss and law.metric == "loss":
        paths.append(loss_vs_compute(law, table, result, directory / "loss_vs_compute.png"))
        paths.append(residuals(law, table, directory / "residuals.png"))
    if getattr(law, "optima_", None) is not None:
        paths.append(frontier(law, table, result, directory / "frontier.png"))
    if law.samples_:
        paths.append(bootstrap_exponents(law, directory / "bootstrap.png"))
    if law.name == "two_step":
        paths.append(two_step(law, table, directory / "two_step.png"))
    if result.get("backtest"):
        paths.append(backtest_errors(result["backtest"], directory / "backtest.png"))
    return paths


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
        ax.errorbar(x, error, yerr=[np.clip(error - lo, 0, None), np.clip(hi - error, 0, None)], fmt="o", ms=3, lw=0.8, color=color, alpha=0.7,
                    label=f"fold {fold} ({np.mean([r['covered'] for r in own]):.0%} covered)")
    ax.axhline(0, color="gray", lw=1)
    ax.set(xlabel="extrapolation distance (e-folds beyond the largest fitted value)",
           ylabel="forecast / actual - 1 (%)",
           title=f"backtest: {backtest['coverage']:.0%} of {len(rows)} rows inside their "
                 f"{backtest.get('level', 0.95):.0%} interval")
    ax.legend(fontsize=8)
    return save(fig, path)


def loss_vs_compute(law, table: Table, result: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    log_n = np.log10(table["params"])
    norm = matplotlib.colors.Normalize(log_n.min(), log_n.max() + 1e-9)
    points = ax.scatter(table["flops"], table["loss"], c=log_n, cmap="viridis", norm=norm, s=16, zorder=3)
    fig.colorbar(points, ax=ax, label="log10 params")
    k = flops_per_nd(table)
    if set(getattr(law, "variables", ())) == {"params", "tokens"}:
        sizes = np.unique(table["params"])
        for size in sizes[np.unique(np.linspace(0, len(sizes) - 1, min(8, len(sizes))).round().astype(int))]:
            own = table["tokens"][table["params"] == size]
            tokens = np.geomspace(own.min() / 2, own.max() * 2, 50)
            curve = law.predict(Table({"params": np.full(50, size), "tokens": tokens, "flops": k * size * tokens}))
            ax.plot(k * size * tokens, curve.value, color=plt.cm.viridis(norm(np.log10(size))), lw=1)
    for p in result.get("predictions", []):
        if p.get("metric") == "loss":
            has_band = np.isfinite(p["lo"]) and np.isfinite(p["hi"])
            ax.errorbar([p["flops"]], [p["value"]], yerr=[[p["value"] - p["lo"]], [p["hi"] - p["value"]]]
                        if has_band else None, fmt="*", color="crimson", ms=12, capsize=4, zorder=4,
                        label=f"forecast {p['name']}")
    for actual in result.get("actuals", []):
        ax.scatter([actual["flops"]], [actual["loss"]], marker="o", facecolors="none", edgecolors="black", s=90,
                   zorder=5, label=f"actual {actual['name']}")
    backtest_rows = (result.get("backtest") or {}).get("rows", [])
    if backtest_rows:
        ax.scatter([r["flops"] for r in backtest_rows], [r["actual"] for r in backtest_rows], marker="x",
                   color="black", zorder=5, label="held out (backtest)")
    ax.set(xscale="log", yscale="log", xlabel=f"training FLOPs ({result.get('flops_convention', '')})",
           ylabel="loss", title=f"{law.name}: loss vs compute")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return save(fig, path)


def residuals(law, table: Table, path: Path) -> Path:
    residual = table["loss"] / law.predict(table).value - 1
    labels = table["rung"] if "rung" in table else np.array([f"N={n:.3g}" for n in table["params"]])
    names = list(dict.fromkeys(labels.tolist()))
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(names)), 4))
    for i, name in enumerate(names):
        rows = labels == name
        ax.scatter(np.full(rows.sum(), i), 100 * residual[rows], s=14)
    ax.axhline(0, color="gray", lw=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set(ylabel="observed / fitted - 1 (%)", title=f"{law.name}: residuals by rung")
    return save(fig, path)


def bootstrap_exponents(law, path: Path) -> Path:
    names = [n for n in law.samples_ if n.split(".")[-1] in ("alpha", "beta", "a", "b")]
    names = names or list(law.samples_)[:4]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3), squeeze=False)
    for ax, name in zip(axes[0], names):
        draws = law.samples_[name][np.isfinite(law.samples_[name])]
        # draws piled on a bound differ by rounding only: 40 bins of that width do not exist
        spread = np.ptp(draws) > 1e-9 * max(1.0, float(np.abs(draws).max())) if draws.size else False
        ax.hist(draws, bins=40 if spread else 1, color="steelblue")
        ax.set_ylabel("resamples")
        ax.axvline(law.params_[name], color="crimson")
        ax.set(title=name, xlabel="bootstrap draws")
    return save(fig, path)


def frontier(law, table: Table, result: dict, path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    if law.name == "isoflop":
        for rows in law.groups(table):
            log_n, loss = np.log(table["params"][rows]), table["loss"][rows]
            left.scatter(np.exp(log_n), loss, s=14)
            if len(np.unique(log_n)) >= 3:
                coef = np.polyfit(log_n, loss, 2)
                grid = np.linspace(log_n.min(), log_n.max(), 50)
                left.plot(np.exp(grid), np.polyval(coef, grid), lw=1)
        left.set(xscale="log", xlabel="params", ylabel="loss", title="isoFLOP curves")
    else:
        left.scatter(table["flops"], table["loss"], s=8, c=np.log(table["params"]))
        left.set(xscale="log", yscale="log", xlabel="FLOPs", ylabel="loss", title="loss envelope")
    optima = law.optima_
    right.scatter(optima["flops"], optima["params"], color="black", label="optima")
    grid = np.geomspace(optima["flops"].min() / 3, optima["flops"].max() * 30, 50)
    fit = law.compute_optimal(grid)
    right.plot(grid, fit["params"], color="crimson", label=f"N_opt ~ C^{law.params_['a']:.3f}")
    if "params_ci" in fit:
        band = np.array(fit["params_ci"])
        right.fill_between(grid, band[:, 0], band[:, 1], color="crimson", alpha=0.2)
    right.set(xscale="log", yscale="log", xlabel="FLOPs", ylabel="N_opt", title="compute-optimal frontier")
    right.legend(fontsize=8)
    return save(fig, path)


def two_step(law, table: Table, path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    step1 = law.step1_table(table)
    fitted = law.step1.predict(step1).value
    left.scatter(step1["flops"], step1["task_loss"], label="observed")
    left.scatter(step1["flops"], fitted, marker="x", label="step 1 fit")
    left.set(xscale="log", xlabel="FLOPs", ylabel="task loss", title="step 1: (N, D) -> task loss")
    left.legend(fontsize=8)
    x, y = law.step2_data_
    right.scatter(x, y, s=8)
    grid = np.linspace(0, x.max() * 1.1, 100)
    from ladder.fit.laws.two_step import sigmoid
    right.plot(grid, sigmoid(grid, *law.sigmoid_), color="crimson")
    right.set(xlabel="task loss", ylabel="accuracy", title="step 2: task loss -> accuracy")
    return save(fig, path)


def loss_curves(metrics: dict, path: Path) -> Path:
    """Validation loss against tokens for every run (main run and budget results), one line per rung."""
    from ladder.io import read_metrics
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, file) in enumerate(metrics.items()):
        if not Path(file).exists():
            continue
        records = read_metrics(file)
        color = plt.cm.viridis(i / max(1, len(metrics) - 1))
        train = [r for r in records if "loss" in r and "branch" not in r]
        ax.plot([r["tokens"] for r in train], [r["loss"] for r in train], color=color, alpha=0.25, lw=0.8)
        val = [r for r in records if "val_loss" in r and "budget" not in r]
        ax.plot([r["tokens"] for r in val], [r["val_loss"] for r in val], color=color, lw=1.5, label=name)
        budgets = [r for r in records if "budget" in r]
        ax.scatter([r["tokens"] for r in budgets], [r["val_loss"] for r in budgets], color=color, marker="*", s=80,
                   zorder=3)
    ax.set(xscale="log", xlabel="tokens", ylabel="loss", title="loss curves (faint: train; line: validation; "
                                                                "stars: budgets after cooldown)")
    ax.legend(fontsize=8)
    return save(fig, path)
