"""The GPU check in one call: ladder's training loop on three OLMo-ladder shapes, eager and compiled, beside a
plain PyTorch loop on the same model and batch, offline (the embedded corpus), in a few minutes on one GPU.

    python scripts/bench_gpu.py          # one CUDA GPU: ~60M, olmo-190m, olmo-760m at seq 2048, bf16
    python scripts/bench_gpu.py --cpu    # the same path on the CPU with tiny shapes (CI runs this)

Prints per shape and mode: tokens/s of both loops and their ratio, MFU against the card's dense bf16 peak, peak GPU
memory, and how often per step the ladder loop made the host wait for the GPU (torch's sync debug mode: logged steps,
evaluations and checkpoints should be the only ones); with 2 GPUs or more, also a 2-rank DDP run of the middle shape
against one GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import configure, ladder_loop, mfu, reference_loop, steady_throughput  # noqa: E402

from ladder.report import format_table, human  # noqa: E402
from ladder.rundir import RunDir  # noqa: E402

# ~60M in OLMo's count (all but the input embedding: 19M in blocks, 39M in the output layer), then two OLMo presets
GPU_SHAPES = {"olmo-60m": dict(d_model=384, n_layers=8, n_heads=6, ffn_hidden=1536), "olmo-190m": "olmo-190m",
              "olmo-760m": "olmo-760m"}
GPU_MICRO = {"olmo-60m": 8, "olmo-190m": 8, "olmo-760m": 4}  # sequences of 2048 per micro-batch (an 80 GB card)
CPU_SHAPES = {"tiny-40k": "tiny-40k"}


def run(args) -> list[dict]:
    device = torch.device("cpu" if args.cpu else "cuda")
    shapes = CPU_SHAPES if args.cpu else GPU_SHAPES
    seq_len = 64 if args.cpu else 2048
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("LADDER_CACHE", str(Path(tmp) / "cache"))  # the corpus, prepared once
        for name, shape in shapes.items():
            micro = 4 if args.cpu else GPU_MICRO[name]
            for mode in args.modes:
                compiled = mode == "compiled"
                torch._dynamo.reset()  # each row compiles for itself
                cfg, plan, rung = configure(shape, Path(tmp) / "runs", args.steps, device.type, compiled, seq_len,
                                            batch_sequences=2 * micro, micro_batch=micro,
                                            extra=["data.max_documents=1500", "data.max_epochs=1000"])
                started = time.time()
                plain, plain_gb = reference_loop(cfg, rung, args.steps, device, compiled)
                with count_syncs(device) as syncs:
                    ours, ours_gb = ladder_loop(cfg, plan, rung, Path(tmp) / f"runs-{name}-{mode}", checkpoints=False)
                rows.append({"shape": name, "params": rung.counts.total, "mode": mode, "ladder_tokens_per_s": ours,
                             "plain_tokens_per_s": plain, "ratio": ours / plain, "mfu": mfu(ours, rung, device),
                             "plain_mfu": mfu(plain, rung, device), "peak_gb": ours_gb, "plain_peak_gb": plain_gb,
                             "batch_tokens": rung.recipe.batch_tokens, "seconds": time.time() - started,
                             "syncs_per_step": len(syncs) / args.steps if device.type == "cuda" else None})
                print(f"{name} {mode}: {ours:,.0f} tokens/s against {plain:,.0f} ({time.time() - started:.0f} s)",
                      flush=True)
        if not args.cpu and torch.cuda.device_count() >= 2:
            rows.append(ddp_check(list(shapes.items())[1], Path(tmp), args.steps, seq_len))
    return rows


@contextmanager
def count_syncs(device: torch.device):
    """Every operation that made the host wait for the GPU during the block (torch's sync debug mode), as a list
    filled when the block ends: ladder's loop should wait only at logged steps, evaluations and checkpoints."""
    found: list[str] = []
    if device.type != "cuda":
        yield found
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield found
        finally:
            torch.cuda.set_sync_debug_mode("default")
    found += [str(w.message) for w in caught if "synchroniz" in str(w.message)]


def ddp_check(named_shape, tmp: Path, steps: int, seq_len: int) -> dict:
    """`ladder train` of one shape on 2 GPUs (torchrun, DDP) against the same global batch on one."""
    name, shape = named_shape
    micro = GPU_MICRO[name]
    cfg, plan, rung = configure(shape, tmp / "ddp", steps, "cuda", True, seq_len, batch_sequences=4 * micro,
                                micro_batch=micro, extra=["data.max_documents=1500", "data.max_epochs=1000"])
    one, _ = ladder_loop(cfg, plan, rung, tmp / "ddp-one", checkpoints=False)
    config = tmp / "ddp.json"
    config.write_text(json.dumps({"shape": shape, "steps": steps, "seq_len": seq_len, "micro": micro}))
    runs = tmp / "ddp-two"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(Path(__file__)),
               "--ddp-rank", str(config), str(runs)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    two = steady_throughput(RunDir.of(runs, plan.ladder, rung.name).metrics())
    return {"shape": f"{name} DDP x2", "params": rung.counts.total, "mode": "compiled", "ladder_tokens_per_s": two,
            "plain_tokens_per_s": one, "ratio": two / one, "mfu": mfu(two / 2, rung, torch.device("cuda")),
            "plain_mfu": mfu(one, rung, torch.device("cuda")), "peak_gb": None, "plain_peak_gb": None,
            "batch_tokens": rung.recipe.batch_tokens, "seconds": None}


def ddp_rank(config_path: str, runs: str) -> None:
    """One rank of the DDP check (under torchrun)."""
    from unittest.mock import patch

    from ladder.train.checkpoint import Checkpoints
    from ladder.train.loop import train_rung
    spec = json.loads(Path(config_path).read_text())
    cfg, plan, rung = configure(spec["shape"], Path(runs), spec["steps"], "cuda", True, spec["seq_len"],
                                batch_sequences=4 * spec["micro"], micro_batch=spec["micro"],
                                extra=["data.max_documents=1500", "data.max_epochs=1000"])
    with patch.object(Checkpoints, "save", lambda *args, **kwargs: None):  # the loop is measured, not the disk
        sys.exit(train_rung(cfg, plan, rung))


def report(rows: list[dict], device: torch.device) -> str:
    name = "CPU" if device.type == "cpu" else torch.cuda.get_device_name()
    body = [[r["shape"], human(r["params"]), r["mode"], f"{r['ladder_tokens_per_s']:,.0f}",
             f"{r['plain_tokens_per_s']:,.0f}", f"{r['ratio']:.3f}",
             "" if r["mfu"] is None else f"{r['mfu']:.1%}", "" if r["plain_mfu"] is None else f"{r['plain_mfu']:.1%}",
             "" if r["peak_gb"] is None else f"{r['peak_gb']:.1f}",
             "" if r["plain_peak_gb"] is None else f"{r['plain_peak_gb']:.1f}",
             "" if r.get("syncs_per_step") is None else f"{r['syncs_per_step']:.2f}"] for r in rows]
    table = format_table(["shape", "params", "mode", "ladder tok/s", "plain tok/s", "ratio", "MFU", "plain MFU",
                          "peak GiB", "plain GiB", "syncs/step"], body)
    return f"bench_gpu on {name} (torch {torch.__version__}), {rows[0]['batch_tokens']:,} tokens per step\n\n{table}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="tiny shapes on the CPU: the same code path, in minutes")
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default 25 on a GPU, 12 on the CPU)")
    parser.add_argument("--modes", default="eager,compiled", help="eager, compiled or both (comma-separated)")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--ddp-rank", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ddp_rank:
        return ddp_rank(*args.ddp_rank)
    if not args.cpu and not torch.cuda.is_available():
        sys.exit("bench_gpu: no CUDA GPU here; run with --cpu to check the same code path on the CPU")
    args.steps = args.steps or (12 if args.cpu else 25)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not set(args.modes) <= {"eager", "compiled"}:
        sys.exit(f"bench_gpu: --modes={','.join(args.modes)}: use eager, compiled or both")
    rows = run(args)
    print(report(rows, torch.device("cpu" if args.cpu else "cuda")))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
