"""Where a rung's records go: metrics.jsonl (the contract the other stages read), W&B, and the person watching.

On a terminal the person gets a bar; anywhere else (a Slurm output file, a pipe, CI) a plain line every
`train.log_every` steps with step, tokens, loss, learning rate, throughput, MFU and an ETA. Every evaluation and
every budget's result is one line in both cases. Only rank 0 reports.
"""

from __future__ import annotations

import time

from ladder.progress import bar, duration, stamp
from ladder.report import human


class Reporter:
    """One rung's records and lines. `total_work` and `work_done` count optimizer steps, cooldown branches
    included, so the ETA covers everything the rung still has to train (evaluations included in the pace)."""

    def __init__(self, name: str, metrics, wandb, main_steps: int, total_work: int, work_done: int,
                 enabled: bool = True):
        self.name, self.metrics, self.wandb, self.enabled = name, metrics, wandb, enabled
        self.main_steps, self.total_work = main_steps, total_work
        self.bar = bar(total_work, name, unit="steps", enabled=enabled, initial=work_done)
        self.lines = enabled and not self.bar.shown  # a log: lines instead of the bar
        self.paced_from = (time.time(), work_done)

    def eta_s(self, work_done: int) -> float | None:
        started, done_then = self.paced_from
        done = work_done - done_then
        if done <= 0:
            return None
        return (self.total_work - work_done) * (time.time() - started) / done

    def record(self, record: dict, work_done: int) -> None:
        self.metrics.write(record)
        if self.wandb is not None:  # W&B steps must increase: count every optimizer step, branches included
            self.wandb.log(record, work_done)

    def advance(self) -> None:
        self.bar.advance()

    def train(self, record: dict, work_done: int) -> None:
        """A main-run or cooldown-branch record, every log_every steps."""
        self.record(record, work_done)
        eta = self.eta_s(work_done)
        if "branch" in record:
            where = f"{record['branch']} cooldown step {record['step']}"
        else:
            where = f"step {record['step']}/{self.main_steps}"
            self.bar.advance(0, f"loss {record['loss']:.3f}, {record['tokens_per_s']:,.0f} tokens/s, ETA "
                                f"{duration(eta)}")
        if not self.lines:
            return
        parts = [f"{where}", f"{human(record['tokens'])} tokens", f"loss {record['loss']:.4f}",
                 f"lr {record['lr']:.2e}"]
        if record.get("tokens_per_s") is not None:
            parts.append(f"{record['tokens_per_s']:,.0f} tokens/s")
        if record.get("mfu") is not None:
            parts.append(f"MFU {record['mfu']:.1%}")
        parts.append(f"ETA {duration(eta)}")
        self.say(" | ".join(parts))

    def evaluation(self, record: dict, work_done: int) -> None:
        """An evaluation of the main run between budgets."""
        self.record(record, work_done)
        self.say(f"eval at step {record['step']} ({human(record['tokens'])} tokens): " + _results(record))

    def budget(self, label: str, record: dict, work_done: int) -> None:
        self.record(record, work_done)
        self.say(f"budget {label} done at step {record['step']} ({human(record['tokens'])} tokens): "
                 + _results(record))

    def say(self, line: str) -> None:
        if self.enabled:
            print(f"{stamp()} {self.name} {line}", flush=True)

    def close(self) -> None:
        self.bar.close()


def _results(record: dict) -> str:
    shown = [f"val_loss {record['val_loss']:.4f}"]
    shown += [f"{key.removeprefix('eval/')} {value:.4g}" for key, value in record.items()
              if key.startswith("eval/") and not key.endswith("/items") and isinstance(value, (int, float))]
    took = f" ({record['eval_s']:.1f} s)" if record.get("eval_s") is not None else ""
    return ", ".join(shown) + took
