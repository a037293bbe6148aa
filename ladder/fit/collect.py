"""Collect: one tidy table (a row per rung and budget) from run directories, a W&B project, or a CSV.

A run directory's `summary.json` is the contract (written by `ladder train`):
  {"status", "ladder", "rung", "seed", "params", "non_embedding_params", "olmo_params", "lr", "batch_tokens",
   "flops_convention",
   "budgets": {label: {"tokens", "flops", "loss", "eval": {name: value}}}, "wandb_id"}
Each budget's evals become columns `eval/<entry>/<metric>`; `final` is 1 for a budget's finished result. With
curves=True the table also holds every intermediate evaluation of the main run from metrics.jsonl (final = 0), the
checkpoint rows that the two-step task law fits its second step to, and every row carries its point's place in the
LR schedule (`lr_area_tokens`, `lr_frac`: ladder.fit.curves), what the curve law reads.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ladder.errors import require
from ladder.fit.curves import run_schedule, schedule_columns
from ladder.fit.table import Table
from ladder.model.counting import ParamCount
from ladder.rundir import iter_runs


def is_collected(columns) -> bool:
    """Whether a table holds every count ladder writes (runs, or a CSV `ladder collect` wrote)."""
    return set(ParamCount) <= set(columns)


def params_column(convention, collected: bool, given: str, explicit: bool, source: str) -> tuple[str, str]:
    """The one choice of N per fit: (the table's column that is N, what every output says it is). A table ladder
    collected gives the ladder's own count (ladder.params_convention); another table gives the column `given`
    names, as the user's count; an explicit columns.params always wins."""
    if explicit:
        known = ParamCount.of_column(given)
        return given, (known.describe() if known and collected else f"column {given!r}") + " (columns.params)"
    if collected:
        chosen = ParamCount.named(convention, "ladder.params_convention")
        return chosen.value, f"{chosen.describe()} (ladder.params_convention)"
    return given, f"column {given!r} of {source}, the count as given"


def rows_from_summary(summary: dict, source: str) -> list[dict]:
    """One row per budget that has a loss; a running rung contributes the budgets it has finished."""
    for key in ("ladder", "rung", "params", "budgets"):
        require(key in summary, f"{source}: summary has no {key!r}; is it a ladder run directory?")
    rows = []
    for label, result in summary["budgets"].items():
        if result.get("loss") is None:
            continue
        row = {"ladder": summary["ladder"], "rung": summary["rung"], "size": summary.get("size", summary["rung"]),
               "seed": summary.get("seed", 0), "budget": label,
               **{c: summary.get(c, np.nan) for c in (*map(str, ParamCount), "lr", "batch_tokens")},
               "tokens": result["tokens"], "flops": result["flops"],
               "flops_convention": summary.get("flops_convention", ""), "loss": result["loss"],
               "status": summary.get("status", ""), "final": 1}
        row.update({f"eval/{name}": value for name, value in (result.get("eval") or {}).items()})
        rows.append(row)
    return rows


def curve_rows(summary: dict, records: list[dict], source: str) -> list[dict]:
    """The main run's intermediate evaluations (records with a validation loss and no budget), as table rows."""
    finals = rows_from_summary(summary, source)
    if not finals or not records:
        return []
    flops_per_token = finals[0]["flops"] / finals[0]["tokens"]
    base = {k: v for k, v in finals[0].items() if not k.startswith("eval/")}
    rows = []
    for record in records:
        if "val_loss" not in record or "budget" in record:
            continue
        row = {**base, "budget": "", "tokens": record["tokens"], "flops": record["tokens"] * flops_per_token,
               "loss": record["val_loss"], "final": 0}
        row.update({k: v for k, v in record.items() if k.startswith("eval/")})
        rows.append(row)
    return rows


def with_schedule(rows: list[dict], run_path: Path) -> list[dict]:
    """The rows of one run with each point's `lr_area_tokens` and `lr_frac` (ladder.fit.curves), from the recipe
    its config.yaml recorded; unchanged for a run that recorded none."""
    schedule = run_schedule(run_path)
    if schedule is None or not rows:
        return rows
    recipe, budgets = schedule
    columns = schedule_columns(recipe, budgets, [row["tokens"] for row in rows],
                               [row["budget"] if row["final"] == 1 else None for row in rows])
    return [{**row, **{name: float(values[i]) for name, values in columns.items()}} for i, row in enumerate(rows)]


def table_from_rows(rows: list[dict]) -> Table:
    names = list(dict.fromkeys(name for row in rows for name in row))
    return Table({name: [row.get(name, np.nan) for row in rows] for name in names})


def collect_runs(directory: str | Path, curves: bool = False, plan=None, include_changed: bool = False) -> Table:
    """Every summary.json below `directory` (a runs dir, a ladder's dir or one rung's dir); with curves, every
    intermediate evaluation too. A run of `plan`'s ladder that finished with another configuration of its rung than
    the plan's now (`ladder status` says "changed") is left out, and said so, unless `include_changed`."""
    directory = Path(directory)
    require(directory.is_dir(), f"runs={directory}: not a directory")
    runs = list(iter_runs(directory))
    require(runs, f"runs={directory}: no summary.json below it; train some rungs first (ladder train)")
    current = plan_identities(plan) if plan is not None else {}
    rows, left_out, unchecked = [], 0, set()
    for run in runs:
        summary = run.summary()
        if plan is not None and summary.get("ladder") != plan.ladder:
            unchecked.add(str(summary.get("ladder")))
        wanted = current.get((summary.get("ladder"), summary.get("rung")))
        if wanted and summary.get("rung_identity") not in (None, wanted):
            kept = "kept (collect.include_changed=true)" if include_changed else \
                "left out; collect.include_changed=true keeps it, or retrain it (train.overwrite=true)"
            print(f"warning: {run.path}: finished with another configuration of rung {summary.get('rung')} than the "
                  f"ladder's now (its recipe, shape, budgets or seed changed): {kept}", file=sys.stderr)
            if not include_changed:
                left_out += 1
                continue
        run_rows = rows_from_summary(summary, str(run.summary_path))
        if curves:  # each point in its LR schedule too: every step's LR, computed, so only for the curve readers
            run_rows = with_schedule(run_rows + curve_rows(summary, run.metrics(), str(run.metrics_path)), run.path)
        rows += run_rows
    if unchecked:  # nothing to compare them with: said, not silently trusted
        print(f"warning: runs of ladder {', '.join(sorted(unchecked))} under {directory} are not checked against a "
              f"plan (this config's ladder is {plan.ladder}); give ladder= to check them", file=sys.stderr)
    require(rows or not left_out, f"runs={directory}: every finished rung was left out as changed; give the "
                                  f"overrides they were trained with, or collect.include_changed=true")
    require(rows, f"runs={directory}: no rung has finished a budget yet (see ladder status)")
    return table_from_rows(rows)


def include_changed(value) -> bool:
    """collect.include_changed, checked: true or false, never a string that reads as true."""
    require(isinstance(value, bool), f"collect.include_changed={value!r}: use true (keep rungs that finished with "
                                     f"another configuration) or false")
    return value


def plan_identities(plan) -> dict[tuple[str, str], str]:
    """(ladder, rung) -> the identity each rung of `plan` has now (what summary.json's rung_identity records)."""
    from ladder.plan import rung_identity
    return {(plan.ladder, rung.name): rung_identity(rung) for rung in plan.rungs}


def collect_wandb(project: str, api=None) -> Table:
    """Rows from a W&B project's runs (public API; needs the network). Each run's summary holds the same
    `budgets` mapping as summary.json under the key `ladder/summary`."""
    if api is None:
        import wandb
        api = wandb.Api(timeout=30)
    rows = []
    for run in api.runs(project):
        summary = run.summary.get("ladder/summary")
        if summary:
            rows.extend(rows_from_summary(dict(summary), f"wandb run {run.id}"))
    require(rows, f"from_wandb={project}: no run in it carries a ladder summary")
    return table_from_rows(rows)
