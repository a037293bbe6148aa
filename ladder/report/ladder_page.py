"""A fit's or a whole ladder's report: the sections of report/index.html (and of report.md, the same in Markdown).

fit_sections() turns a fit.json result and its plots into Fit, Forecast and Backtest sections; `ladder fit out=DIR`
writes them alone. write_ladder_report() adds the plan and its cost, every rung's loss curves, the task
forecast, the forecast as each rung landed and, where the target was trained (the demo's held-out rung), the measured
value beside its forecast."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ladder.errors import LadderError
from ladder.fit.collect import include_changed
from ladder.fit.forecast import write_outputs
from ladder.fit.ladder import LadderFit, fit_ladder, ladder_evaluations
from ladder.rundir import RunDir, heldout_ladder, ladder_dir, report_dir
from ladder.fit.plots import loss_curves, loss_vs_compute
from ladder.io import read_json
from ladder.plan import Plan, plan_table
from ladder.report import human
from ladder.report.history import forecast_history, history_plot, spent_flops
from ladder.report.page import Figure, Headline, Section, write_markdown, write_page
from ladder.report.tables import (TextTable, backtest_table, coefficients_table, compute_optimal_line,
                                  curve_table, fit_headline, predictions_table)

CAPTIONS = {
    "loss_vs_compute": "Each fitted point against its compute; the law at each fitted size and at the target's, and "
                       "its compute-optimal frontier (laws in N and D); the forecast with its predictive interval.",
    "residuals": "Each point against the law fitted to all of them. A rung off by a few percent at every budget is "
                 "undertuned or broken; a trend across rungs is the law's form.",
    "bootstrap": "The bootstrap's draws of the exponents: their spread is the parameters' share of the interval.",
    "compute_optimal": "The compute-optimal frontier: the size N_opt(C) the law implies, beside the fitted runs and "
                       "the target.",
    "frontier": "The compute-optimal frontier from the minima of the isoFLOP curves (or the loss envelope).",
    "backtest": "Rolling backtest: the law fitted to the smaller sizes forecasts the larger ones; the error against "
                "how far each forecast extrapolates, with its interval.",
    "two_step": "Step 1: the task's loss (bits per byte) against compute; step 2: accuracy against that loss.",
    "curves": "The curve law through every evaluation of every rung (main runs and cooldown ends), and each target's "
              "whole run forecast under its recipe's schedule, with its band.",
    "curve_forecast": "The target's whole run forecast by the curve law under its recipe's schedule, with its band.",
    "watched": "The held-out run's evaluations against the curve forecast before it trained (orange: outside the "
               "band), and its final loss forecast from the run so far (dashed).",
}
SECTION_OF_PLOT = {"loss_vs_compute": "fit", "residuals": "fit", "bootstrap": "fit", "compute_optimal": "forecast",
                   "frontier": "forecast", "backtest": "backtest", "two_step": "forecast", "curves": "forecast"}


def _about(warning: str) -> str:
    """Which section a warning concerns: interval warnings sit with the forecast, the rest with the fit."""
    return "forecast" if warning.startswith(("interval", "step1: interval", "backtest")) else "fit"


def _figures(plots, section: str) -> list[Figure]:
    return [Figure(Path(p), CAPTIONS.get(Path(p).stem, "")) for p in plots
            if SECTION_OF_PLOT.get(Path(p).stem) == section and Path(p).exists()]


def fit_sections(result: dict, actual: float | None = None, flags: bool = True) -> list[Section]:
    """Fit, Forecast and Backtest sections of one fit.json result; its plots are those fit.json lists. `actual`:
    the value measured at the first target, set beside its forecast; `flags`: the runs flagged before the fit are
    shown here (a ladder's page shows them by its loss curves instead)."""
    plots = result.get("plots", [])
    warnings = [*result.get("warnings", [])]
    fit = Section("Fit", "fit", paragraphs=[*fit_headline(result), *[f"note: {n}" for n in
                                                                      result.get("checks_skipped", [])]],
                  tables=[coefficients_table(result)], figures=_figures(plots, "fit"),
                  warnings=(flag_warnings(result) if flags else []) + [w for w in warnings if _about(w) == "fit"])
    if result.get("excluded"):
        fit.paragraphs.append(f"excluded from the fit (fit.exclude): {', '.join(result['excluded'])}")
    forecast = Section("Forecast", "forecast", figures=_figures(plots, "forecast"),
                       warnings=[w for w in warnings if _about(w) == "forecast"])
    if result.get("predictions"):
        forecast.tables.append(predictions_table(result))
    if actual is not None:
        forecast.tables.append(measured_table([(result["predictions"][0], actual)], result["ci_level"]))
    if compute_optimal_line(result):
        forecast.paragraphs.append(compute_optimal_line(result))
    if result.get("curves"):
        forecast.tables.append(curve_table(result))
    sections = [fit, forecast]
    if result.get("backtest"):
        bt = result["backtest"]
        sections.append(Section("Backtest", "backtest", tables=[backtest_table(bt)], figures=_figures(plots, "backtest"),
                                warnings=[f"fold {f['fold']}: {w}" for f in bt.get("folds", [])
                                          for w in f.get("warnings", [])]))
    return sections


def flag_warnings(result: dict) -> list[str]:
    return [f"flagged before the fit: {f['message']}" for f in result.get("flags", [])]


def measured_table(pairs: list[tuple[dict, float]], level: float) -> TextTable:
    """(forecast, the value measured) per metric."""
    rows = [[p["name"], p["metric"], f"{p['value']:.4f}", f"[{p['lo']:.4f}, {p['hi']:.4f}]", f"{actual:.4f}",
             f"{p['value'] / actual - 1:+.2%}" if actual else "", "yes" if p["lo"] <= actual <= p["hi"] else "no"]
            for p, actual in pairs]
    return TextTable(["target", "metric", "forecast", f"{level:.0%} interval", "measured", "forecast error",
                      "covered"], rows, "forecast against the run itself (trained after the forecast was written)")


@dataclass
class Measured:
    """The target trained as a run of its own (the demo's held-out rung): what it measured."""
    name: str
    tokens: float
    loss: float
    evals: dict  # {"<entry>/<metric>": value}
    run: RunDir


def measured_target(runs_dir: Path, plan: Plan) -> Measured | None:
    """The held-out run of the target (runs_dir/<ladder>-heldout/<target>, as `ladder demo` trains it), if done."""
    run = RunDir.of(runs_dir, heldout_ladder(plan.ladder), plan.target.name)
    summary = run.summary()
    if not summary or summary.get("status") != "done":
        return None
    result = next(iter(summary["budgets"].values()))
    return Measured(plan.target.name, result["tokens"], result["loss"], result.get("eval", {}), run)


def _summaries(plan: Plan, runs_dir: Path) -> dict[str, dict]:
    runs = {r.name: RunDir.of(runs_dir, plan.ladder, r.name) for r in plan.rungs}
    return {name: summary for name, run in runs.items() if (summary := run.summary()) is not None}


def plan_section(plan: Plan, summaries: dict[str, dict]) -> Section:
    states = [(summaries.get(r.name) or {}).get("status") or "not started" for r in plan.rungs]
    counts = {s: states.count(s) for s in dict.fromkeys(states)}
    spent = spent_flops(plan, summaries, [r.name for r, state in zip(plan.rungs, states) if state == "done"])
    table = plan_table(plan)
    table.notes = [n for n in table.notes if not n.startswith("warning: ")]  # shown as the section's warnings
    return Section("Plan and cost", "plan", tables=[table], warnings=list(plan.notes), paragraphs=[
        "rungs: " + ", ".join(f"{n} {s}" for s, n in counts.items()) +
        f"; the finished ones spent {spent:.3g} FLOPs ({spent / plan.target.flops:.2%} of the target's)"])


def task_section(task, measured: Measured | None) -> Section:
    section = Section("Task forecast", "task")
    if task.law is None:
        section.warnings.append(f"the two-step law on {task.name} could not be fitted: {task.result['error']}")
        return section
    result = task.result
    section.paragraphs.append(f"two-step law on {result['n_points']} evaluations of {task.name} (every rung's "
                              f"budgets and intermediate points): (N, D) -> bits per byte -> {task.columns['accuracy']}")
    section.tables.append(predictions_table(result))
    if measured is not None:
        pairs = [(p, measured.evals.get(f"{task.name}/{task.columns[p['metric']]}")) for p in result["predictions"]]
        if any(value is not None for _, value in pairs):
            section.tables.append(measured_table([(p, v) for p, v in pairs if v is not None], result["ci_level"]))
    section.figures = _figures(result.get("plots", []), "forecast") + _figures(result.get("plots", []), "fit")
    section.warnings = list(result.get("warnings", []))
    return section


def curve_section(result: dict, measured: Measured | None, directory: Path) -> Section:
    """The target's whole run forecast by the curve law and, once it trained, its evaluations against the band."""
    from ladder.fit.plots import forecast_curves, plot_watch
    from ladder.fit.watch import observe, pick_curve, watch

    section = Section("Whole-curve forecast", "curve", paragraphs=[
        f"law {result['law']} on {result['n_points']} evaluations (every point of every rung's run and cooldowns): "
        f"the target's loss along its run under its recipe's schedule, with a {result['ci_level']:.0%} band"],
        tables=[curve_table(result)], warnings=list(result.get("warnings", [])))
    if measured is None:
        section.figures.append(Figure(forecast_curves(None, None, result, directory / "plots" / "curve_forecast.png"),
                                      CAPTIONS["curve_forecast"]))
        return section
    try:
        curve = pick_curve(result, measured.name, "report/curve_fit")
        report = watch(curve, observe(str(measured.run.path)))
    except LadderError as error:  # a curve forecast of another run: said, the page goes on
        section.warnings.append(f"the held-out run against its curve: {error}")
        return section
    errors = [abs(p["forecast"] / p["loss"] - 1) for p in report["points"]]
    inside = sum(p["inside"] for p in report["points"])
    section.paragraphs.append(f"the held-out run against it: median |error| {np.median(errors):.2%} over its "
                              f"{len(errors)} evaluations, {inside} of them inside the band")
    section.figures.append(Figure(plot_watch(curve, report, directory / "plots" / "watched.png"), CAPTIONS["watched"]))
    return section


def history_section(history: list[dict], plan: Plan, measured: Measured | None, level: float,
                    directory: Path) -> Section:
    section = Section("Forecast as rungs landed", "history", paragraphs=[
        "The law refitted on the rungs finished by each point, in the order they finished, against the compute the "
        "ladder had spent. Once more rungs stop moving the forecast, the ladder has answered."])
    rows = [[str(len(h["rungs"])), h["rungs"][-1], str(h["points"]), f"{h['spent_flops']:.3g}",
             f"{h['spent_flops'] / plan.target.flops:.2%}",
             f"{h['value']:.4f}" if "value" in h else "", f"[{h['lo']:.4f}, {h['hi']:.4f}]" if "value" in h else
             f"not fitted: {h.get('skipped', '')}"] for h in history]
    section.tables.append(TextTable(["rungs", "last landed", "points", "FLOPs spent", "of the target's", "forecast",
                                     f"{level:.0%} interval"], rows))
    if any("value" in h for h in history):
        section.figures.append(Figure(history_plot(history, plan.target.flops, measured.loss if measured else None,
                                                   level, directory / "plots" / "history.png"),
                                      "The forecast and its interval after each rung landed."))
    return section


def headlines(result: dict, measured: Measured | None, plan: Plan | None = None) -> list[Headline]:
    out = []
    if result.get("predictions"):
        p = result["predictions"][0]
        number = (lambda v: f"{v:.4f}") if p["metric"] in ("loss", "accuracy") else human
        out.append(Headline(f"forecast {p['metric']} of {p['name']}", number(p["value"]),
                            f"{result['ci_level']:.0%} interval [{number(p['lo'])}, {number(p['hi'])}]"))
        if measured is not None:
            covered = p["lo"] <= measured.loss <= p["hi"]
            out.append(Headline("measured (after the forecast)", f"{measured.loss:.4f}",
                                f"forecast error {p['value'] / measured.loss - 1:+.2%}; "
                                f"{'inside' if covered else 'outside'} the interval"))
    if result.get("backtest"):
        bt = result["backtest"]
        out.append(Headline("rolling backtest", f"{bt['coverage']:.0%} covered",
                            f"{bt['n_test']} held-out rows, median |error| {bt['median_abs_rel_error']:.2%}"))
    if plan is not None:
        out.append(Headline("ladder cost", f"{plan.ladder_flops / plan.target.flops:.1%} of the target",
                            f"{plan.ladder_flops:.3g} FLOPs in {len(plan.rungs)} rungs"))
    return out


def write_fit_page(result: dict, directory: Path) -> Path:
    """`ladder fit ... out=DIR`: DIR/report/index.html from fit.json's content."""
    title = f"{result['law']} fit of {result['source']}"
    return write_page(directory / "report" / "index.html", title, fit_sections(result), headlines(result, None))


def write_ladder_report(cfg, plan: Plan, fit: LadderFit | None = None, directory: Path | None = None,
                        subtitle: str = "") -> Path:
    """runs_dir/<ladder>/report/index.html and report.md from what has finished; `fit` (the demo's, already
    written) is made here when not given."""
    root = ladder_dir(cfg.runs_dir, plan.ladder)
    directory = directory or report_dir(cfg.runs_dir, plan.ladder)
    measured = measured_target(Path(cfg.runs_dir), plan)
    summaries = _summaries(plan, Path(cfg.runs_dir))
    evaluations = ladder_evaluations(plan, root, include_changed(cfg.collect.include_changed))
    target = (measured.name, measured.tokens) if measured else None
    if fit is None:
        fit = fit_ladder(cfg, plan, evaluations, root, target)
        write_outputs(fit.law, fit.table, fit.result, directory / "fit")
    if measured is not None:  # the measured value beside its forecast
        p = fit.forecast
        loss_vs_compute(fit.law, fit.table, {**fit.result, "actuals": [{"name": measured.name, "flops": p["flops"],
                                                                        "loss": measured.loss}]},
                        directory / "fit" / "plots" / "loss_vs_compute.png")
    if fit.task is not None and fit.task.law is not None and "plots" not in fit.task.result:
        write_outputs(fit.task.law, fit.task.table, fit.task.result, directory / "task_fit")
    curves_of = {r.name: RunDir.of(cfg.runs_dir, plan.ladder, r.name).metrics() for r in plan.rungs}
    if measured is not None:
        curves_of[f"{measured.name} (held out)"] = measured.run.metrics()
    curves = Section("Loss curves", "curves", figures=[Figure(loss_curves(curves_of, directory / "curves.png"),
                     "Every rung's train and validation loss; each star a budget's result after its cooldown.")],
                     warnings=flag_warnings(fit.result))
    sections = [plan_section(plan, summaries), curves,
                *fit_sections(fit.result, measured.loss if measured else None, flags=False)]
    if fit.task is not None:
        sections.append(task_section(fit.task, measured))
    if (directory / "curve_fit" / "fit.json").exists():  # the demo's curve forecast, written before the rung trained
        sections.append(curve_section(read_json(directory / "curve_fit" / "fit.json"), measured, directory))
    if cfg.fit.get("history", True):
        try:
            history = forecast_history(cfg, plan, evaluations, summaries, root, directory / "history.json", target)
            if history:
                sections.append(history_section(history, plan, measured, float(cfg.ci_level), directory))
        except LadderError as error:
            sections.append(Section("Forecast as rungs landed", "history", warnings=[str(error)]))
    title = f"ladder {plan.ladder}: forecast of {plan.target.name}"
    subtitle = subtitle or (f"{len(fit.table)} points from {root}; law {fit.result['law']}; N as "
                            f"{plan.params_convention.describe()}, C as {plan.flops_convention} FLOPs")
    page = write_page(directory / "index.html", title, sections, headlines(fit.result, measured, plan), subtitle)
    write_markdown(directory / "report.md", title, subtitle, sections)
    return page

