"""How well the curve law (law=curve) forecasts whole loss curves, where the truth is known. Figures only.

1. The demo: the curve law fitted to the tiny ladder's runs forecasts the held-out rung's whole validation curve
   before it trains; printed: the median |error| over the curve's evaluated points and the band's coverage.
2. A run's final loss from its first 10/25/50%: each size of a ladder left out in turn, the law fitted to the other
   sizes forecasts the left-out runs' curves, and `ladder watch`'s conditioning turns the prefix into a forecast of
   the last evaluation. On the demo's tiny ladder (each rung's main run and its last budget's cooldown) and on the
   OLMo ladder's 16 runs in ../shared/refdata (cosine to 10%, warmup N tokens, the recipe=porian schedule; the
   logged LR is compared with the one the schedule code gives).

    python scripts/bench_curves.py --runs runs            # a runs_dir where `ladder demo` ran
    python scripts/bench_curves.py --olmo ../shared/refdata/olmo-ladder
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from ladder.fit.calibrate import IntervalOptions
from ladder.fit.collect import collect_runs
from ladder.fit.curves import curve_forecast, on_path, schedule_columns
from ladder.fit.laws import make_law
from ladder.fit.table import Table
from ladder.fit.watch import Observed, watch

FRACTIONS = (0.1, 0.25, 0.5)
OLMO_LOSS = "eval/c4_en-validation/CrossEntropyLoss"


def fit_curve(table: Table, n_boot: int = 200):
    law = make_law({"name": "curve"})
    return law.fit(table).bootstrap(table, n_boot, 0).calibrate(table, IntervalOptions(), 0)


def run_table(runs: list[dict]) -> Table:
    """The fit's table: every evaluation of each run (`fitted`, where it has more than its path's)."""
    keys = ("params", "tokens", "loss", "lr_area_tokens", "lr_frac")
    fitted = [r.get("fitted", r) for r in runs]
    return Table({**{k: np.concatenate([r[k] for r in fitted]) for k in keys},
                  "run": np.concatenate([[r["name"]] * len(f["tokens"]) for r, f in zip(runs, fitted)])})


def score(law, run: dict, fractions=FRACTIONS) -> dict:
    """The run's curve forecast (error and coverage over its points) and its last point from each prefix."""
    path = {k: np.asarray(run[k], dtype=float) for k in ("tokens", "lr_area_tokens", "lr_frac")}
    curve = curve_forecast(law, float(run["params"][0]), path, run["name"])
    value, lo, hi = (np.asarray(curve[k]) for k in ("value", "lo", "hi"))
    actual = np.asarray(run["loss"], dtype=float)
    out = {"name": run["name"], "curve_errors": (value / actual - 1).tolist(),
           "curve_covered": ((lo <= actual) & (actual <= hi)).tolist()}
    end, final = path["tokens"][-1], actual[-1]
    for fraction in (0.0, *fractions):
        seen = path["tokens"] <= fraction * end
        if fraction > 0 and not seen.any():
            continue
        if fraction == 0:
            g = {"forecast": value[-1], "lo": lo[-1], "hi": hi[-1]}
        else:
            g = watch(curve, Observed(path["tokens"][seen], actual[seen]))["final_given_run"]
        out[f"from_{fraction:g}"] = {"error": g["forecast"] / final - 1, "covered": bool(g["lo"] <= final <= g["hi"]),
                                     "width": (g["hi"] - g["lo"]) / final}
    return out


def leave_one_size_out(runs: list[dict], n_boot: int) -> list[dict]:
    scores = []
    for size in sorted({float(r["params"][0]) for r in runs}):
        rest = [r for r in runs if float(r["params"][0]) != size]
        law = fit_curve(run_table(rest), n_boot)
        scores += [score(law, r) for r in runs if float(r["params"][0]) == size]
    return scores


def summarise(title: str, scores: list[dict]) -> None:
    errors = np.abs(np.concatenate([s["curve_errors"] for s in scores]))
    covered = np.concatenate([s["curve_covered"] for s in scores])
    print(f"\n{title}: {len(scores)} runs left out one size at a time")
    print(f"  whole curves: median |error| {np.median(errors):.2%} over {len(errors)} points, band coverage "
          f"{covered.mean():.2f}")
    for fraction in (0.0, *FRACTIONS):
        key = f"from_{fraction:g}"
        rows = [s[key] for s in scores if key in s]
        if not rows:
            continue
        what = "before the run" if fraction == 0 else f"from the first {fraction:.0%}"
        print(f"  final loss {what:>20}: median |error| {np.median([abs(r['error']) for r in rows]):.2%}, "
              f"coverage {np.mean([r['covered'] for r in rows]):.2f}, median width {np.median([r['width'] for r in rows]):.2%}"
              f" ({len(rows)} runs)")


def tiny_runs(root: Path) -> list[dict]:
    """Each rung's path (its main run's evaluations and its last budget's cooldown end), and every evaluation it
    has (`fitted`: the other budgets' cooldown ends too)."""
    table = collect_runs(root, curves=True)

    def arrays(rows):
        return {"params": np.asarray(rows["non_embedding_params"], dtype=float),
                **{k: np.asarray(rows[k], dtype=float) for k in ("tokens", "loss", "lr_area_tokens", "lr_frac")}}

    runs = []
    for rung in dict.fromkeys(table["rung"]):
        rows = table.take(np.flatnonzero(table["rung"] == rung))
        keep = on_path(rows)
        runs.append({"name": str(rung), **arrays(rows.take(keep[np.argsort(rows["tokens"][keep])])),
                     "fitted": arrays(rows)})
    return runs


def demo(runs_dir: Path, n_boot: int) -> None:
    ladder, held = tiny_runs(runs_dir / "tiny"), tiny_runs(runs_dir / "tiny-heldout")
    started = time.time()
    law = fit_curve(run_table(ladder), n_boot)
    fitted_s = time.time() - started
    summarise(f"demo: the tiny ladder's curve law forecasting {held[0]['name']} (fit {fitted_s:.1f} s)",
              [score(law, r) for r in held])
    summarise("tiny ladder", leave_one_size_out(ladder, n_boot))


def olmo_runs(root: Path, max_points: int = 24) -> list[dict]:
    """The 16 runs' c4 validation curves after their first 10%, thinned to `max_points`, placed on the porian
    recipe's schedule (cosine to 10%, warmup N tokens) rebuilt from each run's batch and length."""
    sizes = json.loads((root / "final_config.json").read_text())
    runs, lr_gap = [], 0.0
    for entry in sizes.values():
        for path in [root / "ladder-runs" / Path(p).name for p in entry["paths"] if "xC" in p]:
            rows = [r for r in csv.DictReader(path.open()) if r.get(OLMO_LOSS)]
            tokens = np.array([float(r["throughput/total_tokens"]) for r in rows])
            loss = np.array([float(r[OLMO_LOSS]) for r in rows])
            batch = int(float(rows[0]["batch_size_in_tokens"]))
            recipe = {"batch_tokens": batch, "warmup_steps": round(entry["n"] / batch),
                      "schedule": {"name": "cosine", "final_lr_frac": 0.1}}
            columns = schedule_columns(recipe, {"run": tokens[-1]}, tokens)
            logged = np.array([float(r["optim/learning_rate_group0"]) / float(r["learning_rate_peak"]) for r in rows])
            lr_gap = max(lr_gap, float(np.max(np.abs(logged - columns["lr_frac"]))))
            keep = np.flatnonzero(tokens >= 0.1 * tokens[-1])
            keep = keep[np.unique(np.linspace(0, len(keep) - 1, max_points).round().astype(int))]
            runs.append({"name": path.stem, "params": np.full(len(keep), float(entry["n"])), "tokens": tokens[keep],
                         "loss": loss[keep], **{k: v[keep] for k, v in columns.items()}})
    print(f"OLMo ladder: {len(runs)} runs; the schedule code's LR against the logged LR: largest gap "
          f"{lr_gap:.4f} of the peak")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, help="a runs_dir where ladder demo ran (tiny/ and tiny-heldout/)")
    parser.add_argument("--olmo", type=Path, default=Path("../shared/refdata/olmo-ladder"))
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    started = time.time()
    if args.runs:
        demo(args.runs, args.bootstrap)
    if args.olmo and args.olmo.exists():
        summarise("OLMo ladder (c4 validation loss)", leave_one_size_out(olmo_runs(args.olmo), args.bootstrap))
    print(f"\n{time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
