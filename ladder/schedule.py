"""Learning-rate schedules as pure functions of the step: a multiplier of the recipe's peak learning rate.

- cosine: warmup, then cosine to `final_lr_frac`.      - linear: warmup, then linear to `final_lr_frac`.
- constant: warmup, then flat.                          - wsd: warmup, stable, then a cooldown over the last
  `cooldown_frac` of the run (`cooldown_shape`: linear, cosine or 1-sqrt; Hagele et al. 2024).
- wsds: the main run is warmup then constant; each budget's result comes from a cooldown branch (`branch_factor`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def warmup_factor(step: int, warmup_steps: int) -> float:
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0


def cooldown_factor(i: int, n: int, shape: str, final: float) -> float:
    """Step i of an n-step cooldown from 1 to `final` (the last step reaches it)."""
    progress = (i + 1) / n
    if shape == "linear":
        decay = 1 - progress
    elif shape == "cosine":
        decay = 0.5 * (1 + math.cos(math.pi * progress))
    else:  # 1-sqrt
        decay = 1 - math.sqrt(progress)
    return final + (1 - final) * decay


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: dict) -> float:
    name, final = schedule["name"], float(schedule.get("final_lr_frac", 0.0))
    warm = warmup_factor(step, warmup_steps)
    if step < warmup_steps or name in ("constant", "wsds"):
        return warm
    if name in ("cosine", "linear"):
        progress = min(1.0, (step - warmup_steps + 1) / max(1, total_steps - warmup_steps))
        shape = 0.5 * (1 + math.cos(math.pi * progress)) if name == "cosine" else 1 - progress
        return final + (1 - final) * shape
    cooldown_steps = cooldown_length(total_steps, schedule)  # wsd
    start = total_steps - cooldown_steps
    if step < start:
        return 1.0
    return cooldown_factor(step - start, cooldown_steps, schedule.get("cooldown_shape", "linear"), final)


def cooldown_length(budget_steps: int, schedule: dict) -> int:
    return max(1, round(float(schedule["cooldown_frac"]) * budget_steps))


def branch_factor(step: int, fork_step: int, budget_steps: int, warmup_steps: int, schedule: dict) -> float:
    """WSD-S: the cooldown branch forked at `fork_step` decays from the main run's rate to reach the budget."""
    start = warmup_factor(fork_step, warmup_steps)
    return start * cooldown_factor(step - fork_step, budget_steps - fork_step, schedule.get("cooldown_shape", "linear"),
                                   float(schedule.get("final_lr_frac", 0.0)))


def fork_step(budget_steps: int, schedule: dict) -> int:
    """Where the branch for a budget leaves the main run, so that the branch ends exactly at the budget."""
    return budget_steps - cooldown_length(budget_steps, schedule)


@dataclass
class RunSteps:
    """Where a rung's run goes, in optimizer steps: each budget's last step, the step its cooldown branch forks
    at (WSD-S: the main run holds its rate and ends at the last fork), and where the main run ends."""

    budgets: dict[str, int]
    forks: dict[int, str]  # fork step -> budget; empty where the schedule decays to its one budget
    main_end: int

    @property
    def total(self) -> int:
        return max(self.budgets.values())

    @property
    def branch_work(self) -> int:
        return sum(self.budgets[label] - fork for fork, label in self.forks.items())

    def eval_steps(self, points: int) -> list[int]:
        """`points` main-run steps evenly spread strictly inside the main run (its end is a budget, evaluated
        anyway); a main run too short for them all gets one at every step."""
        points = max(0, min(points, self.main_end - 1))
        return [self.main_end * i // (points + 1) for i in range(1, points + 1)]


def run_steps(budgets: dict[str, int], batch_tokens: int, schedule: dict, branching: bool) -> RunSteps:
    steps = {label: tokens // batch_tokens for label, tokens in budgets.items()}
    forks = {fork_step(s, schedule): label for label, s in steps.items()} if branching else {}
    return RunSteps(steps, forks, max(forks) if forks else max(steps.values()))


def step_factors(budget_steps: dict[str, int], warmup_steps: int, schedule: dict, end_step: int,
                 branch: str | None = None) -> list[float]:
    """The LR multiplier of each step a point `end_step` steps into the run has taken, as the loop computes them:
    the main run's, or, for a point of WSD-S `branch`'s cooldown, the main run's to the fork and the branch's after."""
    total = max(budget_steps.values())
    branching = branch is not None and schedule["name"] == "wsds"
    fork = fork_step(budget_steps[branch], schedule) if branching else end_step
    main = [lr_factor(s, total, warmup_steps, schedule) for s in range(min(fork, end_step))]
    return main + [branch_factor(s, fork, budget_steps[branch], warmup_steps, schedule) for s in range(fork, end_step)]
