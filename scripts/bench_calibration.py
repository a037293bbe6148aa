"""Do the forecast intervals keep their promise? Coverage and sharpness of `ladder fit`'s intervals, measured the way a
user meets them: fit the smaller rungs, forecast the larger ones.

- Published ladders (../shared/refdata): rolling folds at 50/60/70/80/90% of the log-size range, every larger row
  forecast (`backtest=rolling`): Chinchilla's 240 points, Gadre et al.'s three corpora (C4 eval loss), the OLMo
  ladder's 16 runs (C4 validation loss at each run's end). The same folds with `interval.method=bootstrap` (the
  mean law's band, what ladder printed before) for comparison.
- Simulated ladders (ladder/fit/simulate.py: 8 sizes x 5 budgets, or with --design isoflop 8 compute budgets x 5
  sizes around each one's optimum; 0.5% noise, targets 3-10x larger), where the
  truth is known: the law exact, curved in log N, smaller rungs undertuned, heavy-tailed noise, correlated budgets.
- A ladder's own runs directory (--runs runs/tiny, after `ladder demo`): its rolling coverage, and the demo's
  held-out rung.

Sharpness is the median interval width over the median |relative error| (Gaussian errors give about 5.8); the last
table pools every held-out row. The parts table sets each part's predicted sd (coefficients, noise, extrapolation) at
the held-out rows, nearer and farther half by distance, beside the rms of the errors the rows measured: the part that
dominates the width should be where the error is.

    python scripts/bench_calibration.py [--sims 16] [--seed0 0] [--bootstrap 1000] [--runs runs/tiny]
                                        [--only real|sim|runs] [--design sizes isoflop]
                                        [--interval prior_dof=2 prior_weight=0.5 ...] [--token-weight 1]

(--interval and --token-weight measure other settings, e.g. the last release's prior_kappa=0.012 prior_weight=0.5
prior_dof=2, or an e-fold of tokens worth a quarter of one in N where the rule counts it as one.)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ladder.fit import calibrate
from ladder.fit.calibrate import IntervalOptions, interval_score
from ladder.fit.forecast import backtest, load_table
from ladder.fit.laws import make_law
from ladder.fit.reproduce import GADRE_DATASETS, load_chinchilla, load_gadre, load_olmo_ladder
from ladder.fit.simulate import DESIGNS, SCENARIOS, simulate
from ladder.report import format_table

REFDATA = Path(__file__).resolve().parents[2] / "shared" / "refdata"
LAW = {"name": "chinchilla", "bounds": {"alpha": [0, float("inf")], "beta": [0, float("inf")]}}


def real_ladders() -> dict:
    ladders = {"chinchilla": load_chinchilla(REFDATA / "chinchilla" / "svg_extracted_data.csv")}
    for dataset in GADRE_DATASETS:
        ladders[f"gadre {dataset}"] = load_gadre(REFDATA / "gadre" / "runs_flat.csv", dataset)
    ladders["olmo ladder"] = load_olmo_ladder(REFDATA / "olmo-ladder" / "ladder-runs")
    return ladders


POOLED = {"covered": [], "errors": [], "widths": []}
PARTS = []  # per ladder: name, then (distance, log error, {part: sd}) per held-out row


def row(name, coverage, errors, widths, scores, n, seconds, covered=None):
    """A table row; with `covered` (each row's, the calibrated intervals) its rows join the pooled table."""
    errors, widths = np.abs(np.asarray(errors)), np.asarray(widths)
    if covered is not None:
        POOLED["covered"] += list(covered)
        POOLED["errors"] += list(errors)
        POOLED["widths"] += list(widths)
    return [name, str(n), f"{coverage:.2f}", f"{np.median(errors):.2%}", f"{np.median(widths):.2%}",
            f"{np.median(widths) / np.median(errors):.1f}", f"{np.mean(scores):.4g}" if len(scores) else "",
            f"{seconds:.0f}"]


INTERVAL = {}  # --interval overrides of the interval config group


def bench_backtest(name, table, n_boot, law=LAW) -> list[list[str]]:
    """The calibrated intervals' row, then the mean law's band alone (interval.method=bootstrap's interval, which each
    backtest row carries: the same fits and resamples)."""
    t0 = time.perf_counter()
    result = backtest(law, table, "rolling", n_boot, 0, 0.95, {**INTERVAL, "method": "calibrated"})
    rows = result["rows"]
    seconds = time.perf_counter() - t0
    PARTS.append((name, [(r["distance_efolds"], np.log(r["actual"] / r["predicted"]), r["parts_sd"]) for r in rows]))
    errors = [r["rel_error"] for r in rows]
    actual, band_lo, band_hi = (np.array([r[k] for r in rows]) for k in ("actual", "band_lo", "band_hi"))
    band_covered = (band_lo <= actual) & (actual <= band_hi)
    return [row(name, result["coverage"], errors, [(r["hi"] - r["lo"]) / r["predicted"] for r in rows],
                [r["interval_score"] for r in rows], len(rows), seconds, [r["covered"] for r in rows]),
            row("  before (bootstrap band)", float(np.mean(band_covered)), errors,
                (band_hi - band_lo) / np.array([r["predicted"] for r in rows]),
                interval_score(band_lo, band_hi, actual, 0.95), len(rows), 0)]


def bench_simulated(scenario, n_sims, n_boot, design="sizes", seed0=0):
    t0 = time.perf_counter()
    covered, errors, widths, scores, parts = [], [], [], [], []
    for seed in range(seed0, seed0 + n_sims):
        ladder, targets = simulate(scenario, seed, design=design)
        law = make_law(LAW).fit(ladder).bootstrap(ladder, n_boot, seed).calibrate(ladder, IntervalOptions.from_config(INTERVAL), seed)
        p = law.predict(targets)
        actual = targets["loss"]
        covered += list((p.lo <= actual) & (actual <= p.hi))
        errors += list(p.value / actual - 1)
        widths += list((p.hi - p.lo) / p.value)
        scores += list(interval_score(p.lo, p.hi, actual, 0.95))
        parts += [(p.distance[i], np.log(actual[i] / p.value[i]), {k: v[i] for k, v in p.parts.items()})
                  for i in range(len(actual))]
    name = f"sim {scenario}" + ("" if design == "sizes" else f" ({design})")
    PARTS.append((name, parts))
    return row(name, float(np.mean(covered)), errors, widths, scores, len(covered),
               time.perf_counter() - t0, covered)


def parts_table() -> str:
    """Each part's median predicted sd at the nearer and the farther half of the held-out rows (by distance), beside
    the rms log error those rows measured and the rms of the predicted total sd."""
    body = []
    for name, rows in PARTS:
        distances = np.array([d for d, _, _ in rows])
        cut = np.median(distances)
        for half, keep in (("near", distances <= cut), ("far", distances > cut)):
            picked = [r for r, k in zip(rows, keep) if k]
            if not picked:
                continue
            parts = {part: np.array([p[part] for _, _, p in picked]) for part in picked[0][2]}
            total = np.sqrt(sum(v ** 2 for v in parts.values()))
            errors = np.array([e for _, e, _ in picked])
            body.append([name, half, str(len(picked)), f"{np.median([d for d, _, _ in picked]):.2f}",
                         *(f"{np.median(parts[k]):.2%}" for k in ("coefficients", "noise", "extrapolation")),
                         f"{np.sqrt(np.mean(total ** 2)):.2%}", f"{np.sqrt(np.mean(errors ** 2)):.2%}"])
    return format_table(["ladder", "rows", "n", "distance", "coefficients sd", "noise sd", "extrapolation sd",
                         "predicted sd (rms)", "error (rms)"], body)


def bench_runs(runs: Path, n_boot):
    out = []
    table = load_table(runs, {"params": "non_embedding_params", "tokens": "tokens", "loss": "loss", "flops": "flops",
                              "budget": "budget", "run": "rung"})
    out += bench_backtest(f"{runs} (own rolling)", table, n_boot)
    comparison = runs / "report" / "comparison.json"
    if comparison.exists():
        c = json.loads(comparison.read_text())
        out.append([f"demo held-out {c['rung']}", "1", "1.00" if c["covered"] else "0.00",
                    f"{abs(c['rel_error']):.2%}", f"{(c['hi'] - c['lo']) / c['predicted']:.2%}", "", "", ""])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=16, help="simulated ladders per scenario")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--runs", type=Path, help="a ladder's runs directory, e.g. runs/tiny after ladder demo")
    parser.add_argument("--only", choices=["real", "sim", "runs"])
    parser.add_argument("--seed0", type=int, default=0, help="first simulation seed (another range: unseen ladders)")
    parser.add_argument("--design", choices=DESIGNS, nargs="+", default=list(DESIGNS),
                        help="simulated ladders: sizes x token budgets, and/or isoFLOP budgets spread over sizes")
    parser.add_argument("--interval", nargs="*", default=[], metavar="KEY=VALUE",
                        help="the interval config group's settings, e.g. prior_dof=2")
    parser.add_argument("--token-weight", type=float, help="an e-fold of tokens as this many e-folds of N "
                        f"(default {calibrate.LATER_AXES_WEIGHT})")
    args = parser.parse_args()
    INTERVAL.update({key: float(value) for key, value in (item.split("=", 1) for item in args.interval)})
    if args.token_weight is not None:
        calibrate.LATER_AXES_WEIGHT = args.token_weight
    header = ["ladder", "held-out rows", "coverage", "median |err|", "median width", "width/|err|",
              "interval score", "s"]
    if args.only in (None, "real") and REFDATA.exists():
        body = []
        for name, table in real_ladders().items():
            body += bench_backtest(name, table, args.bootstrap)
            print(format_table(header, body[-2:]), flush=True)
        print("\npublished ladders, rolling folds at 50-90% of the log-size range, 95% intervals")
        print(format_table(header, body), flush=True)
    if args.only in (None, "sim"):
        body = [bench_simulated(s, args.sims, min(args.bootstrap, 400), design, args.seed0)
                for design in args.design for s in SCENARIOS]
        print(f"\nsimulated ladders ({args.sims} per scenario from seed {args.seed0}, 9 targets each at 3-10x the "
              f"largest size), 95% intervals")
        print(format_table(header, body), flush=True)
    if POOLED["errors"]:
        print("\nevery held-out row above, pooled (the calibrated intervals)")
        print(format_table(header, [row("pooled", float(np.mean(POOLED["covered"])), POOLED["errors"],
                                        POOLED["widths"], [], len(POOLED["errors"]), 0)]))
        print("\nthe parts of the interval against the errors, nearer and farther half of each ladder's held-out rows "
              "(log units)")
        print(parts_table(), flush=True)
    if args.runs:
        print(f"\n{args.runs}")
        print(format_table(header, bench_runs(args.runs, args.bootstrap)))


if __name__ == "__main__":
    main()
