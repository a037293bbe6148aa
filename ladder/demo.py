"""The main job, `ladder demo`: the whole idea on a laptop, offline, in minutes.

plan -> prepare -> train every rung of the tiny ladder (WSD-S: one run per size) -> collect -> fit the chinchilla law
with bootstrap intervals -> forecast a held-out rung 3x larger than the largest fitted one -> train that rung -> print
forecast vs actual -> write report/index.html (one self-contained page) and report.md. Beside the loss, the two-step
task law forecasts the held-out rung's task loss and accuracy on `fit.task` (an eval every rung ran in its loop),
checked the same way. The forecast is written before the held-out rung trains, and the held-out rung lives in its own
directory, so it can never enter the fit. Re-running reuses finished rungs.
"""

from __future__ import annotations

import time

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from ladder.errors import require
from ladder.fit.checks import format_checks
from ladder.fit.collect import include_changed
from ladder.fit.forecast import write_outputs
from ladder.fit.ladder import TaskFit, curve_fit, fit_ladder, ladder_evaluations
from ladder.fit.laws import make_law
from ladder.fit.watch import observe, watch
from ladder.io import atomic_write_json
from ladder.plan import Plan, format_plan, make_plan
from ladder.report import format_table, human
from ladder.report.history import spent_flops
from ladder.report.ladder_page import write_ladder_report
from ladder.train.loop import train_rung
from ladder.rundir import RunDir, heldout_ladder, ladder_dir, report_dir


def heldout_config(cfg: DictConfig, plan: Plan) -> DictConfig:
    """The ladder's target as a one-rung ladder of its own, trained with the same recipe and data."""
    target = cfg.target
    held = cfg.copy()
    with open_dict(held):
        held.ladder.name = heldout_ladder(plan.ladder)
        held.ladder.sizes = {plan.target.name: {"preset": target.preset} if target.get("preset") and
                             target.get("params") is None else {"params": target.params}}
        held.ladder.budgets = [target.tokens]
    return held


def check_fittable(cfg: DictConfig, plan: Plan) -> None:
    """The demo fits `law` to the rungs' final points before the held-out rung trains: a ladder with no more of them
    than the law has coefficients (one budget per size) is refused before anything trains, not after."""
    law = make_law(OmegaConf.to_container(cfg.law, resolve=True))
    form = getattr(law, "form", None)
    if form is None:  # not a power law: it checks its data when it fits
        return
    points = sum(len(rung.budgets) for rung in plan.rungs)
    require(points > form.n_params,
            f"ladder.budgets: {len(plan.rungs)} rungs x their budgets give {points} final points, and law={law.name} "
            f"has {form.n_params} coefficients to fit before the held-out rung trains; give more budgets (e.g. "
            f"ladder.budgets=[0.5xC,1xC,2xC]) or more sizes")


def train_all(cfg: DictConfig, plan: Plan) -> None:
    for i, rung in enumerate(plan.rungs, 1):
        n = rung.counts.by_convention(plan.params_convention)
        print(f"[{i}/{len(plan.rungs)}] {rung.name}: {rung.spec.shape}, {human(n)} {plan.params_convention.name} "
              f"params, budgets {', '.join(rung.budgets)}", flush=True)
        code = train_rung(cfg, plan, rung)
        require(code == 0, f"rung {rung.name} did not finish (exit {code}); see "
                           f"{RunDir.of(cfg.runs_dir, plan.ladder, rung.name).summary_path}, fix it, and run ladder "
                           f"demo again to resume")


def run_demo(cfg: DictConfig) -> int:
    started = time.time()
    with open_dict(cfg):  # CPU-sized evaluation: few points, a larger fixed validation set
        cfg.train.eval_points = cfg.demo.eval_points
        cfg.train.eval_tokens = cfg.demo.eval_tokens
    plan = make_plan(cfg)
    n = plan.params_convention
    require(plan.target.counts.by_convention(n) >= 3 * max(r.counts.by_convention(n) for r in plan.rungs),
            "target: the held-out rung must have at least 3x the parameters of the largest fitted rung")
    root = ladder_dir(cfg.runs_dir, plan.ladder)
    report = report_dir(cfg.runs_dir, plan.ladder)
    check_fittable(cfg, plan)
    print(format_plan(plan), "\n", flush=True)

    train_all(cfg, plan)
    held_cfg = heldout_config(cfg, plan)
    held_plan = make_plan(held_cfg)
    held_rung = held_plan.rungs[0]
    label, tokens = next(iter(held_rung.budgets.items()))
    print(f"\nfitting {cfg.law.name} to the finished budgets (N: {plan.params_convention.describe()}, "
          f"by ladder.params_convention) and forecasting {held_rung.name} at {label} ({human(tokens)} tokens)",
          flush=True)
    evaluations = ladder_evaluations(plan, root, include_changed(cfg.collect.include_changed))
    fit = fit_ladder(cfg, plan, evaluations, root, target=(held_rung.name, tokens))
    law, table, result = fit.law, fit.table, fit.result
    for line in format_checks(result):
        print(line, flush=True)
    write_outputs(law, table, result, report / "fit")
    forecast = fit.forecast
    bt = result["backtest"]
    off = table["loss"] / law.predict(table).value - 1  # each point against the law fitted to all of them
    worst = int(np.argmax(np.abs(off)))
    print(f"points against the fitted law: {np.sum(np.abs(off) <= 0.03)} of {len(off)} within 3%, the farthest "
          f"{table['run'][worst]} at {table['budget'][worst]} ({off[worst]:+.2%})", flush=True)
    print(f"forecast for {held_rung.name}: loss {forecast['loss']:.4f}, {result['ci_level']:.0%} predictive interval "
          f"[{forecast['lo']:.4f}, {forecast['hi']:.4f}] (the mean law's band [{forecast['band_lo']:.4f}, "
          f"{forecast['band_hi']:.4f}]; written to {report / 'fit' / 'fit.json'} before the rung trains)\n"
          f"the ladder's own rolling backtest: {bt['coverage']:.0%} of {bt['n_test']} held-out rows covered, median "
          f"|error| {bt['median_abs_rel_error']:.2%}\n", flush=True)
    task = None
    if fit.task is not None:
        require(fit.task.law is not None, f"fit.task={fit.task.name}: {fit.task.result.get('error')}")
        write_outputs(fit.task.law, fit.task.table, fit.task.result, report / "task_fit")
        task = task_summary(fit.task)
        predicted = task["predicted"]
        print(f"task forecast ({task['name']}, two-step law on {len(fit.task.table)} evaluations): bits per byte "
              f"{predicted['task_loss']['value']:.4f}, {task['columns']['accuracy']} "
              f"{predicted['accuracy']['value']:.3f} [{predicted['accuracy']['lo']:.3f}, "
              f"{predicted['accuracy']['hi']:.3f}] (written to {report / 'task_fit' / 'fit.json'})\n", flush=True)

    curve = curve_fit(cfg, plan, fit, evaluations, held_rung, root)  # (law, fit.json) or None
    if curve is not None:
        write_outputs(curve[0], fit.table, curve[1], report / "curve_fit", plots=False)
        forecast_curve = curve[1]["curves"][0]
        print(f"curve forecast (law=curve on {curve[1]['n_points']} evaluations, every point of every run): "
              f"{held_rung.name}'s whole run, {len(forecast_curve['tokens'])} points, ending at "
              f"{forecast_curve['value'][-1]:.4f} [{forecast_curve['lo'][-1]:.4f}, {forecast_curve['hi'][-1]:.4f}] "
              f"(written to {report / 'curve_fit' / 'fit.json'}; ladder watch compares a run with it)\n", flush=True)

    print(f"[held out] {held_rung.name}: {held_rung.spec.shape}, "
          f"{human(held_rung.counts.by_convention(plan.params_convention))} {plan.params_convention.name} params, "
          f"{label}", flush=True)
    code = train_rung(held_cfg, held_plan, held_rung)
    require(code == 0, f"the held-out rung did not finish (exit {code}); run ladder demo again to resume")
    held_summary = RunDir.of(cfg.runs_dir, held_plan.ladder, held_rung.name).summary()
    actual = held_summary["budgets"][label]["loss"]

    ladder_summaries = {r.name: RunDir.of(cfg.runs_dir, plan.ladder, r.name).summary() for r in plan.rungs}
    spent = spent_flops(plan, ladder_summaries, list(ladder_summaries))  # in the plan's FLOPs convention
    held_spent = spent_flops(held_plan, {held_rung.name: held_summary}, [held_rung.name])
    comparison = {"rung": held_rung.name, "params": float(fit.targets["params"][0]),
                  "params_used": fit.result["params_used"], "tokens": tokens,
                  "predicted": forecast["loss"],
                  "lo": forecast["lo"], "hi": forecast["hi"], "band_lo": forecast["band_lo"],
                  "band_hi": forecast["band_hi"], "parts_sd": forecast.get("parts_sd", {}), "actual": actual,
                  "rel_error": (forecast["loss"] - actual) / actual,
                  "covered": bool(forecast["lo"] <= actual <= forecast["hi"]),
                  "ladder_compute_fraction": spent / held_spent,
                  "rolling_coverage": bt["coverage"], "rolling_rows": bt["n_test"],
                  "max_abs_residual": float(np.abs(off).max()), "flagged": [f["run"] for f in result["flags"]]}
    if curve is not None:  # the held-out rung's whole validation curve against the forecast curve
        watched = watch(curve[1]["curves"][0], observe(str(RunDir.of(cfg.runs_dir, held_plan.ladder,
                                                                        held_rung.name).path)))
        comparison["curve"] = {"points": len(watched["points"]),
                               "median_abs_error": float(np.median([abs(p["forecast"] / p["loss"] - 1)  # as rel_error
                                                                    for p in watched["points"]])),
                               "coverage": float(np.mean([p["inside"] for p in watched["points"]]))}
    atomic_write_json(report / "comparison.json", comparison)
    if task is not None:
        measured = held_summary["budgets"][label].get("eval", {})
        task["actual"] = {metric: measured.get(f"{task['name']}/{column}") for metric, column in task["columns"].items()}
    text = format_comparison(comparison, result["ci_level"])
    if task is not None:
        text += "\n\n" + format_task(task)
    print("\n" + text)
    elapsed = time.time() - started
    training_min = sum(s["wall_time_s"] for s in [*ladder_summaries.values(), held_summary]) / 60
    page = write_ladder_report(cfg, plan, fit, report, subtitle=(
        f"ladder {plan.ladder} on {cfg.data.name} ({cfg.data.tokenizer.kind} tokens), law {result['law']}; the rungs "
        f"trained for {training_min:.1f} minutes in all, this run of the demo took {elapsed / 60:.1f}"))
    print(f"\nreport: {page} (one file, open it in a browser; {report / 'report.md'} is the same in Markdown)")
    print(f"elapsed: {elapsed / 60:.1f} min")
    return 0


def task_summary(task: TaskFit) -> dict:
    return {"name": task.name, "columns": task.columns, "warnings": task.result["warnings"],
            "predicted": {p["metric"]: p for p in task.result["predictions"]}, "level": task.result["ci_level"]}


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
            ["  sd: coefficients, noise, extrapolation",
             ", ".join(f"{100 * parts[k]:.2f}%" for k in ("coefficients", "noise", "extrapolation") if k in parts)],
            ["actual loss", f"{c['actual']:.4f}"],
            ["relative error", f"{c['rel_error']:+.2%}"],
            ["interval covers it", "yes" if c["covered"] else "no"],
            ["ladder compute / held-out rung's", f"{c['ladder_compute_fraction']:.1%}"],
            ["ladder's rolling backtest coverage", f"{c['rolling_coverage']:.0%} of {c['rolling_rows']} rows"]]
    if c.get("curve"):
        rows.append([f"whole curve ({c['curve']['points']} evaluations): median |error|, band coverage",
                     f"{c['curve']['median_abs_error']:.2%}, {c['curve']['coverage']:.0%}"])
    return (f"forecast vs actual: {c['rung']} (N {human(c['params'])}: {c['params_used']}; "
            f"{human(c['tokens'])} tokens)\n" + format_table(["", "value"], rows))
