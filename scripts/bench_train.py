"""Throughput of ladder's training loop against a plain PyTorch loop (nanoGPT-style: the same model, batch,
micro-batches and AdamW, no harness), in one run.

    python scripts/bench_train.py [SIZE] [--steps 150] [--device cpu|cuda] [--compile] [--seq-len N]

SIZE is a preset (default tiny-111k). scripts/bench_gpu.py runs the same two loops over the OLMo shapes on a GPU.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from unittest.mock import patch

import torch
from omegaconf import OmegaConf, open_dict

from ladder.config import compose_config
from ladder.data import Sampler, TokenData, prepare
from ladder.distributed import Dist, set_threads
from ladder.hardware import device_peak_flops
from ladder.model import flops_per_token
from ladder.model.build import build_model
from ladder.plan import make_plan
from ladder.rundir import RunDir
from ladder.train.checkpoint import Checkpoints
from ladder.train.loop import train_rung
from ladder.train.loss import upcast_cross_entropy
from ladder.train.reporting import model_flops_utilization
from ladder.train.optim import make_optimizer

WARMUP_FRACTION = 0.3  # steps left out of the timing: the first ones (and compiling) are not the steady state


def configure(shape: str | dict, runs: Path, steps: int, device: str = "cpu", compile_model: bool = False,
              seq_len: int = 256, vocab_size: int | None = None, batch_sequences: int | None = None,
              micro_batch: int | None = None, extra: list[str] = ()):
    """A one-rung ladder of `shape` (a preset name or a shape mapping) training `steps` steps of its batch: the
    recipe's batch for the size, or `batch_sequences` (in micro-batches of `micro_batch`) when given."""
    tiny = isinstance(shape, str) and shape.startswith("tiny")
    vocab_size = vocab_size or (256 if tiny else 100352)
    overrides = ["ladder=tiny", "recipe=porian", f"runs_dir={runs}", "logger.wandb=disabled", "eval=[]",
                 "train.eval_points=0", "train.log_every=5", "train.checkpoint_every=1000000",
                 "train.save_budget_models=false", f"train.device={device}", f"train.compile={str(compile_model).lower()}",
                 f"ladder.seq_len={seq_len}", f"ladder.vocab_size={vocab_size}", f"ladder.tie_embeddings={str(tiny).lower()}",
                 *extra]
    if batch_sequences:
        overrides += [f"recipe.batch.base_sequences={batch_sequences}", "recipe.batch.exponent=0",
                      f"recipe.batch.ref_seq_len={seq_len}", f"recipe.micro_batch_sequences={micro_batch or batch_sequences}"]
    cfg = compose_config(overrides)
    with open_dict(cfg):
        cfg.ladder.sizes = {"bench": {"preset": shape} if isinstance(shape, str) else dict(shape)}
        cfg.ladder.budgets = ["1"]  # replaced below once the batch is known
    rung = make_plan(cfg).rungs[0]
    with open_dict(cfg):
        cfg.ladder.budgets = [float(steps * rung.recipe.batch_tokens)]
    plan = make_plan(cfg)
    return cfg, plan, plan.rungs[0]


def steady_throughput(records: list[dict]) -> float:
    main = [r for r in records if "loss" in r and "branch" not in r]
    start, end = main[int(len(main) * WARMUP_FRACTION)], main[-1]
    return (end["tokens"] - start["tokens"]) / (end["elapsed_s"] - start["elapsed_s"])


def peak_memory_reset(device: torch.device) -> None:
    if device.type == "cuda":
        gc.collect()  # the previous run's model and optimizer
        torch.cuda.empty_cache()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def ladder_loop(cfg, plan, rung, runs: Path, checkpoints: bool = True) -> tuple[float, float | None]:
    """(steady tokens/s, peak GPU memory in GiB) of `ladder train` on the rung. `checkpoints=False` leaves out the
    checkpoint the run writes at its end (13 GB at 760M, with its sha256): the loop is measured, not the disk."""
    device = torch.device(str(cfg.train.device))
    peak_memory_reset(device)
    with open_dict(cfg):
        cfg.runs_dir = str(runs)
    with ExitStack() as stack:
        if not checkpoints:
            stack.enter_context(patch.object(Checkpoints, "save", lambda *args, **kwargs: None))
        assert train_rung(cfg, plan, rung) == 0, "the ladder loop failed"
    return steady_throughput(RunDir.of(runs, plan.ladder, rung.name).metrics()), peak_memory_gb(device)


def reference_loop(cfg, rung, steps: int, device: torch.device, compile_model: bool) -> tuple[float, float | None]:
    """The same work with nothing around it: contiguous batches, AdamW, clip, step; (tokens/s, peak GiB)."""
    data = TokenData(prepare(OmegaConf.to_container(cfg.data, resolve=True), progress=False))
    sampler = Sampler(data, rung.spec.seq_len, rung.recipe.batch_sequences, seed=0)
    peak_memory_reset(device)
    model = build_model(rung.spec, seed=0).to(device)
    optimizer = make_optimizer(model, rung.recipe, fused=device.type == "cuda")
    train_model = torch.compile(model) if compile_model else model
    loss_of = torch.compile(upcast_cross_entropy) if compile_model else upcast_cross_entropy
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)
    micro = rung.recipe.micro_batch_sequences
    batches = [sampler.step_windows(s) for s in range(steps)]
    if device.type == "cuda":  # pinned, copied without waiting: the plain loop gets nanoGPT's transfer too
        batches = [b.pin_memory() for b in batches]
    start_step = int(steps * WARMUP_FRACTION)
    for step, windows in enumerate(batches):
        if step == start_step:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        windows = windows.to(device, non_blocking=True)
        x, y = windows[:, :-1], windows[:, 1:]
        optimizer.zero_grad(set_to_none=True)
        for xm, ym in zip(x.split(micro), y.split(micro)):
            with autocast:
                loss = loss_of(train_model(input_ids=xm).logits, ym)
            (loss / rung.recipe.grad_accum_steps).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), rung.recipe.grad_clip)
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    speed = (steps - start_step) * rung.recipe.batch_tokens / (time.perf_counter() - started)
    return speed, peak_memory_gb(device)


def mfu(tokens_per_s: float, rung, device: torch.device) -> float | None:
    peak = device_peak_flops(torch.cuda.get_device_name()) if device.type == "cuda" else None
    return model_flops_utilization(tokens_per_s, flops_per_token(rung.spec, "porian"), peak, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", nargs="?", default="tiny-111k")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each loop; the best counts")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--seq-len", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg, plan, rung = configure(args.size, Path(tmp) / "runs", args.steps, args.device, args.compile,
                                    args.seq_len, vocab_size=256 if args.size.startswith("tiny") else 50304)
        threads = set_threads("auto", Dist())
        device = torch.device(args.device)
        ours, reference = [], []
        for repeat in range(args.repeats):  # alternate, so warm-up and machine noise hit both alike
            reference.append(reference_loop(cfg, rung, args.steps, device, args.compile)[0])
            ours.append(ladder_loop(cfg, plan, rung, Path(tmp) / f"runs{repeat}")[0])
        ours, reference = max(ours), max(reference)
    print(f"model {args.size}: {rung.counts.total / 1e6:.3g}M params, seq {rung.spec.seq_len}, batch "
          f"{rung.recipe.batch_sequences} x {rung.spec.seq_len} ({rung.recipe.grad_accum_steps} micro-batches of "
          f"{rung.recipe.micro_batch_sequences}), {args.steps} steps, {args.device}"
          f"{' bf16' if device.type == 'cuda' else ' fp32'}{' compiled' if args.compile else ''}, {threads} threads")
    for name, speed in (("ladder loop", ours), ("plain loop", reference)):
        utilization = mfu(speed, rung, device)
        print(f"{name:12s} {speed:12,.0f} tokens/s" + (f"  MFU {utilization:.1%}" if utilization else ""))
    print(f"ratio ladder/plain: {ours / reference:.3f}")


if __name__ == "__main__":
    main()
