"""The fit stage end to end: table -> law -> bootstrap -> warnings -> targets -> backtest -> fit.json and plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ladder.errors import require
from ladder.fit.collect import collect_runs
from ladder.fit.laws import Law, make_law
from ladder.fit.table import Table, standard_table
from ladder.io import atomic_write_json
from ladder.recipe import parse_budget, to_number


def load_table(path: str | Path, columns: dict, required=("params", "tokens", "loss"), curves: bool = False) -> Table:
    path = Path(path)
    raw = collect_runs(path, curves) if path.is_dir() else Table.read_csv(path)
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
        out.append(f"{who} (N={table['params'][i]:.3g}, D={table['tokens'][i]:.3g}) is {np.expm1(residual[i]):+.1%} "
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
            rows.append((name, params, tokens, flops_per_nd * params * tokens))
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
            rows.append((name, params, tokens, flops_per_nd * params * tokens))
        else:
            require(flops is not None, "target: give target.params and target.tokens, or target.flops alone")
            rows.append((name, np.nan, np.nan, flops))
    names, params, tokens, flops = zip(*rows) if rows else ((), (), (), ())
    return Table({"name": list(names), "params": list(params), "tokens": list(tokens), "flops": list(flops)})


def predictions_for(law: Law, targets: Table) -> list[dict]:
    out = []
    point = np.isfinite(targets["params"]) if len(targets) else np.array([], bool)
    if point.any():
        require(law.predicts_loss, f"law {law.name} forecasts N_opt and D_opt from compute: give target.flops "
                                   f"alone, or use law=chinchilla for a loss at target.params/target.tokens")
        chosen = targets.take(np.flatnonzero(point))
        for prediction in law.predict_all(chosen):
            for i in range(len(chosen)):
                out.append({"name": chosen["name"][i], "params": chosen["params"][i], "tokens": chosen["tokens"][i],
                            "flops": chosen["flops"][i], "metric": prediction.metric,
                            prediction.metric: prediction.value[i], "value": prediction.value[i],
                            "lo": prediction.lo[i], "hi": prediction.hi[i]})
    compute_only = targets.take(np.flatnonzero(~point)) if len(targets) else targets
    if len(compute_only):
        optimal = law.compute_optimal(compute_only["flops"])
        require(optimal is not None, f"law {law.name} has no compute-optimal frontier; give target.params and "
                                     f"target.tokens, or use law=chinchilla, isoflop or envelope")
        for i in range(len(compute_only)):
            entry = {"name": compute_only["name"][i], "params": optimal["params"][i],
                     "tokens": optimal["tokens"][i], "flops": compute_only["flops"][i]}
            if "loss" in optimal:
                ci = optimal.get("loss_ci", [[np.nan, np.nan]] * len(compute_only))[i]
                entry.update(metric="loss", loss=optimal["loss"][i], value=optimal["loss"][i], lo=ci[0], hi=ci[1])
            else:
                ci = optimal.get("params_ci", [[np.nan, np.nan]] * len(compute_only))[i]
                entry.update(metric="params_opt", value=optimal["params"][i], lo=ci[0], hi=ci[1])
            out.append(entry)
    return out


def backtest(law_options: dict, table: Table, spec, n_boot: int, seed: int, ci_level: float) -> dict:
    """Fit on the smaller rungs (or below a compute cutoff), predict the held-out rows, score the forecast."""
    if str(spec) == "largest":
        held = table["params"] == table["params"].max()
        rule = "largest size held out"
    else:
        cutoff = to_number(spec, "backtest")
        held = table["flops"] > cutoff
        rule = f"rows above C={cutoff:.3g} held out"
    require(held.any() and (~held).any(), f"backtest={spec}: must leave rows on both sides of the split")
    train, test = table.take(np.flatnonzero(~held)), table.take(np.flatnonzero(held))
    law = make_law(law_options, ci_level).fit(train).bootstrap(train, n_boot, seed)
    require(law.predicts_loss, f"backtest needs a law that predicts loss at (N, D); {law.name} does not")
    prediction = law.predict_all(test)[-1]
    actual = test[law.metric] if law.metric in test else test["loss"]
    rows = []
    for i in range(len(test)):
        row = {"params": test["params"][i], "tokens": test["tokens"][i], "flops": test["flops"][i],
               "actual": actual[i], "predicted": prediction.value[i], "lo": prediction.lo[i],
               "hi": prediction.hi[i], "rel_error": (prediction.value[i] - actual[i]) / actual[i],
               "covered": bool(prediction.lo[i] <= actual[i] <= prediction.hi[i])}
        if "rung" in test:
            row["rung"] = test["rung"][i]
        rows.append(row)
    return {"rule": rule, "n_train": len(train), "n_test": len(test), "metric": prediction.metric,
            "rows": rows, "coverage": float(np.mean([r["covered"] for r in rows])),
            "mean_abs_rel_error": float(np.mean([abs(r["rel_error"]) for r in rows]))}


def run_fit(table: Table, law_options: dict, targets: Table, n_boot: int, seed: int, ci_level: float,
            backtest_spec=None, out: str | Path | None = None, plots: bool = True, source: str = "") -> dict:
    law, result = fit_and_forecast(table, law_options, targets, n_boot, seed, ci_level, backtest_spec, source)
    if out is not None:
        write_outputs(law, table, result, Path(out), plots)
    return result


def fit_and_forecast(table: Table, law_options: dict, targets: Table, n_boot: int, seed: int, ci_level: float,
                     backtest_spec=None, source: str = "") -> tuple[Law, dict]:
    """The fitted law and fit.json's content, nothing written."""
    law = make_law(law_options, ci_level)
    law.fit(table).bootstrap(table, n_boot, seed)
    law.warnings_ += residual_warnings(law, table)
    result = law.summary()
    result.update(source=source, bootstrap={"n": n_boot, "seed": seed},
                  flops_convention=_flops_convention(table), predictions=predictions_for(law, targets))
    optimal = law.compute_optimal(targets["flops"]) if len(targets) else None
    if optimal is not None:
        result["compute_optimal"] = optimal
    if backtest_spec is not None:
        result["backtest"] = backtest(law_options, table, backtest_spec, n_boot, seed, ci_level)
    result["warnings"] = law.warnings_
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
