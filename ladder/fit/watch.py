"""`ladder watch`: a running (or finished) run against the curve its forecast promised.

The forecast is a fit directory whose fit.json has a `curves` entry (`ladder fit law=curve`): the target's loss at
points along its run, a band, and the covariance of the log forecast between the points. The run is a ladder run
directory, a CSV of tokens and loss (and optionally lr), or a W&B run path. Watch places each logged evaluation in
the band, says when the run left it, and forecasts the final loss from the part seen so far by conditioning the
forecast's own covariance on it (ladder.fit.curves.condition): no refit, so a call takes a second on a live run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ladder.errors import LadderError, require
from ladder.fit.curves import condition, on_path
from ladder.io import read_json

WANDB_PATH = re.compile(r"^[\w.-]+/[\w.-]+/[\w-]+$")  # entity/project/run_id
LR_MISMATCH = 0.1  # of the peak: a run whose LR differs more than this from the forecast's schedule is refused


@dataclass
class Observed:
    tokens: np.ndarray
    loss: np.ndarray
    lr_frac: np.ndarray | None = None  # each point's LR relative to the run's peak, where the source logs it
    notes: list[str] = field(default_factory=list)


def load_curve(fit_dir: str | Path, name: str | None = None) -> dict:
    """The forecast curve of target `name` (None: the first) in fit_dir/fit.json."""
    path = Path(fit_dir) / "fit.json" if Path(fit_dir).is_dir() else Path(fit_dir)
    require(path.exists(), f"watch.forecast={fit_dir}: no fit.json there; make one with ladder fit law=curve")
    return pick_curve(read_json(path), name, f"watch.forecast={fit_dir}")


def pick_curve(result: dict, name: str | None, where: str) -> dict:
    """The forecast curve of target `name` (None: the first) in a fit's result (fit.json's content)."""
    curves = result.get("curves") or []
    require(curves, f"{where}: the fit has no forecast curve; fit with law=curve (it forecasts the target's whole "
                    f"run)")
    if name is None:
        return curves[0]
    for curve in curves:
        if curve["name"] == str(name):
            return curve
    raise LadderError(f"watch.curve={name}: not in {where}; it has {', '.join(c['name'] for c in curves)}")


def observe(run: str) -> Observed:
    """A run's validation evaluations: a ladder run directory, a CSV (tokens, loss[, lr]) or a W&B run path."""
    path = Path(run)
    if path.is_dir():
        return _from_run_dir(path)
    if path.suffix == ".csv" or path.exists():
        return _from_csv(path)
    require(WANDB_PATH.match(run), f"watch.run={run}: not a run directory, a CSV or a W&B run path "
                                   f"(entity/project/run_id)")
    return _from_wandb(run)


def _from_run_dir(path: Path) -> Observed:
    from ladder.fit.collect import collect_runs

    table = collect_runs(path, curves=True)
    kept = on_path(table)
    notes = [] if len(kept) == len(table) else [
        f"{len(table) - len(kept)} evaluation(s) at the end of other budgets' cooldowns are not on this run's "
        f"path and are left out"]
    rows = table.take(kept)
    lr = rows["lr_frac"] if "lr_frac" in rows else None
    return Observed(np.asarray(rows["tokens"], dtype=float), np.asarray(rows["loss"], dtype=float), lr, notes)


def _from_csv(path: Path) -> Observed:
    from ladder.fit.table import Table

    return from_table(Table.read_csv(path), f"watch.run={path}", path.name)


def from_table(table, where: str, label: str) -> Observed:
    """A table (a CSV's, a DataFrame's) of tokens and loss, and optionally lr (any unit: scaled to its peak);
    `where` starts an error's line, `label` names the table in a note."""
    for column in ("tokens", "loss"):
        require(column in table, f"{where}: needs a {column!r} column (and optionally lr)")
    lr = np.asarray(table["lr"], dtype=float) if "lr" in table else None
    notes = [] if lr is not None else [
        f"{label} has no lr column: assumed to follow the forecast's schedule (its recipe), unchecked"]
    return Observed(np.asarray(table["tokens"], dtype=float), np.asarray(table["loss"], dtype=float),
                    None if lr is None else lr / np.nanmax(lr), notes)


def _from_wandb(run_path: str, api=None) -> Observed:
    """A W&B run's logged validation loss (ladder logs val_loss with tokens); needs the network."""
    if api is None:
        import wandb
        api = wandb.Api(timeout=30)
    history = api.run(run_path).history(keys=["tokens", "val_loss"], pandas=False)
    rows = [r for r in history if r.get("val_loss") is not None]
    require(rows, f"watch.run={run_path}: the W&B run has no val_loss logged with tokens")
    return Observed(np.array([r["tokens"] for r in rows], dtype=float), np.array([r["val_loss"] for r in rows]),
                    notes=["from W&B; assumed to follow the forecast's schedule (its recipe), unchecked"])


def checked(observed: Observed, curve: dict) -> Observed:
    """The run's points in token order, refused in one line where they cannot be compared with the forecast: a
    diverged run, a run longer than the forecast, a run whose LR schedule is not the forecast's."""
    order = np.argsort(observed.tokens)
    order = order[observed.tokens[order] > 0]  # an evaluation before the first step is no point of the curve
    tokens, loss = observed.tokens[order], observed.loss[order]
    require(len(tokens) > 0, "watch.run: no evaluation logged yet")
    bad = np.flatnonzero(~np.isfinite(loss))
    if bad.size:
        raise LadderError(f"watch.run: the loss is {loss[bad[0]]} at {tokens[bad[0]]:.4g} tokens: the run diverged; "
                          f"nothing after it compares with a forecast")
    end = curve["tokens"][-1]
    require(tokens[-1] <= end * 1.001, f"watch.run: evaluated at {tokens[-1]:.4g} tokens, beyond the forecast's "
                                       f"{end:.4g}: watch it against a forecast of its own length (target.tokens)")
    if observed.lr_frac is not None:
        lr = observed.lr_frac[order]
        expected = np.interp(tokens, curve["tokens"], curve["lr_frac"])
        off = np.flatnonzero(np.abs(lr - expected) > LR_MISMATCH)
        if off.size:
            raise LadderError(f"watch.run: at {tokens[off[0]]:.4g} tokens the run's LR is {lr[off[0]]:.2f} of its "
                              f"peak where the forecast's schedule has {expected[off[0]]:.2f} (restarted, or another "
                              f"schedule): watch it against a forecast made with its recipe")
    return Observed(tokens, loss, None, observed.notes)


def watch(curve: dict, observed: Observed) -> dict:
    """Each evaluation against the band, when the run left it, and the final loss forecast from what is seen."""
    run = checked(observed, curve)
    path_tokens = np.asarray(curve["tokens"], dtype=float)
    log_path, level = np.log(np.asarray(curve["value"], dtype=float)), float(curve["level"])
    shared, point_sd = np.asarray(curve["log_cov"], dtype=float), float(curve["point_sd"])
    x_path, x_run = np.log(path_tokens), np.log(run.tokens)
    nearest = np.abs(x_run[:, None] - x_path[None, :]).argmin(axis=1)
    # each evaluation's forecast between the path's points, its covariance the nearest point's
    log_forecast = np.interp(x_run, x_path, log_path)
    lo = np.interp(x_run, x_path, np.log(curve["lo"]))
    hi = np.interp(x_run, x_path, np.log(curve["hi"]))
    log_loss = np.log(run.loss)
    outside = (log_loss < lo) | (log_loss > hi)
    points = [{"tokens": float(t), "loss": float(v), "forecast": float(np.exp(f)), "lo": float(np.exp(a)),
               "hi": float(np.exp(b)), "off": float(v / np.exp(f) - 1), "inside": bool(not o)}
              for t, v, f, a, b, o in zip(run.tokens, run.loss, log_forecast, lo, hi, outside)]
    left = None
    if outside[-1]:  # the run is outside now: since the first point of its current stretch outside
        first = len(outside) - int(np.argmin(outside[::-1])) if not outside.all() else 0
        left = {"since_tokens": float(run.tokens[first]), "off": points[-1]["off"],
                "side": "above" if log_loss[-1] > hi[-1] else "below"}
    # the whole path given the run's residuals, each evaluation correlated with the rest as its nearest path point
    cond_mean, cond_lo, cond_hi = condition(log_path, shared, point_sd, nearest, log_loss - log_forecast, level)
    return {"name": curve["name"], "level": level, "points": points, "left_band": left,
            "final_tokens": float(path_tokens[-1]), "seen_fraction": float(run.tokens[-1] / path_tokens[-1]),
            "final": {"forecast": float(np.exp(log_path[-1])), "lo": float(curve["lo"][-1]),
                      "hi": float(curve["hi"][-1])},
            "final_given_run": {"forecast": float(np.exp(cond_mean[-1])), "lo": float(np.exp(cond_lo[-1])),
                                "hi": float(np.exp(cond_hi[-1]))},
            "curve_given_run": {"tokens": path_tokens.tolist(), "value": np.exp(cond_mean).tolist(),
                                "lo": np.exp(cond_lo).tolist(), "hi": np.exp(cond_hi).tolist()},
            "notes": run.notes}


def format_watch(report: dict, last: int = 12) -> str:
    from ladder.report import human
    from ladder.report import format_table

    level = f"{report['level']:.0%}"
    rows = [[human(p["tokens"]), f"{p['loss']:.4f}", f"{p['forecast']:.4f}", f"[{p['lo']:.4f}, {p['hi']:.4f}]",
             f"{p['off']:+.2%}", "inside" if p["inside"] else "OUTSIDE"] for p in report["points"][-last:]]
    lines = [f"run against the forecast of {report['name']} ({level} band), "
             f"{report['seen_fraction']:.0%} of its {human(report['final_tokens'])} tokens seen",
             *(f"note: {n}" for n in report["notes"]),
             format_table(["tokens", "loss", "forecast", f"{level} band", "off", "where"], rows)]
    left = report["left_band"]
    inside = sum(p["inside"] for p in report["points"])
    lines.append(f"{inside} of {len(report['points'])} evaluations inside the band" + (
        f"; OUTSIDE since {human(left['since_tokens'])} tokens, now {left['off']:+.2%} ({left['side']} the band)"
        if left else ""))
    f, g = report["final"], report["final_given_run"]
    lines.append(f"final loss at {human(report['final_tokens'])} tokens: {g['forecast']:.4f} [{g['lo']:.4f}, "
                 f"{g['hi']:.4f}] given the run so far (the forecast before it: {f['forecast']:.4f} "
                 f"[{f['lo']:.4f}, {f['hi']:.4f}])")
    return "\n".join(lines)
