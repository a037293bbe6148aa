"""The fit stage end to end: table -> law -> bootstrap -> warnings -> targets -> backtest -> fit.json and plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ladder.errors import LadderError, require
from ladder.fit.checks import flag_runs, off_by
from ladder.fit.calibrate import FOLD_FRACTIONS, IntervalOptions, interval_score, rolling_folds
from ladder.fit.collect import collect_runs
from ladder.fit.laws import Law, make_law
from ladder.fit.table import Table, standard_table
from ladder.io import atomic_write_json
from ladder.recipe import parse_budget, to_number


def input_columns(columns: dict, law_options: dict) -> dict:
    """The input's column names (`columns.*`), with a two_step law on an eval entry (`law.task`) reading that entry's
    bits per byte and its accuracy metric."""
    task = law_options.get("task")
    if not task:
        return dict(columns)
    accuracy = law_options.get("accuracy") or "acc"
    return {**columns, "task_loss": f"eval/{task}/bpb", "accuracy": f"eval/{task}/{accuracy}"}


def load_table(path: str | Path, columns: dict, required=("params", "tokens", "loss"), curves: bool = False,
               plan=None, include_changed: bool = False) -> Table:
    """A CSV, or the runs below a directory (`plan`'s changed rungs left out unless `include_changed`)."""
    path = Path(path)
    raw = collect_runs(path, curves, plan, include_changed) if path.is_dir() else Table.read_csv(path)
    return standard_table(raw, columns, str(path), required)


def residual_warnings(law: Law, table: Table, threshold: float = 4.0, min_relative: float = 0.01) -> list[str]:
    """Runs whose loss sits far off the law: more than `threshold` robust sigmas and more than 1%."""
    if not law.predicts_loss or law.metric != "loss":
        return []
    residual = np.log(table["loss"]) - np.log(law.predict(table).value)
    sigma = 1.4826 * np.median(np.abs(residual - np.median(residual))) + 1e-12
    names = table["rung"] if "rung" in table else table["run"] if "run" in table else None
    out = []
    for i in np.flatnonzero((np.abs(residual - np.median(residual)) > threshold * sigma)
                            & (np.abs(residual) > min_relative)):
        who = f"rung {names[i]}" if names is not None else f"row {i}"
        out.append(f"{who} (N={table['params'][i]:.3g}, D={table['tokens'][i]:.3g}) is {off_by(np.expm1(residual[i]))} "
                   f"off the law ({abs(residual[i] - np.median(residual)) / sigma:.1f} robust sigmas): "
                   f"undertuned or broken?")
    return out


def resolve_targets(target: dict, explicit: set[str], targets_file: str | None, flops_per_nd: float) -> Table:
    """Targets as a table of params, tokens, flops (NaN where only compute is known) and a name."""
    rows = []
    if targets_file:
        file = Table.read_csv(targets_file)
        for column in ("params", "tokens"):
            require(column in file, f"targets={targets_file}: needs columns params and tokens")
        for i in range(len(file)):
            params, tokens = float(file["params"][i]), float(file["tokens"][i])
            require(params > 0 and tokens > 0, f"targets={targets_file}: row {i} needs positive params and tokens")
            name = str(file["name"][i]) if "name" in file else f"target{i}"
            # a loss column travels along: laws that forecast from a loss (exp_error) read it
            loss = float(file["loss"][i]) if "loss" in file else np.nan
            rows.append((name, params, tokens, flops_per_nd * params * tokens, loss))
    if explicit:
        name = str(target.get("name") or "target")
        params = to_number(target["params"], "target.params") if target.get("params") is not None else None
        flops = to_number(target["flops"], "target.flops") if target.get("flops") is not None else None
        require(flops is None or flops > 0, f"target.flops={flops}: must be positive")
        tokens = None
        if "target.tokens" in explicit or (target.get("tokens") is not None and flops is None):
            require(params is not None, "target.tokens needs target.params (or give target.flops alone)")
            tokens = parse_budget(target["tokens"], int(params), int(flops_per_nd * params), 20, "target.tokens")
        if params is not None:
            require(params > 0, f"target.params={params}: must be positive")
            if tokens is None:
                require(flops is not None, "target: give target.tokens or target.flops with target.params")
                tokens = flops / (flops_per_nd * params)
            rows.append((name, params, tokens, flops_per_nd * params * tokens, np.nan))
        else:
            require(flops is not None, "target: give target.params and target.tokens, or target.flops alone")
            rows.append((name, np.nan, np.nan, flops, np.nan))
    names, params, tokens, flops, loss = zip(*rows) if rows else ((), (), (), (), ())
    out = {"name": list(names), "params": list(params), "tokens": list(tokens), "flops": list(flops)}
    if np.isfinite(np.asarray(loss, dtype=float)).any():
        out["loss"] = list(loss)
    return Table(out)


def predictions_for(law: Law, targets: Table) -> list[dict]:
    out = []
    point = np.isfinite(targets["params"]) if len(targets) else np.array([], bool)
    if point.any():
        require(law.predicts_loss, f"law {law.name} forecasts N_opt and D_opt from compute: give target.flops "
                                   f"alone, or use law=chinchilla for a loss at target.params/target.tokens")
        chosen = targets.take(np.flatnonzero(point))
        for prediction in law.predict_all(chosen):
            for i in range(len(chosen)):
                entry = {"name": chosen["name"][i], "params": chosen["params"][i], "tokens": chosen["tokens"][i],
                         "flops": chosen["flops"][i], "metric": prediction.metric,
                         prediction.metric: prediction.value[i], "value": prediction.value[i],
                         "lo": prediction.lo[i], "hi": prediction.hi[i]}
                if prediction.band_lo is not None:
                    entry.update(band_lo=prediction.band_lo[i], band_hi=prediction.band_hi[i])
                if prediction.distance is not None:
                    entry["distance_efolds"] = float(prediction.distance[i])
                if prediction.parts:
                    entry["parts_sd"] = {k: float(v[i]) for k, v in prediction.parts.items()}
                out.append(entry)
    compute_only = targets.take(np.flatnonzero(~point)) if len(targets) else targets
    if len(compute_only):
        optimal = law.compute_optimal(compute_only["flops"])
        require(optimal is not None, f"law {law.name} gives no compute-optimal point (it has no frontier, or its fit "
                                     f"does not scale: see its warnings); give target.params and target.tokens, or "
                                     f"use law=chinchilla, isoflop or envelope")
        for i in range(len(compute_only)):
            entry = {"name": compute_only["name"][i], "params": optimal["params"][i],
                     "tokens": optimal["tokens"][i], "flops": compute_only["flops"][i]}
            if "loss" in optimal:
                ci = optimal.get("loss_ci", [[np.nan, np.nan]] * len(compute_only))[i]
                entry.update(metric="loss", loss=optimal["loss"][i], value=optimal["loss"][i], lo=ci[0], hi=ci[1])
                if optimal.get("loss_band"):
                    entry.update(band_lo=optimal["loss_band"][i][0], band_hi=optimal["loss_band"][i][1])
                if "loss_distance" in optimal:
                    entry["distance_efolds"] = optimal["loss_distance"][i]
            else:
                ci = optimal.get("params_ci", [[np.nan, np.nan]] * len(compute_only))[i]
                entry.update(metric="params_opt", value=optimal["params"][i], lo=ci[0], hi=ci[1])
            out.append(entry)
    return out


def backtest_folds(table: Table, spec, fractions=FOLD_FRACTIONS) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(rule, fit rows, held-out rows) for `backtest=largest`, `rolling` or a compute cutoff. Rolling folds cut the
    model sizes (params) for every law."""
    if str(spec) == "largest":
        held = table["params"] == table["params"].max()
        folds = [("largest size held out", np.flatnonzero(~held), np.flatnonzero(held))]
    elif str(spec) == "rolling":
        log_n = np.log(table["params"])
        span = log_n.max() - log_n.min()
        folds = [(f"sizes up to {np.exp(log_n[fit].max()):.3g} ({(log_n[fit].max() - log_n.min()) / span:.0%} of "
                  f"the log-size range)", fit, held) for fit, held in rolling_folds(table["params"], fractions)]
        require(folds, "backtest=rolling: needs at least 3 sizes (2 to fit, 1 to forecast)")
    else:
        cutoff = to_number(spec, "backtest")
        held = table["flops"] > cutoff
        folds = [(f"rows above C={cutoff:.3g} held out", np.flatnonzero(~held), np.flatnonzero(held))]
    for rule, fit, held in folds:
        require(len(fit) and len(held), f"backtest={spec}: must leave rows on both sides of the split")
    return folds


def backtest(law_options: dict, table: Table, spec, n_boot: int, seed: int, ci_level: float,
             interval: dict | None = None, run_column: str = "run") -> dict:
    """Fit on the smaller rungs (or below a compute cutoff), forecast the held-out rows with the same intervals a
    user gets, and score them: error, coverage, interval score. `rolling` does so for every fold."""
    options = IntervalOptions.from_config(interval)
    rows, folds = [], []
    for k, (rule, fit_rows, held) in enumerate(backtest_folds(table, spec, options.folds)):
        train, test = table.take(fit_rows), table.take(held)
        if "final" in test and np.any(test["final"] == 1):  # score finished results, not intermediate checkpoints
            test = test.take(np.flatnonzero(test["final"] == 1))
        try:
            law = make_law(law_options, ci_level).fit(train).bootstrap(train, n_boot, seed)
            law.calibrate(train, options, seed)
        except LadderError as error:
            require(str(spec) == "rolling", str(error))
            folds.append({"fold": k, "rule": rule, "n_train": len(train), "skipped": str(error)})
            continue
        require(law.predicts_loss, f"backtest needs a law that predicts loss at (N, D); {law.name} does not")
        prediction = law.predict_all(test)[-1]
        actual = test[law.observed_column] if law.observed_column in test else test["loss"]
        score = interval_score(prediction.lo, prediction.hi, actual, ci_level)
        # the mean law's band alone (interval.method=bootstrap's interval): what the calibration adds to it
        band_lo, band_hi = (np.broadcast_to(np.nan if band is None else band, np.shape(prediction.value))
                            for band in (prediction.band_lo, prediction.band_hi))
        fold_rows = []
        for i in range(len(test)):
            row = {"fold": k, "params": test["params"][i], "tokens": test["tokens"][i], "flops": test["flops"][i],
                   "actual": actual[i], "predicted": prediction.value[i], "lo": prediction.lo[i],
                   "hi": prediction.hi[i], "band_lo": float(band_lo[i]), "band_hi": float(band_hi[i]),
                   "rel_error": (prediction.value[i] - actual[i]) / actual[i],
                   "covered": bool(prediction.lo[i] <= actual[i] <= prediction.hi[i]),
                   "interval_score": float(score[i]),
                   "distance_efolds": float(prediction.distance[i]) if prediction.distance is not None else np.nan,
                   "parts_sd": {part: float(sd[i]) for part, sd in prediction.parts.items()}}
            if "run" in test:
                row[run_column] = test["run"][i]  # under the input's own name (columns.run: rung by default)
            fold_rows.append(row)
        rows += fold_rows
        folds.append({"fold": k, "rule": rule, "n_train": len(train), "n_test": len(test),
                      "max_fitted_params": float(train["params"].max()), **_scores(fold_rows),
                      "warnings": [w for w in law.warnings_ if w.startswith(("interval", "step1: interval"))]})
    require(rows, f"backtest={spec}: no fold could be fitted ({folds[0].get('skipped') if folds else ''})")
    single = len(folds) == 1
    return {"rule": folds[0]["rule"] if single else f"rolling: {len(folds)} folds", "level": ci_level,
            **({"n_train": folds[0]["n_train"]} if single else {}), "n_test": len(rows), "metric": law.metric,
            "rows": rows, "run_column": run_column, "folds": folds, **_scores(rows)}


def _scores(rows: list[dict]) -> dict:
    errors = np.array([r["rel_error"] for r in rows])
    widths = np.array([(r["hi"] - r["lo"]) / r["predicted"] for r in rows])
    return {"coverage": float(np.mean([r["covered"] for r in rows])),
            "mean_abs_rel_error": float(np.mean(np.abs(errors))),
            "median_abs_rel_error": float(np.median(np.abs(errors))),
            "median_rel_width": float(np.nanmedian(widths)),
            "mean_interval_score": float(np.mean([r["interval_score"] for r in rows]))}


def run_fit(table: Table, law_options: dict, targets: Table, n_boot: int, seed: int, ci_level: float,
            backtest_spec=None, out: str | Path | None = None, plots: bool = True, source: str = "",
            interval: dict | None = None, run_column: str = "run", params_used: str | None = None,
            checks: dict | None = None, curves: dict | None = None) -> dict:
    """fit.json's content, written under `out`; `params_used` says what N is (recorded as fit.json's
    params_used); `checks` is the `fit` config group (flags before the fit) with the runs `excluded`."""
    law, result = fit_and_forecast(table, law_options, targets, n_boot, seed, ci_level, backtest_spec, source,
                                   interval, run_column, checks, curves)
    if params_used:
        result["params_used"] = params_used
    if out is not None:
        write_outputs(law, table, result, Path(out), plots)
    return result


def fit_and_forecast(table: Table, law_options: dict, targets: Table, n_boot: int, seed: int, ci_level: float,
                     backtest_spec=None, source: str = "", interval: dict | None = None,
                     run_column: str = "run", checks: dict | None = None,
                     curves: dict | None = None) -> tuple[Law, dict]:
    """The fitted law and fit.json's content, nothing written. `interval` is the interval config group;
    `curves` maps a target's name to the points along its run (ladder.fit.curves.target_paths), which a law that
    reads curves forecasts as fit.json's `curves`;
    `run_column` names the runs in the backtest's rows as the input named them; `checks` the `fit` group (the runs
    flagged before the fit; None: no checks), with `excluded` and `params_column` (the input's column of N)."""
    require(0 < ci_level < 1, f"ci_level={ci_level}: a probability between 0 and 1, e.g. 0.95")
    require(n_boot >= 0, f"bootstrap.n={n_boot}: the number of resamples, 0 (no intervals) or more (1000 is usual)")
    flags, notes = flag_runs(law_options, table, checks, ci_level) if checks else ([], [])
    options = IntervalOptions.from_config(interval)
    law = make_law(law_options, ci_level)
    law.fit(table).bootstrap(table, n_boot, seed)
    law.warnings_ += residual_warnings(law, table)
    law.calibrate(table, options, seed)
    result = law.summary()
    result.update(source=source, bootstrap={"n": n_boot, "seed": seed},
                  flops_convention=_flops_convention(table), predictions=predictions_for(law, targets))
    optimal = law.compute_optimal(targets["flops"]) if len(targets) else None
    if optimal is not None:
        result["compute_optimal"] = optimal
    if curves and law.forecasts_curves:
        from ladder.fit.curves import curve_forecast
        params = dict(zip(map(str, targets["name"]), targets["params"]))
        result["curves"] = [curve_forecast(law, params[name], path, name) for name, path in curves.items()]
    if backtest_spec is not None:
        result["backtest"] = backtest(law_options, table, backtest_spec, n_boot, seed, ci_level, interval,
                                      run_column)
    result["warnings"] = law.warnings_
    result.update(flags=flags, checks_skipped=notes, excluded=list((checks or {}).get("excluded") or []))
    return law, result


def write_outputs(law: Law, table: Table, result: dict, out: Path, plots: bool = True) -> None:
    """fit.json, predictions.csv and (with plots) plots/*.png under `out`; fit.json lists the plots."""
    if plots:
        from ladder.fit.plots import plot_fit
        result["plots"] = [str(p) for p in plot_fit(law, table, result, out / "plots")]
    atomic_write_json(out / "fit.json", result)
    write_predictions_csv(out / "predictions.csv", result["predictions"])


def _flops_convention(table: Table) -> str:
    if "flops_convention" in table:
        values = sorted(set(table["flops_convention"].tolist()) - {""})
        require(len(values) <= 1, f"the table mixes FLOPs conventions {values}; recollect with one")
        if values:
            return values[0]
    return "as given in the table (convention not stated)"


def write_predictions_csv(path: Path, predictions: list[dict]) -> None:
    columns = ["name", "metric", "params", "tokens", "flops", "value", "lo", "hi"]
    Table({c: [p.get(c, np.nan) for p in predictions] for c in columns} if predictions
          else {c: [] for c in columns}).write_csv(path)
