"""What evals add to a rung: train it with `eval=[]` and with the chosen evals, from scratch, and print wall times,
the evals' own time (the `eval_s` of every record) and the overhead. Prints figures, asserts nothing.

    python scripts/bench_evals.py tiny-14k tiny-201k                      # the default eval (next_line, 200 items)
    python scripts/bench_evals.py tiny-14k --demo                         # the demo's evaluation settings
    python scripts/bench_evals.py tiny-14k --set train.eval_max_items=100
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ladder.report import format_table
from ladder.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]


def train(rung: str, runs: Path, extra: list[str]) -> tuple[float, float, dict]:
    started = time.time()
    subprocess.run([sys.executable, "-m", "ladder.cli", "train", f"rung={rung}", f"runs_dir={runs}",
                    "logger.wandb=disabled", *extra], check=True, cwd=ROOT, capture_output=True)
    wall = time.time() - started
    run = RunDir.of(runs, "tiny", rung)
    return wall, sum(r.get("eval_s", 0.0) for r in run.metrics()), run.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rungs", nargs="+")
    parser.add_argument("--demo", action="store_true", help="the demo's eval_points (4) and eval_tokens (131072)")
    parser.add_argument("--set", nargs="*", default=[], help="more overrides for both runs")
    args = parser.parse_args()
    extra = list(args.set) + (["train.eval_points=4", "train.eval_tokens=131072"] if args.demo else [])
    os.environ.setdefault("LADDER_CACHE", str(Path(tempfile.gettempdir()) / "ladder-bench-cache"))
    print(f"overrides: {' '.join(extra) or '(defaults)'}")
    # eval_s / (wall without evals) is the figure to read: wall-time differences on a shared machine are noisy
    rows = []
    for rung in args.rungs:
        with tempfile.TemporaryDirectory() as bare, tempfile.TemporaryDirectory() as full:
            base, _, bare_summary = train(rung, Path(bare), ["eval=[]", *extra])
            wall, eval_s, summary = train(rung, Path(full), extra)
        last = list(summary["budgets"].values())[-1].get("eval", {})
        shown = ", ".join(f"{k} {v:.3f}" for k, v in last.items() if k.endswith(("/acc_norm", "/bpb")))
        rows.append([rung, f"{base:.1f}", f"{wall:.1f}", f"{eval_s:.1f}", f"{eval_s / base:.1%}",
                     f"{(wall - base) / base:.1%}", f"{bare_summary['tokens_per_s']:,.0f}",
                     f"{summary['tokens_per_s']:,.0f}", shown])
        print(f"{rung}: done", flush=True)
    print(format_table(["rung", "no evals s", "evals s", "eval_s", "eval share", "wall diff", "tok/s bare",
                        "tok/s evals", "final-budget task metrics"], rows))


if __name__ == "__main__":
    main()
