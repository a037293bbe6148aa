"""How well the curve law (law=curve) forecasts whole loss curves, where the truth is known. Figures only.

1. The demo: the curve law fitted to the tiny ladder's runs forecasts the held-out rung's whole validation curve
   before it trains; printed: the median |error| over the curve's evaluated points and the band's coverage.
2. A run's final loss from its first 10/25/50%: each size of a ladder left out in turn, the law fitted to the other
   sizes forecasts the left-out runs' curves, and `ladder watch`'s conditioning turns the prefix into a forecast of
   the last evaluation. On the demo's tiny ladder (each rung's main run and its last budget's cooldown) and on the
   OLMo ladder's 16 runs in ../shared/refdata (cosine to 10%, warmup N tokens, the recipe=porian schedule; the
   logged LR is compared with the one the schedule code gives).

3. Cheaper ladders: rolling folds by size (the law fitted to the smaller sizes forecasts every run of the larger
   ones), the final-points fit (law=chinchilla on each run's last evaluation) on every budget, against fits on a
   subset of the budgets, the curve law on their every evaluation beside the final-points fit on their ends;
   printed: each one's compute as a fraction of the whole ladder's, and its forecasts' median |error| and coverage.

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

from ladder.errors import LadderError
from ladder.fit.calibrate import IntervalOptions
from ladder.fit.collect import collect_runs
from ladder.fit.curves import SCHEDULE_COLUMNS, curve_forecast, on_path, run_path, schedule_columns
from ladder.fit.laws import make_law
from ladder.fit.table import Table
from ladder.fit.watch import Observed, watch

COSINE_RUNS_HELP = ("a runs_dir holding the tiny ladder trained under cosine to 2xC and its held-out rung, with the "
                    "demo's evaluations: `ladder sweep 'recipe.schedule={name: cosine, final_lr_frac: 0.1}' "
                    "'ladder.budgets=[2xC]' train.eval_points=4 train.eval_tokens=131072 runs_dir=DIR`, then `ladder "
                    "train rung=tiny-665k-1xC ladder.name=tiny-heldout '~ladder.sizes' '+ladder.sizes={tiny-665k: "
                    "{preset: tiny-665k}}' 'ladder.budgets=[1xC]'` with the same overrides (the demo itself refuses "
                    "one budget per size: too few final points for its fit)")
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


def final_points(runs: list[dict]) -> Table:
    """Each run's last evaluation: the table a final-points fit (law=chinchilla) reads."""
    keys = ("params", "tokens", "loss")
    return Table({**{k: np.array([float(r[k][-1]) for r in runs]) for k in keys},
                  "flops": np.array([6 * float(r["params"][-1]) * float(r["tokens"][-1]) for r in runs]),
                  "run": np.array([r["name"] for r in runs])})


def fit_final_points(table: Table, n_boot: int):
    law = make_law({"name": "chinchilla"})
    return law.fit(table).bootstrap(table, n_boot, 0).calibrate(table, IntervalOptions(), 0)


def cheaper(runs: list[dict], budget_of, subsets: dict[str, tuple], n_boot: int, min_sizes: int = 2) -> None:
    """Rolling folds by size: for each subset of budgets, the curve law on those runs' every evaluation and the
    final-points fit on their ends, each forecasting the final loss of every run of the larger sizes."""
    sizes = sorted({float(r["params"][0]) for r in runs})
    flops = {r["name"]: 6 * float(r["params"][-1]) * float(r["tokens"][-1]) for r in runs}
    print(f"\ncheaper ladders: rolling folds by size ({len(sizes) - min_sizes} folds, the first on {min_sizes} sizes); "
          f"every run of the larger sizes forecast to its last evaluation")
    print(f"  {'budgets fitted':>22} {'law':>12} {'compute':>8} {'median |error|':>15} {'coverage':>9} {'rows':>5}")
    for label, budgets in subsets.items():
        for law_name in ("chinchilla", "curve"):
            errors, covered, spent, whole = [], [], 0.0, 0.0
            for k in range(min_sizes, len(sizes)):
                train = [r for r in runs if float(r["params"][0]) < sizes[k]]
                used = [r for r in train if budget_of(r) in budgets]
                try:
                    law = (fit_curve(run_table(used), n_boot) if law_name == "curve" else
                           fit_final_points(final_points(used), n_boot))
                except LadderError as error:  # too few points for the law's coefficients
                    print(f"  {label:>22} {law_name:>12}: fold {k - min_sizes + 1} not fitted: {error}")
                    errors = []
                    break
                spent, whole = spent + sum(flops[r["name"]] for r in used), whole + sum(flops[r["name"]] for r in train)
                for r in (r for r in runs if float(r["params"][0]) >= sizes[k]):
                    if law_name == "curve":
                        path = {c: np.asarray(r[c], dtype=float) for c in ("tokens", "lr_area_tokens", "lr_frac")}
                        curve = curve_forecast(law, float(r["params"][0]), path, r["name"])
                        value, lo, hi = curve["value"][-1], curve["lo"][-1], curve["hi"][-1]
                    else:
                        p = law.predict(final_points([r]))
                        value, lo, hi = float(p.value[0]), float(p.lo[0]), float(p.hi[0])
                    actual = float(r["loss"][-1])
                    errors.append(abs(value / actual - 1))
                    covered.append(lo <= actual <= hi)
            if not errors:
                continue
            print(f"  {label:>22} {law_name:>12} {spent / whole:>7.2f}x {np.median(errors):>14.2%} "
                  f"{np.mean(covered):>9.2f} {len(errors):>5}")


WSDS = {"name": "wsds", "cooldown_frac": 0.2, "cooldown_shape": "linear", "final_lr_frac": 0.0}
COSINE = {"name": "cosine", "final_lr_frac": 0.1}
SIM_SIZES = tuple(np.geomspace(2e7, 3.2e8, 5))
SIM_TARGET = 3.2e9  # 10x the largest size, 20 tokens per parameter


def run_tokens(recipe: dict, budgets: dict[str, float]) -> float:
    """Tokens a run trains, as the loop steps it: a WSD-S run's main run to its last fork and every cooldown
    branch; a run that decays to its one budget, that budget."""
    from ladder.schedule import run_steps
    steps = run_steps({k: int(t) for k, t in budgets.items()}, int(recipe["batch_tokens"]), recipe["schedule"],
                      recipe["schedule"]["name"] == "wsds")
    return float(recipe["batch_tokens"]) * (steps.main_end + steps.branch_work)


def simulated_ladder(schedule: dict, multiples, seed: int) -> tuple[Table, float]:
    """(every evaluation of one run per size, the ladder's training FLOPs)."""
    from ladder.fit.simulate import curve_recipe, simulate_curve_run
    rng = np.random.default_rng(seed)
    runs, flops = [], 0.0
    for n in SIM_SIZES:
        recipe = curve_recipe(n, schedule)
        budgets = {f"{m:g}x": m * 20 * n for m in multiples}
        runs.append(simulate_curve_run(n, recipe, budgets, rng))
        flops += 6 * n * run_tokens(recipe, budgets)
    return Table.concat(runs), flops


def simulated_target(schedule: dict, seed: int) -> dict:
    """The target's run under `schedule` at 48 points: its schedule columns and what one run measures there."""
    from ladder.fit.simulate import curve_recipe, curve_truth
    from ladder.schedule import fork_step
    recipe = curve_recipe(SIM_TARGET, schedule)
    budgets = {"target": 20 * SIM_TARGET}
    path = run_path(recipe, budgets)
    wsds = schedule["name"] == "wsds"
    fork_tokens = fork_step(int(budgets["target"]) // recipe["batch_tokens"], schedule) * recipe["batch_tokens"] if wsds else 0
    branches = ["target" if wsds and t > fork_tokens else None for t in path["tokens"]]
    rng = np.random.default_rng(10_000 + seed)
    truth = curve_truth(SIM_TARGET, recipe, budgets, path["tokens"], branches)
    return {**path, "loss": truth * np.exp(0.005 * rng.standard_normal() + 0.002 * rng.standard_normal(len(truth)))}


def simulations(n_seeds: int, n_boot: int) -> None:
    """Simulated ladders (5 sizes, 2e7-3.2e8; the truth's annealing gain lags the LR, unlike the curve law's form):
    the final-points fit on a full WSD-S ladder (4 budgets per size) against the curve law on cheaper ladders, each
    forecasting a 10x larger run under WSD-S and under cosine: its final loss and its whole curve."""
    ladders = {"WSD-S, 0.5-4x (full)": (WSDS, (0.5, 1, 2, 4)), "WSD-S, 0.5-2x": (WSDS, (0.5, 1, 2)),
               "cosine, one run to 2x": (COSINE, (2,))}
    fits = [("WSD-S, 0.5-4x (full)", "chinchilla"), ("WSD-S, 0.5-2x", "chinchilla"), ("WSD-S, 0.5-4x (full)", "curve"),
            ("WSD-S, 0.5-2x", "curve"), ("cosine, one run to 2x", "curve")]
    rows = {(ladder, law, target): [] for ladder, law in fits for target in ("WSD-S", "cosine")}
    full_flops = None
    flops_of = {}
    for seed in range(n_seeds):
        tables = {}
        for name, (schedule, multiples) in ladders.items():
            tables[name], flops_of[name] = simulated_ladder(schedule, multiples, seed)
        full_flops = flops_of["WSD-S, 0.5-4x (full)"]
        targets = {"WSD-S": simulated_target(WSDS, seed), "cosine": simulated_target(COSINE, seed)}
        for ladder, law_name in fits:
            table = tables[ladder]
            if law_name == "curve":
                law = fit_curve(table, n_boot)
            else:
                law = fit_final_points(table.take(np.flatnonzero(table["final"] == 1)), n_boot)
            for target_name, target in targets.items():
                actual = target["loss"]
                if law_name == "curve":
                    curve = curve_forecast(law, SIM_TARGET, target, target_name)
                    value, lo, hi = (np.asarray(curve[k]) for k in ("value", "lo", "hi"))
                else:  # the final point alone
                    p = law.predict(Table({"params": [SIM_TARGET], "tokens": [target["tokens"][-1]],
                                           "flops": [6 * SIM_TARGET * target["tokens"][-1]]}))
                    value, lo, hi = (np.full(len(actual), np.nan) for _ in range(3))
                    value[-1], lo[-1], hi[-1] = p.value[0], p.lo[0], p.hi[0]
                late = target["tokens"] >= 0.1 * target["tokens"][-1]
                rows[(ladder, law_name, target_name)].append(
                    {"final_error": value[-1] / actual[-1] - 1, "final_covered": lo[-1] <= actual[-1] <= hi[-1],
                     "curve_errors": np.abs(value[late] / actual[late] - 1),
                     "curve_covered": (lo[late] <= actual[late]) & (actual[late] <= hi[late]),
                     "curve_widths": (hi[late] - lo[late]) / value[late]})
    print(f"\nsimulated ladders ({n_seeds} seeds; 5 sizes 2e7-3.2e8, one run per size; the target 3.2e9 at 20 "
          f"tokens per parameter; the truth's annealing gain lags the LR drop)")
    print(f"  {'ladder':>22} {'law':>10} {'compute':>8} {'target':>7} {'final: median |error|':>22} {'coverage':>9}"
          f" {'whole curve: median |error|':>28} {'coverage':>9} {'median width':>13}")
    for (ladder, law_name, target_name), scores in rows.items():
        curve = (f"{np.median(np.concatenate([s['curve_errors'] for s in scores])):>27.2%} "
                 f"{np.mean(np.concatenate([s['curve_covered'] for s in scores])):>9.2f} "
                 f"{np.median(np.concatenate([s['curve_widths'] for s in scores])):>13.1%}" if law_name == "curve"
                 else f"{'(final points only)':>27} {'':>9}")
        print(f"  {ladder:>22} {law_name:>10} {flops_of[ladder] / full_flops:>7.2f}x {target_name:>7} "
              f"{np.median([abs(s['final_error']) for s in scores]):>22.2%} "
              f"{np.mean([s['final_covered'] for s in scores]):>9.2f} {curve}")


def ladder_table(root: Path, budgets=None) -> tuple[Table, float]:
    """(every evaluation of a trained ladder's rungs, the FLOPs they took); `budgets`: only the runs as far as those
    budgets (a WSD-S rung cut after them: its main run to their last fork and their cooldowns)."""
    from ladder.fit.curves import run_schedule
    from ladder.schedule import run_steps
    table = collect_runs(root, curves=True)
    keep, flops = [], 0.0
    for rung in dict.fromkeys(table["rung"]):
        rows = np.flatnonzero(table["rung"] == rung)
        recipe, all_budgets = run_schedule(root / str(rung))
        used = {k: v for k, v in all_budgets.items() if budgets is None or k in budgets}
        if not used:
            continue
        main_end = run_steps({k: int(t) for k, t in used.items()}, int(recipe["batch_tokens"]), recipe["schedule"],
                             recipe["schedule"]["name"] == "wsds").main_end * int(recipe["batch_tokens"])
        keep += [i for i in rows if (table["final"][i] == 0 and table["tokens"][i] <= main_end)
                 or table["budget"][i] in used]
        flops += 6 * float(table["non_embedding_params"][rows[0]]) * run_tokens(recipe, used)
    rows = table.take(np.array(keep))
    return Table({"params": rows["non_embedding_params"], **{k: rows[k] for k in ("tokens", "loss", "flops", "final",
                                                                                  *SCHEDULE_COLUMNS)},
                  "run": rows["rung"]}), flops


def tiny_transfer(wsds: Path, cosine: Path | None, n_boot: int) -> None:
    """The demo's trained tiny ladder (WSD-S, 0.5/1/2xC per rung) and, where given, a cosine ladder of the same
    sizes (one run to 2xC each): each forecasting the held-out rung trained under either schedule."""
    ladders = {"WSD-S 0.5-2xC (the demo)": ladder_table(wsds / "tiny"),
               "WSD-S cut after 1xC": ladder_table(wsds / "tiny", ("0.5xC", "1xC"))}
    held = {"WSD-S": tiny_runs(wsds / "tiny-heldout")[0]}
    if cosine is not None:
        ladders["cosine, one run to 2xC"] = ladder_table(cosine / "tiny")
        held["cosine"] = tiny_runs(cosine / "tiny-heldout")[0]
    full = ladders["WSD-S 0.5-2xC (the demo)"][1]
    scale = float(held["WSD-S"]["params"][0]) / float(np.max(ladders["WSD-S 0.5-2xC (the demo)"][0]["params"]))
    print(f"\ntiny ladders forecasting the held-out {held['WSD-S']['name']} ({scale:.1f}x the largest rung's N)")
    print(f"  {'ladder':>26} {'law':>10} {'compute':>8} {'held out':>9} {'final error':>12} {'covered':>8}"
          f" {'whole curve: median |error|':>28} {'coverage':>9} {'median width':>13}")
    for name, (table, flops) in ladders.items():
        for law_name in ("chinchilla", "curve"):
            try:
                law = (fit_curve(table, n_boot) if law_name == "curve" else
                       fit_final_points(table.take(np.flatnonzero(table["final"] == 1)), n_boot))
            except LadderError as error:  # one budget per size: fewer final points than coefficients
                print(f"  {name:>26} {law_name:>10} {flops / full:>7.2f}x: not fitted: {error}")
                continue
            for schedule, run in held.items():
                actual = float(run["loss"][-1])
                if law_name == "curve":
                    s = score(law, run, fractions=())
                    error, covered = s["from_0"]["error"], s["from_0"]["covered"]
                    curve = (f"{np.median(np.abs(s['curve_errors'])):>27.2%} {np.mean(s['curve_covered']):>9.2f}")
                else:
                    p = law.predict(final_points([run]))
                    error, covered = float(p.value[0]) / actual - 1, bool(p.lo[0] <= actual <= p.hi[0])
                    curve = f"{'(final points only)':>27} {'':>9}"
                print(f"  {name:>26} {law_name:>10} {flops / full:>7.2f}x {schedule:>9} {error:>+12.2%} "
                      f"{'yes' if covered else 'no':>8} {curve}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, help="a runs_dir where ladder demo ran (tiny/ and tiny-heldout/)")
    parser.add_argument("--cosine-runs", type=Path, help=COSINE_RUNS_HELP + ": the schedule transfer")
    parser.add_argument("--olmo", type=Path, default=Path("../shared/refdata/olmo-ladder"))
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--parts", default="curves,cheaper,simulated,transfer",
                        help="curves (1 and 2 above), cheaper (3, on the OLMo ladder), simulated (3 and the schedule "
                             "transfer on simulated ladders), transfer (both on the tiny ladder: --runs, "
                             "--cosine-runs); comma-separated")
    parser.add_argument("--seeds", type=int, default=12, help="simulated ladders per design")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    started = time.time()
    if args.runs and "curves" in parts:
        demo(args.runs, args.bootstrap)
    if args.runs and "transfer" in parts:
        tiny_transfer(args.runs, args.cosine_runs, args.bootstrap)
    if args.olmo and args.olmo.exists():
        olmo = olmo_runs(args.olmo)
        if "curves" in parts:
            summarise("OLMo ladder (c4 validation loss)", leave_one_size_out(olmo, args.bootstrap))
        if "cheaper" in parts:
            cheaper(olmo, lambda r: r["name"].split("-")[-1], {
                "1, 2, 5, 10xC (all)": ("1xC", "2xC", "5xC", "10xC"), "1, 2, 5xC": ("1xC", "2xC", "5xC"),
                "2, 5xC": ("2xC", "5xC"), "5xC": ("5xC",), "1, 2xC": ("1xC", "2xC")}, args.bootstrap)
    if "simulated" in parts:
        simulations(args.seeds, args.bootstrap)
    print(f"\n{time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
