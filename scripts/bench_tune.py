"""`ladder tune` on the tiny ladder, timed from nothing: its default grid (3 smallest sizes x 5 LR multipliers, the
ladder's budgets from each WSD-S run), launched in parallel local processes as a user would on a laptop.

    python scripts/bench_tune.py [--out DIR] [extra overrides ...]

Prints the wall time, the runs, the fitted rule and how far the committed tiny recipe sits from it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ladder.tune.report import format_tune

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="tune directory (default: a fresh temporary one)")
    parser.add_argument("overrides", nargs="*", help="extra ladder tune overrides")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_tune_"))
    command = [sys.executable, "-m", "ladder.cli", "tune", "ladder=tiny", "hydra/launcher=local",
               "logger.wandb=disabled", f"out={out}", *args.overrides]
    started = time.time()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "WANDB_MODE":
                                                                                   "offline"})
    wall = time.time() - started
    if done.returncode != 0:
        sys.exit(f"ladder tune failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads((out / "tune.json").read_text())
    print(format_tune(result))
    cost = result["cost"]
    print(f"\nladder tune ladder=tiny: {wall:.0f} s wall on {os.cpu_count()} CPUs, {cost['runs']} runs, "
          f"{cost['train_wall_s']:.0f} s of training summed over runs, {cost['flops']:.3g} FLOPs "
          f"({cost['gpu_hours']:.3g} GPU-h estimated)")
    worst = max(result["current"], key=lambda c: c["loss_cost"] if c["loss_cost"] is not None else -1)
    print(f"the tiny recipe's largest LR cost: {worst['rung']} at {worst['ratio']:.2f}x the optimum, "
          f"{worst['loss_cost']:+.2%} of its loss")


if __name__ == "__main__":
    main()
