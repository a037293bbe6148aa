"""Benchmark the chinchilla fit against a plain scipy L-BFGS-B loop over the grid's starts one by one (run on a
slice of the grid, extrapolated), and print every figure also as a ratio to that loop: absolute seconds move
between machines, ratios much less.

1. Epoch's 240 Chinchilla points: the 4500-start grid, + 4000 bootstrap refits, + the predictive interval's rolling
   folds (issue 29's goal: <= 15 s on 2 cores);
2. a simulated 20-size ladder of 80 rows: what `ladder fit` does (grid, 400 resamples, rolling folds, leave-one-size-
   out checks), in this process and as the `ladder fit` command (imports included; goal: <= 20 s);
3. the `ladder fit` command on the Chinchilla points with 4000 resamples.

    python scripts/bench_fit.py [--csv ../shared/refdata/chinchilla/svg_extracted_data.csv] [--slice 200]
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from ladder.fit.calibrate import IntervalOptions
from ladder.fit.forecast import run_fit
from ladder.fit.laws import make_law
from ladder.fit.simulate import simulate
from ladder.fit.table import Table
from ladder.fit.powerlaw import huber
from ladder.fit.reproduce import EPOCH_GRID_OBJECTIVE, chinchilla_csv, load_chinchilla

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "refdata" / "chinchilla" / "svg_extracted_data.csv"


def scipy_loop(table, starts):
    """What Epoch's notebook does: scipy's L-BFGS-B from each start in turn (numerical gradient, as there)."""
    log_n, log_d, log_l = np.log(table["params"]), np.log(table["tokens"]), np.log(table["loss"])

    def objective(x):
        a, b, e, alpha, beta = x
        predicted = np.logaddexp(np.logaddexp(a - alpha * log_n, b - beta * log_d), e)
        return huber(predicted - log_l, 1e-3).sum()

    best = np.inf
    for a, b, alpha, beta, e in starts:
        result = minimize(objective, [a, b, e, alpha, beta], method="L-BFGS-B")
        best = min(best, result.fun)
    return best


def timed(work) -> float:
    t0 = time.perf_counter()
    work()
    return time.perf_counter() - t0


def command_seconds(*args: str) -> float:
    """Wall time of `ladder fit ARGS` in a fresh interpreter, as a user runs it."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ladder.cli", "fit", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"bench_fit: `ladder fit {' '.join(args)}` failed:\n{done.stderr[-2000:]}")
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=str(DEFAULT_CSV) if DEFAULT_CSV.exists() else None)
    parser.add_argument("--slice", type=int, default=200, help="grid starts the scipy loop runs")
    parser.add_argument("--bootstrap", type=int, default=4000)
    args = parser.parse_args()
    csv = chinchilla_csv(args.csv)
    table = load_chinchilla(csv)

    t0 = time.perf_counter()
    law = make_law({"name": "chinchilla"}).fit(table)
    t_grid = time.perf_counter() - t0
    law.bootstrap(table, args.bootstrap, seed=0)
    t_boot = time.perf_counter() - t0
    law.calibrate(table, IntervalOptions(), seed=0)
    forecast = law.predict(Table({"params": [7e10], "tokens": [1.4e12]}))
    t_total = time.perf_counter() - t0

    grid = law.grid
    starts = np.array(list(itertools.product(grid["a"], grid["b"], grid["alpha"], grid["beta"], grid["e"])))
    pick = np.random.default_rng(0).choice(len(starts), args.slice, replace=False)
    t0 = time.perf_counter()
    loop_best = scipy_loop(table, starts[pick])
    t_loop = time.perf_counter() - t0
    t_loop_all = t_loop * len(starts) / args.slice

    ladder_rows, _ = simulate("exact", 0, sizes=tuple(np.geomspace(2e7, 1e9, 20)), multiples=(0.5, 1, 2, 4))
    targets = Table({"name": ["10B"], "params": [1e10], "tokens": [2e11], "flops": [1.2e22]})
    with tempfile.TemporaryDirectory() as tmp:
        t_ladder = timed(lambda: run_fit(ladder_rows, {"name": "chinchilla"}, targets, 400, 0, 0.95, plots=False,
                                         checks={"flag_error": 0.05, "excluded": []}))
        ladder_rows.write_csv(Path(tmp) / "ladder20.csv")
        table.write_csv(Path(tmp) / "chinchilla.csv")
        common = ("law=chinchilla", "target.params=1e10", "target.tokens=2e11", "plots=false", f"out={tmp}/fit")
        t_command20 = command_seconds(f"runs={tmp}/ladder20.csv", "bootstrap.n=400", *common)
        t_command240 = command_seconds(f"runs={tmp}/chinchilla.csv", f"bootstrap.n={args.bootstrap}",
                                       *common)

    def row(what, seconds, note=""):
        print(f"{what:<44}{seconds:7.2f} s  {seconds / t_loop_all:6.3f}x the scipy loop{note}")

    print(f"data: {len(table)} points; grid: {len(starts)} starts; bootstrap: {args.bootstrap} resamples")
    print(f"scipy    {args.slice} starts loop {t_loop:27.2f} s   objective {loop_best:.8f} (best of the slice)")
    row(f"scipy    all {len(starts)} starts (extrapolated)", t_loop_all, " (the unit of every ratio)")
    row("ladder   grid fit", t_grid, f"   objective {law.objective_['value']:.8f}")
    row(f"ladder   grid + {args.bootstrap} resamples", t_boot)
    row("ladder   + intervals (goal <= 15 s)", t_total,
        f"   ({len([f for f in law.error_.folds if f['used']])} rolling folds; 70B at 1.4T tokens: "
        f"{forecast.value[0]:.4f} [{forecast.lo[0]:.4f}, {forecast.hi[0]:.4f}])")
    row(f"ladder fit command, {len(table)} points", t_command240)
    row(f"20 sizes, {len(ladder_rows)} rows: run_fit in process", t_ladder, " (grid, 400 resamples, folds, checks)")
    row(f"20 sizes, {len(ladder_rows)} rows: ladder fit (goal <= 20 s)", t_command20, " (imports included)")
    print(f"speed-up on the grid: {t_loop_all / t_grid:.0f}x; Epoch's grid best objective {EPOCH_GRID_OBJECTIVE}")
    print("params: " + ", ".join(f"{k}={v:.5g}" for k, v in law.coefficients_.items()))
    print("95% CI: " + ", ".join(f"{k}=[{lo:.4g}, {hi:.4g}]" for k, (lo, hi) in law.ci().items()))


if __name__ == "__main__":
    main()
