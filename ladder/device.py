"""Where a run computes: the device `train.device` names, and its autocast (used by training and evaluation)."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from ladder.errors import require


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    require(requested in ("cpu", "cuda"), f"train.device={requested!r}: use auto, cpu or cuda")
    require(requested == "cpu" or torch.cuda.is_available(), "train.device=cuda: no CUDA device here; use cpu")
    return torch.device(requested)


def autocast_for(device: torch.device, dtype: str):
    """bf16 autocast on CUDA unless train.dtype=fp32; fp32 on CPU."""
    if device.type == "cuda" and dtype in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def compile_wanted(setting, device: torch.device) -> bool:
    """train.compile: auto compiles on CUDA (where it pays: fused kernels, fewer launches), never on the CPU
    (minutes of compiling for a model that trains in seconds); true or false as given."""
    if str(setting) == "auto":
        return device.type == "cuda"
    return bool(setting)
