"""Fit a ladder's own runs: its finished budgets -> the loss law and the forecast of the ladder's target, checked by
the rolling backtest; beside it the two-step task law on `fit.task` (an eval every rung ran in its loop).

`ladder demo`, `ladder report` and `ladder status report=true` all fit a ladder this way; `ladder fit` is the general
command (any CSV, any law, any targets)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from ladder.errors import LadderError
from ladder.fit.checks import exclude_runs
from ladder.fit.collect import collect_runs, params_column
from ladder.fit.calibrate import IntervalOptions
from ladder.fit.forecast import backtest_folds, fit_and_forecast
from ladder.fit.laws import Law
from ladder.fit.laws.two_step import TwoStep
from ladder.fit.table import Table, flops_per_nd, standard_table
from ladder.plan import Plan


@dataclass
class TaskFit:
    name: str  # the eval entry
    columns: dict  # law column -> the entry's metric: {"task_loss": "bpb", "accuracy": "acc_norm"}
    law: Law | None  # None: it could not be fitted (result["error"] says why)
    table: Table | None
    result: dict


@dataclass
class LadderFit:
    law: Law
    table: Table  # the points the loss law was fitted to, one per (rung, budget)
    result: dict  # fit.json's content
    targets: Table
    task: TaskFit | None

    @property
    def forecast(self) -> dict:
        return self.result["predictions"][0]


def ladder_evaluations(plan: Plan, root: Path, include_changed: bool = False) -> Table:
    """Every evaluation of the plan's rungs under `root`: the budgets (final = 1) and the intermediate points; a
    rung that finished with another configuration is left out unless `include_changed`."""
    evaluations = collect_runs(root, curves=True, plan=plan, include_changed=include_changed)
    names = {r.name for r in plan.rungs}
    return evaluations.take(np.flatnonzero([name in names for name in evaluations["rung"]]))


def target_table(plan: Plan, table: Table, name: str | None = None, tokens: float | None = None) -> Table:
    """The ladder's target as fit input: N in the ladder's convention, D its tokens, C in the table's FLOPs."""
    n = plan.target.counts.by_convention(plan.params_convention)
    tokens = plan.target.tokens if tokens is None else tokens
    return Table({"name": [name or plan.target.name], "params": [n], "tokens": [tokens],
                  "flops": [flops_per_nd(table) * n * tokens]})


def fit_ladder(cfg, plan: Plan, evaluations: Table, root: Path, target: tuple[str, float] | None = None,
               backtest: str | None = "rolling", checks: bool = True, task: bool = True) -> LadderFit:
    """The loss law on the finished budgets among `evaluations`, forecasting the ladder's target (or `target`:
    (name, tokens) at the target's size); the task law on every evaluation, when `fit.task` names an entry the rungs
    ran (and `task`). `checks`: flag runs first (fit.flag_error); fit.exclude always applies."""
    n_column, params_used = params_column(plan.params_convention, True, "params", False, str(root))
    columns = {**OmegaConf.to_container(cfg.columns, resolve=True), "params": n_column}
    table = standard_table(evaluations.take(np.flatnonzero(evaluations["final"] == 1)), columns, str(root))
    fit_cfg = OmegaConf.to_container(cfg.fit, resolve=True)
    table, fit_cfg["excluded"] = exclude_runs(table, fit_cfg.get("exclude"), str(root))
    fit_cfg["params_column"] = n_column
    targets = target_table(plan, table, *(target or (None, None)))
    interval = OmegaConf.to_container(cfg.interval, resolve=True)
    skipped = None
    if backtest is not None:  # a ladder part-way through its sweep may have no fold yet: say so, fit the rest
        try:
            backtest_folds(table, backtest, IntervalOptions.from_config(interval).folds)
        except LadderError as error:
            skipped = str(error)
    law, result = fit_and_forecast(table, OmegaConf.to_container(cfg.law, resolve=True), targets,
                                   int(cfg.bootstrap.n), int(cfg.bootstrap.seed), float(cfg.ci_level),
                                   backtest_spec=None if skipped else backtest, source=str(root),
                                   interval=interval, checks=fit_cfg if checks else None)
    if skipped:
        result["warnings"].append(f"{skipped}; {len(np.unique(table['params']))} sizes have finished")
    result["params_used"] = params_used
    fitted_task = task_fit(cfg, evaluations, columns, targets, root, interval) if task else None
    if fitted_task is not None and fitted_task.law is not None:
        fitted_task.result["params_used"] = params_used  # step 1's N, the loss law's
    return LadderFit(law, table, result, targets, fitted_task)


def task_fit(cfg, evaluations: Table, columns: dict, targets: Table, root: Path,
             interval: dict | None = None) -> TaskFit | None:
    """The two-step law (N, D) -> task bits per byte -> accuracy on `fit.task`, fitted to every evaluation of every
    rung (the budgets are step 1's points); None when no rung ran that entry."""
    name, metric = cfg.fit.get("task"), str(cfg.fit.get("task_metric") or "acc")
    if not name or f"eval/{name}/bpb" not in evaluations:
        return None
    task_columns = {"task_loss": "bpb", "accuracy": metric}
    table = None
    try:
        table = standard_table(evaluations, {**columns, **{k: f"eval/{name}/{v}" for k, v in task_columns.items()}},
                               str(root), TwoStep.required_columns)
        law, result = fit_and_forecast(table, {"name": "two_step", "task": name, "accuracy": metric}, targets,
                                       int(cfg.bootstrap.n), int(cfg.bootstrap.seed), float(cfg.ci_level),
                                       source=str(root), interval=interval)
    except (LadderError, RuntimeError) as error:  # RuntimeError: curve_fit found no sigmoid
        # a task law that cannot be fitted (too few points, a metric missing) costs the loss forecast nothing
        return TaskFit(name, task_columns, None, table, {"error": str(error)})
    return TaskFit(name, task_columns, law, table, result)


def curve_fit(cfg, plan: Plan, fit: LadderFit, evaluations: Table, rung, root: Path) -> tuple[Law, dict] | None:
    """The curve law (law=curve) on every evaluation of every rung, forecasting `rung`'s whole run under its own
    recipe (fit.json's `curves`); None, with the reason printed, where the evaluations cannot identify it."""
    from ladder.fit.curves import at_path_ends, run_path

    path = run_path(rung.recipe.to_dict(), rung.budgets)
    n_column, _ = params_column(plan.params_convention, True, "params", False, str(root))
    table = standard_table(evaluations, {**OmegaConf.to_container(cfg.columns, resolve=True), "params": n_column},
                           str(root))
    paths = {str(fit.targets["name"][0]): path}
    try:
        return fit_and_forecast(table, {"name": "curve"}, at_path_ends(fit.targets, paths), int(cfg.bootstrap.n),
                                int(cfg.bootstrap.seed), float(cfg.ci_level), source=str(root),
                                interval=OmegaConf.to_container(cfg.interval, resolve=True), curves=paths)
    except LadderError as error:
        print(f"curve law: not fitted ({error})", flush=True)
        return None
