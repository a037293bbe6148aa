"""A fit's tables, built once: the terminal prints them with format_table, the HTML page renders the same rows."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ladder.report import format_table, human


@dataclass
class TextTable:
    header: list[str]
    rows: list[list[str]]
    title: str = ""  # lines printed above the table
    notes: list[str] = field(default_factory=list)  # lines printed below it

    def text(self) -> str:
        return "\n".join([*([self.title] if self.title else []), format_table(self.header, self.rows), *self.notes])


def fit_headline(result: dict) -> list[str]:
    """What was fitted to what, in which counts, and how well the optimiser did."""
    lines = [f"law {result['law']} on {result['n_points']} points from {result['source']} "
             f"(FLOPs: {result['flops_convention']}; {result['ci_level']:.0%} bootstrap intervals on coefficients, "
             f"n={result['bootstrap']['n']})"]
    if result.get("params_used"):
        lines.append(f"N: {result['params_used']}")
    objective = result["objective"]
    if "value" in objective:
        lines.append(f"objective {objective['kind']}: {objective['value']:.8g} "
                     f"({objective.get('n_converged', '?')}/{objective.get('n_starts', '?')} starts converged)")
    return lines


def coefficients_table(result: dict) -> TextTable:
    ci = result.get("ci", {})
    rows = [[name, f"{value:.6g}", "" if name not in ci else f"[{ci[name][0]:.4g}, {ci[name][1]:.4g}]"]
            for name, value in result["coefficients"].items()]
    return TextTable(["coefficient", "value", "interval"], rows)


def predictions_table(result: dict) -> TextTable:
    """The forecasts with their interval, the mean law's band and each part of the interval (sd, % of the value)."""
    interval = result.get("interval", {})
    model = interval.get("error_model")
    header = ["target", "N", "tokens", "FLOPs", "metric", "forecast", "interval", "band of mean law"]
    if model:
        header += ["e-folds out", "sd: coefs", "noise", "extrap."]
    body = []
    for p in result["predictions"]:
        row = [p["name"], human(p["params"]), human(p["tokens"]), f"{p['flops']:.3g}", p["metric"],
               f"{p['value']:.4g}", f"[{p['lo']:.4g}, {p['hi']:.4g}]",
               f"[{p['band_lo']:.4g}, {p['band_hi']:.4g}]" if _finite(p.get("band_lo")) else "-"]  # -: no bootstrap
        if model:
            parts = p.get("parts_sd", {})
            unit = " pt" if p["metric"] == "accuracy" else "%"  # accuracy's parts in points, the rest relative
            row += [f"{p['distance_efolds']:.2f}" if "distance_efolds" in p else ""]
            row += [f"{100 * parts[k]:.2f}{unit}" if k in parts and np.isfinite(parts[k]) else ""
                    for k in ("coefficients", "noise", "extrapolation")]
        body.append(row)
    title = f"forecasts: {interval.get('level', result['ci_level']):.0%} {interval.get('method', '')}"
    if model:
        title += (f"\n  extrapolation error {100 * model['kappa_per_efold']:.2f}% per e-fold (t, {model['dof']:.0f} "
                  f"dof) from {model['n_folds']} rolling fold(s) and the prior; noise {100 * model['noise_sd']:.2f}%")
    return TextTable(header, body, title)


def curve_table(result: dict, fractions=(0.1, 0.25, 0.5, 1.0)) -> TextTable:
    """law=curve: each target's forecast run at a few fractions of its tokens (fit.json `curves` has the whole)."""
    rows = []
    for curve in result.get("curves") or []:
        tokens = np.asarray(curve["tokens"])
        for fraction in fractions:
            i = int(np.argmin(np.abs(tokens - fraction * tokens[-1])))
            value, lo, hi = (_four(curve[k][i]) for k in ("value", "lo", "hi"))  # fit.json: NaN as null
            rows.append([curve["name"], f"{tokens[i] / tokens[-1]:.0%}", human(tokens[i]), f"{curve['lr_frac'][i]:.2f}",
                         value, f"[{lo}, {hi}]"])
    level = (result.get("curves") or [{}])[0].get("level", result["ci_level"])
    return TextTable(["target", "of its run", "tokens", "LR / peak", "forecast loss", f"{level:.0%} band"], rows,
                     "the forecast run, under the recipe's schedule (all points: fit.json curves; compare a run with "
                     "it: ladder watch)")


def _four(value) -> str:
    return f"{value:.4f}" if _finite(value) else "-"


def _finite(value) -> bool:
    return value is not None and bool(np.isfinite(value))


def backtest_table(bt: dict) -> TextTable:
    """One row per fold (rolling), or per held-out row (one split)."""
    title = (f"backtest ({bt['rule']}): median |error| {bt['median_abs_rel_error']:.2%}, coverage "
             f"{bt['coverage']:.0%} of {bt['n_test']} rows at {bt.get('level', 0.95):.0%}, median width "
             f"{bt['median_rel_width']:.2%}, mean interval score {bt['mean_interval_score']:.4g}")
    if len(bt.get("folds", [])) > 1:
        body = [[str(f["fold"]), f["rule"], str(f["n_train"]), str(f.get("n_test", "")),
                 f"{f['median_abs_rel_error']:.2%}" if "coverage" in f else "",
                 f"{f['coverage']:.0%}" if "coverage" in f else f"skipped: {f['skipped']}"] for f in bt["folds"]]
        return TextTable(["fold", "fit on", "rows", "held out", "median |error|", "coverage"], body, title)
    name = bt.get("run_column", "run")
    body = [[str(r.get(name, "")), human(r["params"]), human(r["tokens"]), f"{r['actual']:.4g}",
             f"{r['predicted']:.4g}", f"[{r['lo']:.4g}, {r['hi']:.4g}]", f"{r['rel_error']:+.2%}",
             "yes" if r["covered"] else "no"] for r in bt["rows"]]
    return TextTable(["held out", "N", "tokens", "actual", "forecast", "interval", "error", "covered"], body,
                     title)


def compute_optimal_line(result: dict) -> str | None:
    optimal = result.get("compute_optimal")
    return f"compute-optimal: N_opt ~ C^{optimal['a']:.3f}, D_opt ~ C^{optimal['b']:.3f}" if optimal else None


def format_fit(result: dict) -> str:
    from ladder.fit.checks import format_checks

    lines = [*format_checks(result), *fit_headline(result), "", coefficients_table(result).text()]
    if result["predictions"]:
        lines += ["", predictions_table(result).text()]
    if result.get("curves"):
        lines += ["", curve_table(result).text()]
    if compute_optimal_line(result):
        lines.append("\n" + compute_optimal_line(result))
    if result.get("backtest"):
        lines += ["", backtest_table(result["backtest"]).text()]
    lines += [f"warning: {w}" for w in result["warnings"]]
    return "\n".join(lines)
