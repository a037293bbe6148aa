"""Before the fit: rungs that are off, the commonest reason a ladder misleads (an undertuned small rung bends the law).

Two checks, each naming the rung and why: the law fitted to the other sizes misses it (leave one size out), and,
where a `ladder tune` exists, its learning rate sits far from the tuned optimum (the loss that costs, by the tuned
curve's curvature). `fit.exclude` drops named rungs; the fit's output names them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ladder.errors import LadderError, require
from ladder.fit.calibrate import IntervalOptions
from ladder.fit.laws import make_law
from ladder.fit.table import Table

MAX_SIZES = 20  # leave-one-size-out refits once per size: a ladder's handful, not a published sweep's hundreds


def exclude_runs(table: Table, names, source: str) -> tuple[Table, list[str]]:
    """The table without the rows of the named runs (the `run` column: rungs by default)."""
    names = [names] if isinstance(names, str) else [str(n) for n in (names or [])]
    if not names:
        return table, []
    require("run" in table, f"fit.exclude: {source} has no run column to match names in (columns.run)")
    runs = {str(r) for r in table["run"]}
    missing = [n for n in names if n not in runs]
    if missing:
        raise LadderError(f"fit.exclude: no run named {missing[0]!r} in {source}; runs: {', '.join(sorted(runs))}")
    keep = np.flatnonzero([str(r) not in names for r in table["run"]])
    return table.take(keep), names


def flag_runs(law_options: dict, table: Table, checks: dict, ci_level: float = 0.95) -> tuple[list[dict], list[str]]:
    """(every flag: {run, check, message, value}; notes on checks skipped). `checks` is the `fit` config group
    (flag_error: null turns leave-one-size-out off). Reads finished results (final rows) only."""
    if "final" in table and np.any(table["final"] == 1):
        table = table.take(np.flatnonzero(table["final"] == 1))
    flags, notes = [], []
    if checks.get("tune"):  # first: a broken tune.json is said before the leave-one-size-out fits
        flags += lr_flags(table, str(checks["tune"]), float(checks.get("flag_lr_cost") or 0.01),
                          str(checks.get("params_column") or "params"))
    if checks.get("flag_error") is not None:
        sizes = len(np.unique(table["params"]))
        law = make_law(law_options, ci_level)
        if not (law.predicts_loss and law.metric == "loss"):
            notes.append(f"leave-one-size-out check skipped: law {law.name} does not forecast a loss at (N, D)")
        elif not 4 <= sizes <= MAX_SIZES:
            notes.append(f"leave-one-size-out check skipped: {sizes} sizes (it needs 4 to {MAX_SIZES})")
        else:
            flags += leave_one_size_out(law_options, table, float(checks["flag_error"]), ci_level)
    return flags, notes


def format_checks(result: dict) -> list[str]:
    """The runs flagged and excluded before the fit, first: they decide whether to trust what follows."""
    lines = [f"flagged before the fit: {flag['message']}" for flag in result.get("flags", [])]
    lines += [f"note: {note}" for note in result.get("checks_skipped", [])]
    if result.get("excluded"):
        lines.append(f"excluded from the fit (fit.exclude): {', '.join(result['excluded'])}")
    return lines + ([""] if lines else [])


def off_by(relative: float) -> str:
    """How far a value sits from the law (value / law's - 1): a percentage, or past 10x a factor, so a loss of 1e300
    reads '3.6e+299 times', never as a 300-digit percentage."""
    return f"{relative:+.1%}" if abs(relative) < 9 else f"{relative + 1:.3g} times"


def _who(table: Table, rows: np.ndarray) -> str:
    if "run" in table:
        return ", ".join(dict.fromkeys(str(r) for r in table["run"][rows]))
    return f"N={table['params'][rows[0]]:.3g}"


def leave_one_size_out(law_options: dict, table: Table, max_error: float, ci_level: float = 0.95) -> list[dict]:
    """For each size, the law fitted to the others (point fit, no bootstrap) forecasts it; a run it misses by more
    than `max_error` (relative) at any budget is flagged."""
    sizes = np.unique(table["params"])
    flags = []
    law = make_law(law_options, ci_level)
    for size in sizes:
        held = table["params"] == size
        try:  # from the grid's best starts, as the rolling folds fit: a full grid per size cost 4x the fit itself
            fitted = law.fresh(screen=IntervalOptions.fold_starts, n_polish=1).fit(table.take(np.flatnonzero(~held)))
        except LadderError:
            continue
        test = table.take(np.flatnonzero(held))
        errors = test["loss"] / fitted.predict(test).value - 1  # above the law: positive
        groups = [str(r) for r in test["run"]] if "run" in test else ["all"] * len(test)
        for group in dict.fromkeys(groups):
            mine = np.flatnonzero([g == group for g in groups])
            worst = mine[np.argmax(np.abs(errors[mine]))]
            if abs(errors[worst]) > max_error:
                flags.append({"run": _who(test, mine), "check": "leave_one_size_out", "value": float(errors[worst]),
                              "message": f"{_who(test, mine)} (N={size:.3g}) sits {off_by(errors[worst])} off the law "
                                         f"fitted to the other sizes at D={test['tokens'][worst]:.3g} "
                                         f"(over fit.flag_error={max_error:g}); undertuned, broken, or the law's "
                                         f"form? Check it, or drop it with fit.exclude=[...]"})
    return flags


def lr_flags(table: Table, tune_path: str, max_lr_cost: float, params_column: str = "params") -> list[dict]:
    """Runs whose learning rate costs more than `max_lr_cost` (relative loss) by the tune's rule and curvature;
    `params_column` is the input's column that became `params`."""
    from ladder.model.counting import ParamCount
    from ladder.tune.optimum import LRRule, lr_cost, nearest_curvature, read_tune

    path = Path(tune_path)
    path = path / "tune.json" if path.is_dir() else path
    require(path.is_file(), f"fit.tune={tune_path}: no tune.json there; run ladder tune first (it writes one)")
    tune = read_tune(path)
    require("lr" in table, "fit.tune: the table has no lr column (runs trained before lr was recorded: retrain, or "
                           "add an lr column to the CSV)")
    column = ParamCount.named(tune["params_for"], f"fit.tune={tune_path}: its params_for").value
    require(column in table or params_column == column,
            f"fit.tune: the tune's rule counts N as {ParamCount(column).name} parameters and the table has no "
            f"{column!r} column; add it (or refit with columns.params={column})")
    n = table[column] if column in table else table["params"]
    rule = LRRule.from_dict(tune["rule"])
    tuned = [c for c in tune["curves"] if c["setting"] == tune["best_setting"]]
    require(np.isfinite(nearest_curvature(tuned, 1.0)[0]), f"fit.tune={tune_path}: no tuned curve has an interior "
                                                         f"optimum")
    flags = []
    seen = set()
    for i in range(len(table)):
        who = str(table["run"][i]) if "run" in table else f"N={table['params'][i]:.3g}"
        lr = float(table["lr"][i])
        if who in seen or not np.isfinite(lr):
            continue
        lr_opt, lo, hi = (float(v) for v in rule.predict(n[i], table["tokens"][i] / n[i]))
        cost = lr_cost(nearest_curvature(tuned, n[i])[0], lr, lr_opt)
        if cost > max_lr_cost:
            seen.add(who)
            flags.append({"run": who, "check": "learning_rate", "value": cost,
                          "message": f"{who}: learning rate {lr:.3g} is {lr / lr_opt:.2f}x the tuned optimum "
                                     f"{lr_opt:.3g} ([{lo:.3g}, {hi:.3g}], {path}); that costs about {cost:.1%} of "
                                     f"its loss (over fit.flag_lr_cost={max_lr_cost:g}); retrain with the tuned recipe"})
    return flags
