"""Train one rung and leave behind everything a fit needs.

The path: plan -> data -> model -> optimizer -> (resume) -> main loop. With a WSD-S recipe the main run holds a
constant learning rate and, at each budget's fork step, forks a cooldown branch that ends exactly at the budget; the
branch's validation loss is that budget's result, then the main run continues from its own state. Every other
schedule runs once to its single budget. Batches, learning rates and cooldowns are pure functions of the step, so a
run resumed from any checkpoint reproduces the uninterrupted one bitwise on CPU.

A training step never waits for the GPU: the loss stays on the device until a step that logs (every
`train.log_every`) or checkpoints reads it, and that read also checks that no loss since the last one was NaN or
infinite.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import json
import logging
import os
import signal
import time
from contextlib import ExitStack

import torch
from omegaconf import OmegaConf

from ladder import distributed
from ladder.data import Sampler, TokenData, on_cluster, open_data
from ladder.device import autocast_for, compile_wanted, pick_device
from ladder.errors import LadderError, require
from ladder.evals.scoring import windows_loss
from ladder.evals.suite import make_suite
from ladder.hardware import device_peak_flops
from ladder.model import all_flops_per_token, flops_per_token
from ladder.model.build import build_model
from ladder.plan import Plan, Rung, plan_to_dict_for, rung_identity
from ladder.rundir import MetricsLog, RunDir, lease
from ladder.train.batches import DeviceBatches, micro_batch
from ladder.train.checkpoint import Checkpoints, save_verified
from ladder.train.loss import FiniteWatch, loss_function
from ladder.train.optim import make_optimizer, set_lr
from ladder.train.options import check_train_options
from ladder.train.parallel import Parallel
from ladder.train.reporting import Reporter, model_flops_utilization
from ladder.train.rng import rng_state, set_rng_state
from ladder.schedule import branch_factor, lr_factor
from ladder.train.wandb_log import WandbLogger

log = logging.getLogger("ladder.train")
EXIT_FAILED, EXIT_INTERRUPTED = 1, 75  # 75 = EX_TEMPFAIL: checkpointed, run the same command again to resume


class Interrupted(Exception):
    pass


def fresh_progress() -> dict:
    """What a checkpoint restores besides the model and optimizer, at the start of a rung."""
    return {"step": 0, "results": {}, "wall_s": 0.0, "eval_s": 0.0, "tokens_seen": 0, "work_steps": 0}


class Trainer:
    def __init__(self, cfg, rung: Rung, ladder: str, data_tokens: int | None = None):
        self.cfg, self.rung, self.ladder = cfg, rung, ladder
        self.tcfg = cfg.train
        self.run = RunDir.of(cfg.runs_dir, ladder, rung.name)
        self.device = pick_device(str(self.tcfg.device))
        self.dist = distributed.init_distributed(self.device.type)
        distributed.set_threads(self.tcfg.threads, self.dist)
        self.autocast = autocast_for(self.device, str(self.tcfg.dtype))
        self.stop_signal = None
        self.wandb_id = None
        self.in_branch = None  # the budget whose cooldown branch is running
        self.heartbeat_at = 0.0
        self.marked = False  # the summary already says how this process ended

        data_dir = open_data(OmegaConf.to_container(cfg.data, resolve=True), data_tokens or rung.tokens,
                             may_prepare=not on_cluster(), progress=self.dist.is_main)
        self.data = TokenData(data_dir, verify=cfg.data.verify)
        require(self.data.vocab_size <= rung.spec.vocab_size,
                f"ladder.vocab_size={rung.spec.vocab_size} is smaller than the tokenizer's vocabulary "
                f"({self.data.vocab_size}); set ladder.vocab_size={self.data.vocab_size} or change data.tokenizer")
        recipe = rung.recipe
        self.micro = micro_batch(recipe, self.dist.world_size)
        self.sampler = Sampler(self.data, rung.spec.seq_len, recipe.batch_sequences, rung.seed)
        self.batches = DeviceBatches(self.sampler, self.device, self.dist.rank, self.dist.world_size)
        self.val_windows = self.data.validation_windows(rung.spec.seq_len, int(float(self.tcfg.eval_tokens)))
        self.evals = make_suite(cfg, self.data, rung.spec.seq_len)
        self.steps = rung.run_steps
        self.eval_steps = set(self.steps.eval_steps(rung.eval_points))  # the plan's, where `ladder plan` said
        self.flops_per_token = rung.flops_per_token  # the plan's convention, for records and results
        self.executed_flops_per_token = flops_per_token(rung.spec, "porian")  # for MFU, against one GPU's peak
        self.peak = device_peak_flops(torch.cuda.get_device_name()) if self.device.type == "cuda" else None
        self.repeat_factor = self.sampler.repeat_factor(self.rung.tokens)
        self.identity = run_identity(rung, self.data.fingerprint, self.tcfg, self.device)

    def summary(self, status: str, progress: dict, reason: str | None = None) -> dict:
        counts = self.rung.counts
        return {
            "status": status, "reason": reason, "ladder": self.ladder, "rung": self.rung.name, "size": self.rung.size,
            "seed": self.rung.seed, **counts.to_dict(), "lr": self.rung.recipe.lr,
            "batch_tokens": self.rung.recipe.batch_tokens, "flops_convention": self.cfg.flops_convention,
            "flops_per_token": all_flops_per_token(self.rung.spec), "budgets": {
                label: progress["results"].get(label, {"tokens": tokens, "flops": float(tokens) *
                                                       self.flops_per_token, "loss": None})
                for label, tokens in self.rung.budgets.items()},
            "steps_done": progress["step"], "main_steps": self.steps.main_end,
            "tokens_seen": progress["tokens_seen"], "trained_tokens": self.rung.trained_tokens,
            "last_loss": progress.get("last_loss"), "tokens_per_s": progress.get("tokens_per_s"),
            "mfu": progress.get("mfu"), "eta_s": progress.get("eta_s"),
            "wall_time_s": round(progress["wall_s"], 2), "eval_time_s": round(progress["eval_s"], 2),
            "repeat_factor": self.repeat_factor,
            "data_fingerprint": self.data.fingerprint, "identity": self.identity,
            "rung_identity": rung_identity(self.rung), "wandb_id": self.wandb_id,
            "device": str(self.device), "world_size": self.dist.world_size,
            "slurm_job_id": os.environ.get("SLURM_ARRAY_JOB_ID", os.environ.get("SLURM_JOB_ID")),
            **({"lease": lease()} if status == "running" else {}),  # ladder status: is its process alive?
        }

    # -- the pieces of a step -----------------------------------------------------------------------------------
    def train_step(self, step: int, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; the loss (this rank's) and the gradient norm stay on the device."""
        set_lr(self.optimizer, lr)
        x, y = self.batches.get(step)
        chunks = list(zip(x.split(self.micro), y.split(self.micro)))
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for i, (xm, ym) in enumerate(chunks):
            with self.parallel.sync_context(i == len(chunks) - 1):
                with self.autocast:
                    loss = self.loss(self.parallel.module(input_ids=xm).logits, ym)
                (loss / len(chunks)).backward()
            total += loss.detach() / len(chunks)
        grad_norm = self.parallel.clip(self.rung.recipe.grad_clip)
        self.optimizer.step()
        self.batches.prefetch(step + 1)
        return total, grad_norm

    def evaluate(self, progress: dict) -> dict:
        """The validation loss and every eval entry's metrics (`eval/<entry>/<metric>`); eval_s is what they cost.
        Through the model itself, not the compiled or DDP module: no gradient to sync, and task batches of varying
        lengths would recompile the graph compiled for training's shapes."""
        self.finite.check(self.dist)  # no evaluation of weights a NaN already reached: it would be written down
        started = time.time()
        self.model.eval()
        args = (self.model, self.micro, self.device, self.autocast, self.dist)
        results = {"val_loss": windows_loss(self.model, self.val_windows, *args[1:])}
        if self.evals:
            results.update({f"eval/{name}": value for name, value in self.evals.run(*args).items()})
        self.model.train()
        results["eval_s"] = round(time.time() - started, 3)
        progress["eval_s"] += results["eval_s"]
        return results

    def budget_result(self, label: str, step: int, progress: dict, fork: int | None = None) -> dict:
        """The budget's evaluation, its entry in summary.json and its metrics record; its weights too, for a later
        `ladder eval`."""
        evaluation = self.evaluate(progress)
        tokens = step * self.rung.recipe.batch_tokens
        result = {"tokens": tokens, "flops": float(tokens) * self.flops_per_token, "loss": evaluation["val_loss"],
                  "step": step, **({"fork_step": fork} if fork is not None else {}),
                  "finished_at": round(time.time(), 1),  # when it landed: the report's forecast history
                  "eval": {k.removeprefix("eval/"): v for k, v in evaluation.items() if k.startswith("eval/")}}
        self.reporter.budget(label, {"budget": label, "step": step, "tokens": tokens, "flops": result["flops"],
                                     **evaluation}, progress["work_steps"])
        if self.tcfg.save_budget_models:
            weights = self.parallel.full_model_state()
            if self.dist.is_main:
                save_verified(self.run.budget_model(label), {"model": weights, "budget": label, "step": step,
                                                             "identity": self.identity}, step=step)
        return result

    def fold_wall_time(self, progress: dict) -> None:
        """Add the time since the segment started to progress, so a checkpoint carries the wall time so far."""
        now = time.time()
        progress["wall_s"] += now - self.started
        self.started = now

    def checkpoint(self, progress: dict, tag: str = "") -> None:
        self.finite.check(self.dist)  # never a checkpoint of weights a NaN already reached
        self.fold_wall_time(progress)
        model_state, optimizer_state = self.parallel.full_state(self.optimizer)
        if self.dist.is_main:
            state = {"model": model_state, "optimizer": optimizer_state,
                     "progress": dict(progress), "metrics_offset": self.metrics.offset(), "identity": self.identity,
                     "rng": rng_state()}
            Checkpoints(self.run.checkpoints, int(self.tcfg.keep_checkpoints)).save(state, progress["step"], tag)
            self.run.write_summary(self.summary("running", progress))
        distributed.barrier(self.dist)
        self.reporter.pause_ends(progress["work_steps"])  # throughput counts training, not saving

    def heartbeat(self, progress: dict, now: float) -> None:
        """Rewrite the running summary (its lease's heartbeat) at most once a minute, between checkpoints."""
        if self.dist.is_main and now - self.heartbeat_at > 60:
            self.heartbeat_at = now
            self.run.write_summary(self.summary("running", progress))

    def check_stop(self, synced: bool) -> None:
        """Stop on a signal: at once with one process, at the next sync point (a collective) with several."""
        if self.dist.enabled and not synced:
            return
        flag, = distributed.all_reduce_sum([1.0 if self.stop_signal else 0.0], self.dist)
        if flag:
            raise Interrupted(self.stop_signal or "signal on another rank")

    def step(self, step: int, lr: float, progress: dict, branch: str | None = None, last: bool = False) -> bool:
        """One optimizer step of the main run (or of `branch`'s cooldown) and its bookkeeping. Every log_every
        steps, and at the last, it reads the loss back (the one sync) and reports it; returns whether it did."""
        loss, grad_norm = self.train_step(step, lr)
        self.finite.see(loss, grad_norm, step)
        done, batch_tokens = step + 1, self.rung.recipe.batch_tokens
        progress["work_steps"] += 1
        if branch is None:
            progress.update(step=done, tokens_seen=progress["tokens_seen"] + batch_tokens)
        self.reporter.advance()
        logged = done % int(self.tcfg.log_every) == 0 or last
        if logged:  # the one host sync: every loss since the last one finite, this one averaged over ranks
            self.finite.check(self.dist)
            loss_sum, = distributed.all_reduce_sum([float(loss)], self.dist)
            tokens, elapsed_s = done * batch_tokens, progress["wall_s"] + time.time() - self.started
            record = self.reporter.train({**({"branch": branch} if branch else {}), "step": done, "tokens": tokens,
                                          "flops": float(tokens) * self.flops_per_token, "lr": lr,
                                          "loss": loss_sum / self.dist.world_size, "grad_norm": float(grad_norm),
                                          "elapsed_s": elapsed_s}, progress["work_steps"])
            progress.update(last_loss=record["loss"], tokens_per_s=record["tokens_per_s"], mfu=record["mfu"],
                            eta_s=self.reporter.eta_s(progress["work_steps"]))
            self.heartbeat(progress, time.time())
        return logged

    # -- the run --------------------------------------------------------------------------------------------------
    def run_branch(self, label: str, fork: int, progress: dict) -> dict:
        """Cool down from the main run's state at `fork` to the budget; restore the main state afterwards."""
        recipe, end = self.rung.recipe, self.steps.budgets[label]
        snapshot = copy.deepcopy({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()})
        self.in_branch = label
        try:
            for step in range(fork, end):
                lr = recipe.lr * branch_factor(step, fork, end, recipe.warmup_steps, recipe.schedule)
                self.check_stop(self.step(step, lr, progress, branch=label, last=step + 1 == end))
            result = self.budget_result(label, end, progress, fork)
            self.in_branch = None
        finally:
            self.model.load_state_dict(snapshot["model"])
            self.optimizer.load_state_dict(snapshot["optimizer"])
        return result

    def train(self) -> int:
        recipe = self.rung.recipe
        torch.manual_seed(self.rung.seed)
        self.model = build_model(self.rung.spec, seed=self.rung.seed).to(self.device)
        backend = self.tcfg.compile_backend if compile_wanted(self.tcfg.compile, self.device) else None
        self.parallel = Parallel(self.model, self.dist, self.device, bool(self.tcfg.fsdp), backend)
        self.optimizer = make_optimizer(self.model, recipe, fused=self.device.type == "cuda")
        self.loss, self.finite = loss_function(self.parallel.compile_backend), FiniteWatch(self.device)
        progress = fresh_progress()
        state = Checkpoints(self.run.checkpoints).load_latest()
        if state is not None:
            require(state.get("identity") == self.identity, f"{self.run.checkpoints}: checkpoints of a different "
                                                             f"configuration; delete {self.run.path} to restart")
            self.parallel.load_full_state(self.optimizer, state["model"], state["optimizer"])
            progress = {**fresh_progress(), **state["progress"]}
            set_rng_state(state["rng"])
        self.metrics = MetricsLog(self.run.metrics_path, enabled=self.dist.is_main)
        self.metrics.truncate(state["metrics_offset"] if state is not None else 0)
        self.wandb = WandbLogger.of_rung(self.cfg, self.ladder, self.rung, self.identity, self.run.path) \
            if self.dist.is_main else None
        self.wandb_id = self.wandb.id if self.wandb is not None else None
        steps = self.steps
        self.reporter = Reporter(
            self.rung.name, self.metrics, self.wandb, main_steps=steps.main_end,
            total_work=steps.main_end + steps.branch_work, work_done=progress["work_steps"],
            batch_tokens=recipe.batch_tokens, enabled=self.dist.is_main,
            mfu=lambda speed: model_flops_utilization(speed, self.executed_flops_per_token, self.peak,
                                                      self.dist.world_size))
        if self.repeat_factor > 1 and self.dist.is_main:
            log.warning("rung %s reads %.2f epochs of the training data (repeat factor %.2f)", self.rung.name,
                        self.repeat_factor, self.repeat_factor)
        if self.dist.is_main:
            self.run.write_summary(self.summary("running", progress))
        backend = self.parallel.compile_backend
        self.reporter.log_line(f"{'resumed at' if state else 'starting at'} step {progress['step']} of {steps.main_end} "
                          f"(+{steps.branch_work} cooldown steps), {self.rung.eval_points} evaluations between "
                          f"budgets, on {self.device}" + (f" (compiled, {backend})" if backend else ""))
        signals = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in signals}
        self.started = time.time()
        try:
            return self._loop(progress)
        except Interrupted as why:
            return self._stopped(progress, why)
        except FloatingPointError as why:
            return self._diverged(progress, why)
        except BaseException as error:  # a crash, a full disk, a second Ctrl-C: the summary must not say running
            self.fold_wall_time(progress)
            if self.dist.is_main:
                status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
                try:
                    self.run.write_summary(self.summary(status, progress, reason=failure_reason(error)))
                    self.marked = True
                except OSError:  # the disk is full for the summary too: its stale lease will say interrupted
                    log.warning("could not mark %s %s: %s", self.rung.name, status, failure_reason(error))
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.reporter.close()
            if self.wandb is not None:
                self.wandb.finish()
            self.metrics.close()

    def _stopped(self, progress: dict, why: Interrupted) -> int:
        try:
            if self.in_branch is None:  # mid-branch, the fork's checkpoint is where a resume starts the branch over
                self.checkpoint(progress)
            else:
                self.fold_wall_time(progress)
        except FloatingPointError as diverged:  # a NaN since the last log: no checkpoint of it
            return self._diverged(progress, diverged)
        if self.dist.is_main:
            self.run.write_summary(self.summary("interrupted", progress, reason=f"{why}; resumable"))
            print(f"{self.rung.name}: interrupted ({why}) at step {progress['step']}; checkpoint saved, run the "
                  f"same command to resume", flush=True)
        return EXIT_INTERRUPTED

    def _diverged(self, progress: dict, why: FloatingPointError) -> int:
        self.fold_wall_time(progress)
        if self.dist.is_main:
            self.metrics.write({"step": progress["step"], "failed": str(why)})
            kept = ("the last good checkpoint is kept" if list(self.run.checkpoints.glob("step_*.pt"))
                    else "no checkpoint had been written")
            summary = self.summary("failed", progress, reason=f"{why}; {kept}")
            self.run.write_summary({**summary, "diverged": True})  # ladder tune: this LR is too high
            print(f"{self.rung.name}: failed: {why}", flush=True)
        return EXIT_FAILED

    def _on_signal(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.stop_signal == "SIGINT":
            raise KeyboardInterrupt  # Ctrl-C twice: stop now, from the last checkpoint
        self.stop_signal = signal.Signals(signum).name

    def _loop(self, progress: dict) -> int:
        recipe = self.rung.recipe
        while True:
            step = progress["step"]
            label = self.steps.forks.get(step)
            if label is not None and label not in progress["results"]:
                self.checkpoint(progress, tag="fork")
                progress["results"][label] = self.run_branch(label, step, progress)
                progress["tokens_seen"] += (self.steps.budgets[label] - step) * recipe.batch_tokens
                self.checkpoint(progress)
                continue
            if step >= self.steps.main_end:
                break
            lr = recipe.lr * lr_factor(step, self.steps.total, recipe.warmup_steps, recipe.schedule)
            logged = self.step(step, lr, progress, last=step + 1 == self.steps.main_end)
            done = step + 1
            if done in self.eval_steps:
                self.reporter.evaluation({"step": done, "tokens": done * recipe.batch_tokens,
                                          **self.evaluate(progress)}, progress["work_steps"])
            if done % int(self.tcfg.checkpoint_every) == 0 and done not in self.steps.forks:
                self.checkpoint(progress)
            self.check_stop(logged)  # after the step's evaluation: a resume starts at the next step
        if not self.steps.forks:  # the one budget's result is the end of the run
            label = next(iter(self.rung.budgets))
            progress["results"][label] = self.budget_result(label, self.steps.main_end, progress)
        self.checkpoint(progress)
        if self.dist.is_main:
            summary = self.summary("done", progress)
            self.run.write_summary(summary)
            if self.wandb is not None:
                self.wandb.summary(summary)
            print(format_summary(summary), flush=True)
        return 0


def run_identity(rung: Rung, data_fingerprint: str, tcfg, device: torch.device) -> str:
    """What a checkpoint must match to be resumed: the rung, its data, and how it computes (dtype, device, FSDP)."""
    key = {"rung": plan_to_dict_for(rung), "data": data_fingerprint, "dtype": str(tcfg.dtype), "device": device.type,
           "fsdp": bool(tcfg.fsdp)}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def failure_reason(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "stopped (Ctrl-C twice); resumes from the last checkpoint"
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return f"disk full ({error.filename or 'writing'}); free space and run again to resume"
    return f"{type(error).__name__}: {error}"


def format_summary(summary: dict) -> str:
    results = ", ".join(f"{label}: {r['loss']:.4f}" for label, r in summary["budgets"].items()
                        if r.get("loss") is not None)
    evaluation = summary.get("eval_time_s")
    share = f", {evaluation / summary['wall_time_s']:.0%} of it evaluating" \
        if evaluation is not None and summary.get("wall_time_s") else ""
    return (f"{summary['rung']}: {summary['status']} - validation loss {results} "
            f"({summary['tokens_seen'] / 1e6:.2f}M tokens, {summary['wall_time_s']:.0f} s{share})")


def train_rung(cfg, plan: Plan, rung: Rung) -> int:
    """Train `rung` of `plan` (the command's, made once); `cfg` gives the run's settings (train, data, logger,
    runs_dir) and is saved whole beside it."""
    check_train_options(cfg.train)
    run = RunDir.of(cfg.runs_dir, plan.ladder, rung.name)
    overwrite = bool(cfg.train.get("overwrite", False))
    existing = run.summary()
    if existing and existing.get("status") == "done" and not overwrite:
        same = existing.get("rung_identity") in (None, rung_identity(rung))  # None: written before it was kept
        require(same, f"{run.path}: finished with another configuration of rung {rung.name} (its recipe, shape, "
                      f"budgets or seed changed); use another runs_dir, or train.overwrite=true to retrain it")
        print(format_summary(existing))  # a finished rung is never retrained or overwritten unless asked
        return 0
    trainer = Trainer(cfg, rung, plan.ladder, plan.data_tokens)
    with ExitStack() as held:
        refused = None
        if trainer.dist.is_main:
            try:
                held.enter_context(run.lock())
                existing = run.summary()  # again, under the lock: another trainer may have finished it meanwhile
                if existing and existing.get("status") == "done" and not overwrite:
                    refused = "done"
                elif overwrite and existing and (existing.get("status") == "done"
                                                 or existing.get("identity") != trainer.identity):
                    run.clear()  # a finished or other-config run; an interrupted one of this config resumes
                    existing = None
                run.remove_partial_writes()
                config = OmegaConf.to_yaml(cfg, resolve=True) + "\n# resolved rung\n" + OmegaConf.to_yaml(
                    OmegaConf.create({"resolved_rung": json.loads(json.dumps(plan_to_dict_for(rung), default=str))}))
                if refused is None:
                    run.claim(config, trainer.identity)
                    run.write_version(trainer.data.fingerprint, str(trainer.device), torch.__version__)
            except LadderError as error:
                refused = error
        failed, done = distributed.all_reduce_sum([float(isinstance(refused, LadderError)), float(refused == "done")],
                                                  trainer.dist)  # what rank 0 found, every rank acts on
        try:
            if done:
                if trainer.dist.is_main:
                    print(format_summary(existing))
                return 0
            if failed:  # every rank stops, not only the one that was refused
                raise refused if isinstance(refused, LadderError) else LadderError("rank 0 could not claim the rung")
            return trainer.train()
        except Exception as error:  # before the loop (every checkpoint corrupt, a crash): say so where status looks
            if trainer.dist.is_main and refused is None and not trainer.marked:
                finished = {label: result for label, result in ((existing or {}).get("budgets") or {}).items()
                            if result.get("loss") is not None}  # what was measured stays in the summary
                progress = {**fresh_progress(), "results": finished}
                run.write_summary(trainer.summary("failed", progress, reason=str(error) if isinstance(
                    error, LadderError) else failure_reason(error)))
            raise
        finally:
            distributed.shutdown(trainer.dist)
