"""`ladder design`'s two promises, measured.

1. Speed: a search over ~100 candidate ladders x 200 simulations (the OLMo ladder's vocabulary and shape rule, a 7B
   target at 2T tokens, WSD-S and cosine recipes compared), timed end to end.
2. Reality: on the Chinchilla data (../shared), sub-ladders a user could have run (the sizes up to a cutoff, every
   other size, only the shorter budgets) are asked for their expected median |error| at the held-out largest models
   (N >= 5e9), and then fitted as `ladder fit` fits them; the two are compared per sub-ladder and pooled.

    python scripts/bench_design.py [--sims 200] [--only speed|reality]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ladder.config import compose_config
from ladder.design.prior import epoch_prior
from ladder.design.search import DesignOptions, candidate_ladders, score_candidates
from ladder.design.simulate import LadderRows, simulate
from ladder.fit.laws import make_law
from ladder.fit.reproduce import load_chinchilla
from ladder.report import format_table

CHINCHILLA = Path(__file__).resolve().parents[2] / "shared" / "refdata" / "chinchilla" / "svg_extracted_data.csv"
HELD_OUT_PARAMS = 5e9


def speed(sims: int) -> None:
    started = time.time()
    overrides = ["ladder=olmo", "target.params=7e9", "target.tokens=2e12"]
    cfgs = {recipe: compose_config([*overrides, f"recipe={recipe}"]) for recipe in ("wsds", "porian")}
    options = DesignOptions.from_config({"sims": sims})
    candidates = candidate_ladders(cfgs, options)
    planned = time.time()
    score_candidates(candidates, epoch_prior(), options, 0.95)
    done = time.time()
    print(f"speed: {len(candidates)} candidates x {sims} simulations = {len(candidates) * sims} fits: "
          f"{planned - started:.1f} s to plan the candidates, {done - planned:.1f} s to simulate and fit, "
          f"{done - started:.1f} s in all")


def sub_ladders(table) -> list[tuple[str, np.ndarray]]:
    params, ratio = table["params"], table["tokens"] / table["params"]
    out = []
    for cut in (3e8, 6e8, 1e9, 1.6e9, 2.5e9):
        rows = np.flatnonzero(params <= cut)
        sizes = np.unique(params[rows])
        out.append((f"N <= {cut:.2g}", rows))
        out.append((f"N <= {cut:.2g}, every other size", np.flatnonzero(np.isin(params, sizes[::2]))))
        out.append((f"N <= {cut:.2g}, D/N <= its median", rows[ratio[rows] <= np.median(ratio[rows])]))
    return out


def reality(sims: int) -> None:
    if not CHINCHILLA.exists():
        print(f"reality: skipped, {CHINCHILLA} is absent")
        return
    table = load_chinchilla(CHINCHILLA)
    held = table.take(np.flatnonzero(table["params"] >= HELD_OUT_PARAMS))
    subs = sub_ladders(table)
    outcomes = simulate([LadderRows.of(table["params"][r], table["tokens"][r]) for _, r in subs], held["params"],
                        held["tokens"], epoch_prior(), sims)
    body, predicted, realised = [], [], []
    for (name, rows), outcome in zip(subs, outcomes):
        sub = table.take(rows)
        forecast = make_law({"name": "chinchilla"}).fit(sub).predict(held).value
        real = float(np.median(np.abs(forecast / held["loss"] - 1)))
        expected = float(np.median(outcome.abs_error()))
        predicted.append(expected)
        realised.append(real)
        body.append([name, str(len(rows)), f"{expected:.2%}", f"{real:.2%}", f"{expected / real:.2f}",
                     "yes" if 0.5 <= expected / real <= 2 else "no"])
    ratio = np.array(predicted) / np.array(realised)
    print(f"\nreality: {len(subs)} Chinchilla sub-ladders forecasting the {len(held)} runs at N >= "
          f"{HELD_OUT_PARAMS:.0e} (prior: Epoch's refit; {sims} simulations each)")
    print(format_table(["sub-ladder", "rows", "expected median |err|", "realised", "ratio", "within 2x"], body))
    print(f"within a factor of 2: {int(np.sum((ratio >= 0.5) & (ratio <= 2)))} of {len(subs)}; pooled median "
          f"expected {np.median(predicted):.2%} vs realised {np.median(realised):.2%} (ratio "
          f"{np.median(predicted) / np.median(realised):.2f}); rank correlation "
          f"{np.corrcoef(np.argsort(np.argsort(predicted)), np.argsort(np.argsort(realised)))[0, 1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--only", choices=("speed", "reality"))
    args = parser.parse_args()
    if args.only in (None, "speed"):
        speed(args.sims)
    if args.only in (None, "reality"):
        reality(args.sims)


if __name__ == "__main__":
    main()
