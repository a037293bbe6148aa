"""The main job, `ladder demo`: the whole idea on a laptop, offline, in minutes.

plan -> prepare -> train every rung of the tiny ladder (WSD-S: one run per size) -> collect -> fit the chinchilla law
with bootstrap intervals -> forecast a held-out rung 3x larger than the largest fitted one -> train that rung -> print
forecast vs actual -> write report.md with tables and plots. Beside the loss, the two-step task law forecasts the
held-out rung's task loss and accuracy on `demo.task` (an eval every rung ran in its loop), checked the same way. The forecast is written before the held-out rung trains,
and the held-out rung lives in its own directory, so it can never enter the fit. Re-running reuses finished rungs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from ladder.errors import require
from ladder.fit.checks import exclude_runs, format_checks
from ladder.fit.collect import COUNT_COLUMN, collect_runs
from ladder.fit.forecast import fit_and_forecast, write_outputs
from ladder.fit.laws.two_step import TwoStep
from ladder.fit.plots import loss_vs_compute
from ladder.fit.table import Table, flops_per_nd, standard_table
from ladder.io import atomic_write_json, atomic_write_text
from ladder.plan import Plan, format_plan, make_plan
from ladder.report import format_table, human
from ladder.train.loop import train_rung
from ladder.train.rundir import RunDir


def heldout_config(cfg: DictConfig, plan: Plan) -> DictConfig:
    """The ladder's target as a one-rung ladder of its own, trained with the same recipe and data."""
    target = cfg.target
    held = cfg.copy()
    with open_dict(held):
        held.ladder.name = f"{plan.ladder}-heldout"
        held.ladder.sizes = {plan.target.name: {"preset": target.preset} if target.get("preset") and
                             target.get("params") is None else {"params": target.params}}
        held.ladder.budgets = [target.tokens]
    return held


def train_all(cfg: DictConfig, plan: Plan) -> None:
    for i, rung in enumerate(plan.rungs, 1):
        print(f"[{i}/{len(plan.rungs)}] {rung.name}: {rung.spec.shape}, {human(rung.counts.non_embedding)} "
              f"non-embedding params, budgets {', '.join(rung.budgets)}", flush=True)
        code = train_rung(cfg, rung.name)
        require(code == 0, f"rung {rung.name} did not finish (exit {code}); see {cfg.runs_dir}/{plan.ladder}/"
                           f"{rung.name}/summary.json, fix it, and run ladder demo again to resume")


def run_demo(cfg: DictConfig) -> int:
    started = time.time()
    with open_dict(cfg):  # CPU-sized evaluation: few points, a larger fixed validation set
        cfg.train.eval_points = cfg.demo.eval_points
        cfg.train.eval_tokens = cfg.demo.eval_tokens
    plan = make_plan(cfg)
    require(plan.target.counts.non_embedding >= 3 * max(r.counts.non_embedding for r in plan.rungs),
            "target: the held-out rung must have at least 3x the parameters of the largest fitted rung")
    root = Path(cfg.runs_dir) / plan.ladder
    report_dir = root / "report"
    print(format_plan(plan), "\n", flush=True)

    train_all(cfg, plan)
    names = {r.name for r in plan.rungs}
    evaluations = collect_runs(root, curves=True)  # every evaluation: the budgets for the loss fit, all for the task
    evaluations = evaluations.take(np.flatnonzero([name in names for name in evaluations["rung"]]))  # this plan's
    table = evaluations.take(np.flatnonzero(evaluations["final"] == 1))
    convention = str(cfg.ladder.params_convention)  # validated by make_plan
    params_column = COUNT_COLUMN[convention]
    columns = {**dict(cfg.columns), "params": params_column}
    table = standard_table(table, columns, str(root))
    checks = OmegaConf.to_container(cfg.fit, resolve=True)
    table, checks["excluded"] = exclude_runs(table, checks.get("exclude"), str(root))
    checks["params_column"] = params_column

    held_cfg = heldout_config(cfg, plan)
    held_plan = make_plan(held_cfg)
    held_rung = held_plan.rungs[0]
    label, tokens = next(iter(held_rung.budgets.items()))
    n_target = held_rung.counts.by_convention(convention)
    targets = Table({"name": [held_rung.name], "params": [n_target], "tokens": [tokens],
                     "flops": [flops_per_nd(table) * n_target * tokens]})
    print(f"\nfitting {cfg.law.name} to {len(table)} points (N: {convention} parameters, "
          f"ladder.params_convention) and forecasting "
          f"{held_rung.name} at {label} ({human(tokens)} tokens)", flush=True)
    interval = OmegaConf.to_container(cfg.interval, resolve=True)
    law, result = fit_and_forecast(table, OmegaConf.to_container(cfg.law, resolve=True), targets,
                                   int(cfg.bootstrap.n), int(cfg.bootstrap.seed), float(cfg.ci_level),
                                   backtest_spec="rolling", source=str(root), interval=interval, checks=checks)
    for line in format_checks(result):
        print(line, flush=True)
    result["params_used"] = f"{convention} parameters (ladder.params_convention; column {params_column!r})"
    write_outputs(law, table, result, report_dir / "fit")
    forecast = result["predictions"][0]
    bt = result["backtest"]
    off = table["loss"] / law.predict(table).value - 1  # each point against the law fitted to all of them
    worst = int(np.argmax(np.abs(off)))
    print(f"points against the fitted law: {np.sum(np.abs(off) <= 0.03)} of {len(off)} within 3%, the farthest "
          f"{table['run'][worst]} at {table['budget'][worst]} ({off[worst]:+.2%})", flush=True)
    print(f"forecast for {held_rung.name}: loss {forecast['loss']:.4f}, {result['ci_level']:.0%} predictive interval "
          f"[{forecast['lo']:.4f}, {forecast['hi']:.4f}] (the mean law's band [{forecast['band_lo']:.4f}, "
          f"{forecast['band_hi']:.4f}]; written to {report_dir / 'fit' / 'fit.json'} before the rung trains)\n"
          f"the ladder's own rolling backtest: {bt['coverage']:.0%} of {bt['n_test']} held-out rows covered, median "
          f"|error| {bt['median_abs_rel_error']:.2%}\n", flush=True)
    task = task_forecast(cfg, root, evaluations, columns, targets, report_dir / "task_fit", interval)

    print(f"[held out] {held_rung.name}: {held_rung.spec.shape}, {human(held_rung.counts.non_embedding)} "
          f"non-embedding params, {label}", flush=True)
    code = train_rung(held_cfg, held_rung.name)
    require(code == 0, f"the held-out rung did not finish (exit {code}); run ladder demo again to resume")
    held_summary = RunDir(Path(cfg.runs_dir) / held_plan.ladder / held_rung.name).summary()
    actual = held_summary["budgets"][label]["loss"]

    ladder_summaries = [RunDir(root / r.name).summary() for r in plan.rungs]
    spent = sum(s["tokens_seen"] * 6 * s["params"] for s in ladder_summaries)
    held_spent = held_summary["tokens_seen"] * 6 * held_summary["params"]
    comparison = {"rung": held_rung.name, "params": n_target, "tokens": tokens, "predicted": forecast["loss"],
                  "lo": forecast["lo"], "hi": forecast["hi"], "band_lo": forecast["band_lo"],
                  "band_hi": forecast["band_hi"], "parts_sd": forecast.get("parts_sd", {}), "actual": actual,
                  "rel_error": (forecast["loss"] - actual) / actual,
                  "covered": bool(forecast["lo"] <= actual <= forecast["hi"]),
                  "ladder_compute_fraction": spent / held_spent,
                  "rolling_coverage": bt["coverage"], "rolling_rows": bt["n_test"],
                  "max_abs_residual": float(np.abs(off).max()), "flagged": [f["run"] for f in result["flags"]]}
    atomic_write_json(report_dir / "comparison.json", comparison)
    loss_vs_compute(law, table, {**result, "actuals": [{"name": held_rung.name, "flops": float(targets["flops"][0]),
                                                        "loss": actual}]},
                    report_dir / "fit" / "plots" / "loss_vs_compute.png")  # now with the actual beside its band
    if task is not None:
        measured = held_summary["budgets"][label].get("eval", {})
        task["actual"] = {metric: measured.get(f"{task['name']}/{column}") for metric, column in task["columns"].items()}
    elapsed = time.time() - started
    text = format_comparison(comparison, result["ci_level"])
    if task is not None:
        text += "\n\n" + format_task(task)
    print("\n" + text)
    write_report(report_dir, cfg, plan, result, comparison, held_plan, elapsed, task)
    print(f"\nreport: {report_dir / 'report.md'}")
    print(f"elapsed: {elapsed / 60:.1f} min")
    return 0


def task_forecast(cfg, root: Path, curves: Table, columns: dict, targets: Table, out: Path,
                  interval: dict | None = None) -> dict | None:
    """The two-step law (N, D) -> task bits per byte -> accuracy on `demo.task`, fitted to every evaluation of
    every rung (the budgets are step 1's points), forecast for the held-out rung before it trains."""
    name, metric = cfg.demo.get("task"), str(cfg.demo.get("task_metric") or "acc")
    if not name or f"eval/{name}/bpb" not in curves:
        return None
    task_columns = {"task_loss": "bpb", "accuracy": metric}
    table = standard_table(curves, {**columns, **{k: f"eval/{name}/{v}" for k, v in task_columns.items()}},
                           str(root), TwoStep.required_columns)
    law, result = fit_and_forecast(table, {"name": "two_step", "task": name, "accuracy": metric}, targets,
                                   int(cfg.bootstrap.n), int(cfg.bootstrap.seed), float(cfg.ci_level),
                                   source=str(root), interval=interval)
    write_outputs(law, table, result, out, plots=False)
    predicted = {p["metric"]: p for p in result["predictions"]}
    print(f"task forecast ({name}, two-step law on {len(table)} evaluations): bits per byte "
          f"{predicted['task_loss']['value']:.4f}, {metric} {predicted['accuracy']['value']:.3f} "
          f"[{predicted['accuracy']['lo']:.3f}, {predicted['accuracy']['hi']:.3f}] (written to {out / 'fit.json'})\n",
          flush=True)
    return {"name": name, "columns": task_columns, "predicted": predicted, "warnings": result["warnings"],
            "level": result["ci_level"]}


def format_task(t: dict) -> str:
    rows = []
    for metric, column in t["columns"].items():
        p, actual = t["predicted"][metric], t["actual"].get(metric)
        covered = "" if actual is None else "yes" if p["lo"] <= actual <= p["hi"] else "no"
        rows.append([f"{t['name']}/{column}", f"{p['value']:.4f}", f"[{p['lo']:.4f}, {p['hi']:.4f}]",
                     "" if actual is None else f"{actual:.4f}", covered])
    lines = [f"task forecast vs actual (two-step law, {t['level']:.0%} intervals)",
             format_table(["metric", "predicted", "interval", "actual", "covered"], rows)]
    return "\n".join(lines + [f"warning: {w}" for w in t["warnings"]])


def format_comparison(c: dict, level: float) -> str:
    parts = c.get("parts_sd", {})
    rows = [["predicted loss", f"{c['predicted']:.4f}"],
            [f"{level:.0%} predictive interval", f"[{c['lo']:.4f}, {c['hi']:.4f}]"],
            ["  the mean law's band alone", f"[{c['band_lo']:.4f}, {c['band_hi']:.4f}]"],
            ["  sd: parameters, noise, extrapolation",
             ", ".join(f"{100 * parts[k]:.2f}%" for k in ("parameters", "noise", "extrapolation") if k in parts)],
            ["actual loss", f"{c['actual']:.4f}"],
            ["relative error", f"{c['rel_error']:+.2%}"],
            ["interval covers it", "yes" if c["covered"] else "no"],
            ["ladder compute / held-out rung's", f"{c['ladder_compute_fraction']:.1%}"],
            ["ladder's rolling backtest coverage", f"{c['rolling_coverage']:.0%} of {c['rolling_rows']} rows"]]
    return (f"forecast vs actual: {c['rung']} ({human(c['params'])} params in the fit's count, "
            f"{human(c['tokens'])} tokens)\n" + format_table(["", "value"], rows))


def write_report(directory: Path, cfg, plan: Plan, result: dict, comparison: dict, held_plan: Plan,
                 elapsed_s: float, task: dict | None = None) -> None:
    from ladder.commands import format_fit
    from ladder.fit.plots import loss_curves

    curves = loss_curves({r.name: Path(cfg.runs_dir) / plan.ladder / r.name / "metrics.jsonl" for r in plan.rungs} |
                         {f"{r.name} (held out)": Path(cfg.runs_dir) / held_plan.ladder / r.name / "metrics.jsonl"
                          for r in held_plan.rungs}, directory / "curves.png")
    plots = [curves] + [Path(p) for p in result.get("plots", [])]
    summaries = [RunDir(Path(cfg.runs_dir) / p.ladder / r.name).summary() for p in (plan, held_plan) for r in p.rungs]
    training_min = sum(s["wall_time_s"] for s in summaries) / 60
    lines = ["# ladder demo report", "",
             f"Ladder `{plan.ladder}` on `{cfg.data.name}` ({cfg.data.tokenizer.kind} tokens), law `{result['law']}`; "
             f"the rungs trained for {training_min:.1f} minutes in all, this run of the demo took "
             f"{elapsed_s / 60:.1f}.", "", "## Plan", "", "```", format_plan(plan), "```", "",
             "## Fit", "", "```", format_fit(result), "```", "", "## Forecast vs actual", "", "```",
             format_comparison(comparison, result["ci_level"]), "```", ""]
    if task is not None:
        lines += ["## Task forecast vs actual", "", "```", format_task(task), "```", ""]
    lines += ["## Plots", ""]
    lines += [f"![{p.stem}]({p.relative_to(directory)})" for p in plots]
    atomic_write_text(directory / "report.md", "\n".join(lines) + "\n")

