"""The forecast as each rung landed: the ladder's law refitted on the rungs finished by then, against the compute
the ladder had spent. When more rungs stop moving the forecast, the ladder has done its job.

Rungs land in the order their last budget finished (summary.json's `finished_at`; runs trained before it was
recorded land first, cheapest first). Each refit is cached in report/history.json under the points it used (rung,
budget, loss) and the options that decide a fit, so a page refreshed during a sweep refits only what is new."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from ladder.errors import LadderError
from ladder.fit.ladder import fit_ladder
from ladder.fit.table import Table
from ladder.io import NUMBER, TEXT, WHOLE, Each, atomic_write_json, check_shape, read_json
from ladder.plan import Plan


# report/history.json, the cache of refits: its shape, checked where it is read
HISTORY = {"fingerprint": TEXT, "entries": Each({"rungs": [TEXT], "points": WHOLE, "value?": NUMBER, "lo?": NUMBER,
                                                 "hi?": NUMBER, "warnings?": [TEXT], "skipped?": TEXT})}


def read_history(cache: Path) -> dict:
    """The cached refits ({} before the first), or one line naming the field of another shape."""
    if not cache.exists():
        return {}
    return check_shape(cache, read_json(cache), HISTORY, "delete it: it is a cache, and the report refits what it "
                                                         "held")


def landed_rungs(plan: Plan, summaries: dict[str, dict]) -> list[str]:
    """The plan's finished rungs in the order they finished."""
    done = [r for r in plan.rungs if (summaries.get(r.name) or {}).get("status") == "done"]

    def landed_at(rung):  # runs from before finished_at was recorded landed before those after, cheapest first
        times = [b.get("finished_at") for b in summaries[rung.name]["budgets"].values()]
        return (1, max(times), 0.0) if times and None not in times else (0, 0.0, rung.flops)
    return [r.name for r in sorted(done, key=landed_at)]


def spent_flops(plan: Plan, summaries: dict[str, dict], rungs: list[str]) -> float:
    """Compute the ladder had spent on these rungs (every token each trained, in the plan's FLOPs convention)."""
    def flops_per_token(summary):
        given = (summary.get("flops_per_token") or {}).get(plan.flops_convention)
        budget = next(iter(summary["budgets"].values()))
        return given or budget["flops"] / budget["tokens"]  # the run's own convention, for older summaries
    return float(sum(flops_per_token(summaries[name]) * summaries[name].get("tokens_seen", 0) for name in rungs))


def _fingerprint(cfg, plan: Plan, target: tuple | None) -> str:
    """What decides a refit besides its points: the law, the interval, the bootstrap, the exclusions, the target
    and the counts of N and C."""
    decides = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("law", "interval", "bootstrap",
                                                                                  "columns", "target")}
    decides.update(ci_level=float(cfg.ci_level), exclude=list(cfg.fit.exclude or []), target_used=list(target or []),
                   params=plan.params_convention.name, flops=plan.flops_convention)
    return hashlib.sha256(json.dumps(decides, sort_keys=True, default=str).encode()).hexdigest()[:16]


def forecast_history(cfg, plan: Plan, evaluations: Table, summaries: dict[str, dict], root: Path,
                     cache: Path, target: tuple[str, float] | None = None) -> list[dict]:
    """One entry per landed rung from the second on (one size cannot fix a law in N): the rungs, the compute
    spent, and the target's forecast with its interval, or why it could not be fitted."""
    order = landed_rungs(plan, summaries)
    fingerprint = _fingerprint(cfg, plan, target)
    stored = read_history(cache)
    entries = stored.get("entries", {}) if stored.get("fingerprint") == fingerprint else {}
    history = []
    for k in range(2, len(order) + 1):
        rungs = order[:k]
        rows = np.flatnonzero([name in rungs for name in evaluations["rung"]])
        subset = evaluations.take(rows)
        final = subset["final"] == 1
        points = zip(subset["rung"][final], subset["budget"][final], subset["loss"][final])
        key = ",".join(sorted(f"{r}:{b}:{loss:.6g}" for r, b, loss in points))  # a rung retrained is a new point
        if key not in entries:
            entry = {"rungs": rungs, "points": int(final.sum())}
            try:
                fit = fit_ladder(cfg, plan, subset, root, target, backtest=None, checks=False, task=False)
                p = fit.forecast
                entry.update({name: float(p[name]) for name in ("value", "lo", "hi") if name in p},
                             warnings=fit.result["warnings"])
            except LadderError as error:
                entry["skipped"] = str(error)
            entries[key] = entry
        history.append({**entries[key], "rungs": rungs, "spent_flops": spent_flops(plan, summaries, rungs)})
    if history:
        atomic_write_json(cache, {"fingerprint": fingerprint, "entries": entries})
    return history


def history_plot(history: list[dict], target_flops: float, actual: float | None, level: float, path: Path) -> Path:
    """The forecast and its interval against the ladder compute spent, each point a rung landing."""
    from ladder.fit.plots import ACTUAL, FORECAST, LOSS_LABEL, error_bars, plain_log_axis, plt, save

    fig, ax = plt.subplots(figsize=(7, 4.5))
    fitted = [h for h in history if "value" in h]
    x = np.array([h["spent_flops"] / target_flops for h in fitted])
    value = np.array([h["value"] for h in fitted])
    ax.errorbar(x, value, yerr=error_bars(value, [h["lo"] for h in fitted], [h["hi"] for h in fitted]), fmt="o-",
                color=FORECAST, capsize=4, label=f"forecast with its {level:.0%} interval")
    for xi, vi, h in zip(x, value, fitted):
        ax.annotate(f"{len(h['rungs'])} rungs", (xi, vi), textcoords="offset points", xytext=(6, 6), fontsize=7)
    if actual is not None:
        ax.axhline(actual, color=ACTUAL, ls="--", lw=1, label="measured at the target")
    ax.set(xscale="log", xlabel="ladder compute spent / the target's compute", ylabel=f"forecast {LOSS_LABEL}",
           title="the forecast as each rung landed")
    plain_log_axis(ax)
    ax.legend(fontsize=8)
    return save(fig, path)
