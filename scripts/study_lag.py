"""Would a lag in the curve law's noise term pay? A study on simulated ladders, figures only (docs/limits.md).

The simulated truth (ladder.fit.simulate.curve_truth) feels each drop of the LR gradually, with momentum 0.99 per
step (Tissue et al. 2024's annealing area): its noise term sees lr + sum(drop x momentum^age). The curve law sees the
LR itself. Here the law is refitted with the lagged LR in its place, at fixed half-lives (in steps) and with the
half-life profiled (the lowest total squared error, or the lowest within runs, where the runs' own offsets, which
no lag explains, drop out), on bench_curves' simulated ladders (5 sizes 2e7-3.2e8: WSD-S 0.5-4x, or one cosine run to
2x), each forecasting a 10x larger run under WSD-S and under cosine. Printed: the final loss's and the whole curve's
median |error| over the seeds, and the half-lives the profiles chose.
With --runs and --cosine-runs (bench_curves' tiny ladders: the demo's WSD-S one and a cosine one), the same fits on
the trained ladders, each forecasting the held-out rung trained under either schedule.

    python scripts/study_lag.py --seeds 10
    python scripts/study_lag.py --seeds 0 --runs runs --cosine-runs runs-cosine
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
from bench_curves import COSINE, COSINE_RUNS_HELP, SIM_SIZES, SIM_TARGET, WSDS, simulated_target

from ladder.fit.collect import collect_runs
from ladder.fit.curves import SCHEDULE_COLUMNS, on_path, run_schedule
from ladder.fit.laws.base import run_groups
from ladder.fit.laws.curve import LR_FLOOR, Curve
from ladder.fit.simulate import curve_recipe, simulate_curve_run
from ladder.fit.table import Table
from ladder.schedule import fork_step, step_factors

HALF_LIVES_STEPS = (0, 30, 100, 300)  # the truth's momentum 0.99 is a half-life of 69 steps


def lagged_lr(recipe: dict, budget_tokens: dict, tokens, branches, half_life_steps: float) -> np.ndarray:
    """The LR the noise term sees when each drop is felt with a lag: lr + sum(drop x momentum^age)."""
    momentum = 0.0 if half_life_steps == 0 else 0.5 ** (1 / half_life_steps)
    batch = int(recipe["batch_tokens"])
    budget_steps = {label: int(t) // batch for label, t in budget_tokens.items()}
    out = []
    for step, branch in zip((np.asarray(tokens, dtype=float) // batch).astype(int), branches):
        factors = np.asarray(step_factors(budget_steps, int(recipe["warmup_steps"]), recipe["schedule"], int(step),
                                          branch))
        drops = np.maximum(-np.diff(factors, prepend=factors[:1]), 0.0)
        out.append(factors[-1] + np.sum(drops * momentum ** np.arange(len(drops), 0, -1)))
    return np.array(out)


class LaggedCurve(Curve):
    """The curve law with the noise term's LR read from column `lr_lag<half-life>`."""

    def __init__(self, half_life_steps: float, **options):
        super().__init__(**options)
        self.column = f"lr_lag{half_life_steps:g}"

    def _log_x(self, table: Table) -> np.ndarray:
        log_x = super()._log_x(table)
        log_x[:, 3] = np.log(np.maximum(np.asarray(table[self.column], dtype=float), LR_FLOOR))
        return log_x


def with_lags(table: Table, recipe: dict, budgets: dict, branches) -> Table:
    return Table({**table.columns, **{f"lr_lag{h:g}": lagged_lr(recipe, budgets, table["tokens"], branches, h)
                                      for h in HALF_LIVES_STEPS}})


def ladder(schedule: dict, multiples, seed: int) -> Table:
    rng = np.random.default_rng(seed)
    runs = []
    for n in SIM_SIZES:
        recipe, budgets = curve_recipe(n, schedule), {f"{m:g}x": m * 20 * n for m in multiples}
        run = simulate_curve_run(n, recipe, budgets, rng)
        ends = iter(budgets if schedule["name"] == "wsds" else [None] * len(budgets))
        runs.append(with_lags(run, recipe, budgets, [None if f == 0 else next(ends) for f in run["final"]]))
    return Table.concat(runs)


def target(schedule: dict, seed: int) -> Table:
    run = simulated_target(schedule, seed)
    recipe, budgets = curve_recipe(SIM_TARGET, schedule), {"target": 20 * SIM_TARGET}
    fork = fork_step(int(budgets["target"]) // recipe["batch_tokens"], schedule) * recipe["batch_tokens"] \
        if schedule["name"] == "wsds" else np.inf
    table = Table({"params": np.full(len(run["tokens"]), SIM_TARGET), **run})
    return with_lags(table, recipe, budgets, ["target" if t > fork else None for t in run["tokens"]])


def squared_errors(law: Curve, table: Table) -> tuple[float, float]:
    """(total, within runs): the fit's squared log residuals, and the same about each run's mean residual."""
    residuals = np.log(table["loss"]) - law.log_draws(table)[0]
    groups = run_groups(table)
    within = sum(float(np.sum((residuals[groups == g] - residuals[groups == g].mean()) ** 2))
                 for g in np.unique(groups))
    return float(np.sum(residuals ** 2)), within


def profiled_laws(table: Table) -> dict[str, Curve]:
    """{half-life: the law fitted with it} and the two profiles' choices."""
    laws = {f"{h:g}": LaggedCurve(h).fit(table) for h in HALF_LIVES_STEPS}
    sse = {h: squared_errors(law, table) for h, law in laws.items()}
    laws["profiled"] = laws[min(sse, key=lambda h: sse[h][0])]
    laws["profiled within runs"] = laws[min(sse, key=lambda h: sse[h][1])]
    return laws


def trained(root: Path) -> Table:
    """Every evaluation of a trained ladder's rungs (collect curves=true), N as the fits take it, the lagged LRs."""
    table = collect_runs(root, curves=True)
    parts = []
    for rung in dict.fromkeys(table["rung"]):
        rows = table.take(np.flatnonzero(table["rung"] == rung))
        recipe, budgets = run_schedule(root / str(rung))
        columns = {k: rows[k] for k in ("tokens", "loss", "final", "budget", *SCHEDULE_COLUMNS)}
        branches = [b if f == 1 else None for b, f in zip(rows["budget"], rows["final"])]
        parts.append(with_lags(Table({"params": rows["non_embedding_params"], "run": rows["rung"], **columns}),
                               recipe, budgets, branches))
    return Table.concat(parts)


def held_out_path(root: Path) -> Table:
    """The held-out rung's evaluations on its path to its last budget, in order."""
    table = trained(root)
    keep = on_path(table)
    return table.take(keep[np.argsort(table["tokens"][keep])])


def tiny(wsds: Path, cosine: Path) -> None:
    held = {"WSD-S": held_out_path(wsds / "tiny-heldout"), "cosine": held_out_path(cosine / "tiny-heldout")}
    print(f"\ntiny ladders forecasting the held-out rung ({held['WSD-S']['params'][0]:.3g} non-embedding params), "
          f"trained under either schedule")
    print(f"  {'ladder':>14} {'lag half-life (steps)':>28} {'held out':>9} {'final error':>12} "
          f"{'whole curve: median |error|':>28}")
    for name, root in (("WSD-S 0.5-2xC", wsds), ("cosine to 2xC", cosine)):
        laws = profiled_laws(trained(root / "tiny"))
        for choice, law in laws.items():
            for schedule, run in held.items():
                value = np.exp(law.log_draws(run)[0])
                label = choice if "profiled" not in choice else f"{choice} ({law.column[len('lr_lag'):]})"
                print(f"  {name:>14} {label:>28} "
                      f"{schedule:>9} {value[-1] / run['loss'][-1] - 1:>+12.2%} "
                      f"{np.median(np.abs(value / run['loss'] - 1)):>28.2%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10, help="simulated ladders (0: none)")
    parser.add_argument("--runs", type=Path, help="a runs_dir where ladder demo ran")
    parser.add_argument("--cosine-runs", type=Path, help=COSINE_RUNS_HELP)
    args = parser.parse_args()
    if args.runs and args.cosine_runs:
        tiny(args.runs, args.cosine_runs)
    if args.seeds == 0:
        return
    ladders = {"WSD-S 0.5-4x": (WSDS, (0.5, 1, 2, 4)), "cosine to 2x": (COSINE, (2,))}
    choices = [f"{h:g}" for h in HALF_LIVES_STEPS] + ["profiled", "profiled within runs"]
    errors = {(name, choice, t): [] for name in ladders for choice in choices for t in ("WSD-S", "cosine")}
    chosen = {(name, how): Counter() for name in ladders for how in ("profiled", "profiled within runs")}
    for seed in range(args.seeds):
        targets = {"WSD-S": target(WSDS, seed), "cosine": target(COSINE, seed)}
        for name, (schedule, multiples) in ladders.items():
            laws = profiled_laws(ladder(schedule, multiples, seed))
            for how in ("profiled", "profiled within runs"):
                chosen[(name, how)][laws[how].column[len("lr_lag"):]] += 1
            for choice, law in laws.items():
                for target_name, run in targets.items():
                    value = np.exp(law.log_draws(run)[0])
                    late = run["tokens"] >= 0.1 * run["tokens"][-1]
                    errors[(name, choice, target_name)].append(
                        (abs(value[-1] / run["loss"][-1] - 1), np.median(np.abs(value[late] / run["loss"][late] - 1))))
    print(f"simulated ladders, {args.seeds} seeds; truth: momentum 0.99 per step (half-life 69 steps); the target "
          f"3.2e9 at 20 tokens per parameter")
    print(f"  {'ladder':>14} {'lag half-life (steps)':>22} {'target':>7} {'final: median |error|':>22} "
          f"{'whole curve: median |error|':>28}")
    for (name, choice, target_name), rows in errors.items():
        rows = np.array(rows)
        print(f"  {name:>14} {choice:>22} {target_name:>7} {np.median(rows[:, 0]):>22.2%} "
              f"{np.median(rows[:, 1]):>28.2%}")
    for (name, how), counts in chosen.items():
        print(f"  {name}, {how}: half-lives chosen {dict(sorted(counts.items(), key=lambda kv: float(kv[0])))}")


if __name__ == "__main__":
    main()
