"""Where a rung's records go: metrics.jsonl (the contract the other stages read), W&B, and the person watching.

On a terminal the person gets a bar, and a line for each budget's result above it; anywhere else (a Slurm output
file, a pipe, CI) plain lines: the start, one every `train.log_every` steps with step, tokens, loss, learning rate,
throughput, MFU and an ETA, one per evaluation and one per budget. Only rank 0 reports.
"""

from __future__ import annotations

import time

from ladder.progress import bar, duration, stamp
from ladder.report import human


class Reporter:
    """One rung's records and lines. `total_work` and `work_done` count optimizer steps, cooldown branches
    included: throughput is measured between logged steps over the training done in between (evaluations and
    checkpoints left out), the ETA over everything since the start (them included). Every rank holds one; only
    rank 0's writes, draws and prints (`enabled`)."""

    def __init__(self, name: str, metrics, wandb, main_steps: int, total_work: int, work_done: int,
                 batch_tokens: int, mfu, enabled: bool = True):
        """`mfu`: tokens/s -> model FLOPs utilization (None where the device's peak is unknown)."""
        self.name, self.metrics, self.wandb, self.enabled = name, metrics, wandb, enabled
        self.main_steps, self.total_work, self.batch_tokens, self.mfu = main_steps, total_work, batch_tokens, mfu
        self.bar = bar(total_work, name, unit="steps", enabled=enabled, initial=work_done)
        self.lines = enabled and not self.bar.shown  # a log: lines instead of the bar
        self.paced_from = self.clock = (time.time(), work_done)

    def eta_s(self, work_done: int) -> float | None:
        started, done_then = self.paced_from
        done = work_done - done_then
        if done <= 0:
            return None
        return (self.total_work - work_done) * (time.time() - started) / done

    def pause_ends(self, work_done: int) -> None:
        """Time from here on is training again (after an evaluation or a checkpoint)."""
        self.clock = (time.time(), work_done)

    def record(self, record: dict, work_done: int) -> None:
        if not self.enabled:
            return
        self.metrics.write(record)
        if self.wandb is not None:  # W&B steps must increase: count every optimizer step, branches included
            self.wandb.log(record, work_done)

    def advance(self) -> None:
        self.bar.advance()

    def train(self, record: dict, work_done: int) -> dict:
        """A main-run or cooldown-branch record of a logged step, with the throughput, MFU (where the device's
        peak is known) and ETA added; returned as written."""
        now, (since, done_then) = time.time(), self.clock
        speed = (work_done - done_then) * self.batch_tokens / max(now - since, 1e-9)
        self.clock = (now, work_done)
        record = {**record, "tokens_per_s": speed, "mfu": self.mfu(speed)}
        self.record(record, work_done)
        eta = duration(self.eta_s(work_done))
        if "branch" in record:
            where = f"{record['branch']} cooldown step {record['step']}"
        else:
            where = f"step {record['step']}/{self.main_steps}"
            self.bar.advance(0, f"loss {record['loss']:.3f}, {speed:,.0f} tokens/s, ETA {eta}")
        if self.lines:
            self.say(" | ".join([where, f"{human(record['tokens'])} tokens", f"loss {record['loss']:.4f}",
                                 f"lr {record['lr']:.2e}", f"{speed:,.0f} tokens/s",
                                 *([f"MFU {record['mfu']:.1%}"] if record["mfu"] is not None else []), f"ETA {eta}"]))
        return record

    def evaluation(self, record: dict, work_done: int) -> None:
        """An evaluation of the main run between budgets."""
        self.record(record, work_done)
        self.log_line(f"eval at step {record['step']} ({human(record['tokens'])} tokens): " + _results(record))
        self.pause_ends(work_done)

    def budget(self, label: str, record: dict, work_done: int) -> None:
        self.record(record, work_done)
        self.say(f"budget {label} done at step {record['step']} ({human(record['tokens'])} tokens): "
                 + _results(record))
        self.pause_ends(work_done)

    def say(self, line: str) -> None:
        """A line for the person, on a terminal (above the bar) or in a log."""
        if self.enabled:
            print(f"{stamp()} {self.name} {line}", flush=True)

    def log_line(self, line: str) -> None:
        """A line for a log only: on a terminal the bar says it."""
        if self.lines:
            self.say(line)

    def close(self) -> None:
        self.bar.close()


def model_flops_utilization(tokens_per_s: float, flops_per_token: float, peak_per_gpu: float | None,
                            world_size: int) -> float | None:
    """MFU per GPU: tokens_per_s counts every rank's tokens, so it is against world_size GPUs' peak."""
    return tokens_per_s * flops_per_token / (peak_per_gpu * world_size) if peak_per_gpu else None


def _results(record: dict) -> str:
    shown = [f"val_loss {record['val_loss']:.4f}"]
    shown += [f"{key.removeprefix('eval/')} {value:.4g}" for key, value in record.items()
              if key.startswith("eval/") and not key.endswith("/items") and isinstance(value, (int, float))]
    took = f" ({record['eval_s']:.1f} s)" if record.get("eval_s") is not None else ""
    return ", ".join(shown) + took
