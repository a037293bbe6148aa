"""Throughput of ladder's training loop against a plain PyTorch loop (nanoGPT-style: the same model, batch,
micro-batches and AdamW, no harness), in one run.

    python scripts/bench_train.py [SIZE] [--steps 60] [--device cpu|cuda] [--compile] [--seq-len N]

SIZE is a preset (default tiny-111k). On a GPU, e.g.: bench_train.py olmo-760m --device cuda --compile --seq-len 2048
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import open_dict

from ladder.config import compose_config
from ladder.data import Sampler, TokenData, prepare
from ladder.hardware import device_peak_flops
from ladder.model import flops_per_token
from ladder.model.build import build_model
from ladder.plan import make_plan
from ladder.distributed import set_threads, Dist
from ladder.train.loop import train_rung
from ladder.train.optim import make_optimizer
from ladder.rundir import RunDir
from omegaconf import OmegaConf


def configure(args, runs: Path):
    vocab = 256 if args.size.startswith("tiny") else 50304
    cfg = compose_config(["ladder=tiny", "recipe=porian", f"runs_dir={runs}", "logger.wandb=disabled",
                          "train.eval_points=0", "train.log_every=5", "train.checkpoint_every=1000000",
                          f"train.device={args.device}", f"train.compile={str(args.compile).lower()}",
                          f"ladder.seq_len={args.seq_len}", f"ladder.vocab_size={vocab}",
                          f"ladder.tie_embeddings={str(args.size.startswith('tiny')).lower()}"])
    with open_dict(cfg):
        cfg.ladder.sizes = {"bench": {"preset": args.size}}
        cfg.ladder.budgets = ["1"]  # replaced below once the batch is known
    rung = make_plan(cfg).rungs[0]
    with open_dict(cfg):
        cfg.ladder.budgets = [float(args.steps * rung.recipe.batch_tokens)]
    return cfg, make_plan(cfg).rungs[0]


def steady_throughput(records: list[dict], warmup_fraction: float = 0.3) -> float:
    main = [r for r in records if "loss" in r and "branch" not in r]
    start = main[int(len(main) * warmup_fraction)]
    end = main[-1]
    return (end["tokens"] - start["tokens"]) / (end["elapsed_s"] - start["elapsed_s"])


def reference_loop(cfg, rung, steps: int, device: torch.device, compile_model: bool) -> float:
    """The same work with nothing around it: contiguous batches, AdamW, clip, step."""
    data = TokenData(prepare(OmegaConf.to_container(cfg.data, resolve=True), progress=False))
    sampler = Sampler(data, rung.spec.seq_len, rung.recipe.batch_sequences, seed=0)
    model = build_model(rung.spec, seed=0).to(device)
    optimizer = make_optimizer(model, rung.recipe, fused=device.type == "cuda")
    train_model = torch.compile(model) if compile_model else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)
    micro = rung.recipe.micro_batch_sequences
    batches = [sampler.batch(s) for s in range(steps)]
    start_step = int(steps * 0.3)
    for step, (x, y) in enumerate(batches):
        if step == start_step:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad(set_to_none=True)
        for xm, ym in zip(x.split(micro), y.split(micro)):
            with autocast:
                logits = train_model(input_ids=xm).logits
                loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), ym.reshape(-1))
            (loss / rung.recipe.grad_accum_steps).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), rung.recipe.grad_clip)
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (steps - start_step) * rung.recipe.batch_tokens / (time.perf_counter() - started)


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
        cfg, rung = configure(args, Path(tmp) / "runs")
        threads = set_threads("auto", Dist())
        device = torch.device(args.device)
        ours, reference, plan = [], [], make_plan(cfg)
        for repeat in range(args.repeats):  # alternate, so warm-up and machine noise hit both alike
            reference.append(reference_loop(cfg, rung, args.steps, device, args.compile))
            runs = Path(tmp) / f"runs{repeat}"
            with open_dict(cfg):
                cfg.runs_dir = str(runs)
            train_rung(cfg, plan, rung)
            ours.append(steady_throughput(RunDir.of(runs, "tiny", rung.name).metrics()))
        ours, reference = max(ours), max(reference)
    peak = device_peak_flops(torch.cuda.get_device_name()) if device.type == "cuda" else None
    executed = flops_per_token(rung.spec, "porian")
    print(f"model {args.size}: {rung.counts.total / 1e6:.3g}M params, seq {rung.spec.seq_len}, batch "
          f"{rung.recipe.batch_sequences} x {rung.spec.seq_len} ({rung.recipe.grad_accum_steps} micro-batches of "
          f"{rung.recipe.micro_batch_sequences}), {args.steps} steps, {args.device}"
          f"{' bf16' if device.type == 'cuda' else ' fp32'}{' compiled' if args.compile else ''}, {threads} threads")
    for name, speed in (("ladder loop", ours), ("plain loop", reference)):
        mfu = f"  MFU {speed * executed / peak:.1%}" if peak else ""
        print(f"{name:12s} {speed:12,.0f} tokens/s{mfu}")
    print(f"ratio ladder/plain: {ours / reference:.3f}")


if __name__ == "__main__":
    main()
