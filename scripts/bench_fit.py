"""Benchmark the chinchilla fit on Epoch's 240 Chinchilla points: the full procedure (4500-start grid + 4000
bootstrap refits + the predictive interval's rolling folds) against a plain scipy L-BFGS-B loop over the starts one by
one, run on a slice of the grid.

    python scripts/bench_fit.py [--csv ../shared/refdata/chinchilla/svg_extracted_data.csv] [--slice 200]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from ladder.fit.calibrate import IntervalOptions
from ladder.fit.laws import make_law
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=str(DEFAULT_CSV) if DEFAULT_CSV.exists() else None)
    parser.add_argument("--slice", type=int, default=200, help="grid starts the scipy loop runs")
    parser.add_argument("--bootstrap", type=int, default=4000)
    args = parser.parse_args()
    table = load_chinchilla(chinchilla_csv(args.csv))

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

    print(f"data: {len(table)} points; grid: {len(starts)} starts; bootstrap: {args.bootstrap} resamples")
    print(f"ladder   grid fit          {t_grid:7.2f} s   objective {law.objective_['value']:.8f}")
    print(f"ladder   grid + bootstrap  {t_boot:7.2f} s")
    print(f"ladder   + intervals       {t_total:7.2f} s   ({len([f for f in law.error_.folds if f['used']])} rolling "
          f"folds; 70B at 1.4T tokens: {forecast.value[0]:.4f} [{forecast.lo[0]:.4f}, {forecast.hi[0]:.4f}])")
    print(f"scipy    {args.slice} starts loop   {t_loop:7.2f} s   objective {loop_best:.8f} (best of the slice)")
    print(f"scipy    all {len(starts)} starts    {t_loop * len(starts) / args.slice:7.1f} s   (extrapolated)")
    print(f"speed-up on the grid: {t_loop * len(starts) / args.slice / t_grid:.0f}x; Epoch's grid best "
          f"objective {EPOCH_GRID_OBJECTIVE}")
    print("params: " + ", ".join(f"{k}={v:.5g}" for k, v in law.coefficients_.items()))
    print("95% CI: " + ", ".join(f"{k}=[{lo:.4g}, {hi:.4g}]" for k, (lo, hi) in law.ci().items()))


if __name__ == "__main__":
    main()
