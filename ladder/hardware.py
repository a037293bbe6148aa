"""Peak dense bf16 tensor-core throughput per accelerator, for MFU and GPU-hour estimates (vendor datasheets), and
the CPUs this process owns."""

from __future__ import annotations

import os

from ladder.errors import LadderError


def owned_cpus() -> int:
    """CPUs this process may run on (its affinity mask: Slurm and taskset set it), not the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1

PEAK_BF16_FLOPS = {
    "h100": 989.4e12,  # SXM
    "h100_pcie": 756e12,
    "h100_nvl": 835.5e12,
    "h200": 989.4e12,  # SXM
    "h200_nvl": 835.5e12,
    "b200": 2250e12,
    "a100": 312e12,
    "l40s": 362.05e12,
    "a10g": 70e12,
    "v100": 125e12,  # fp16 tensor cores; no bf16
}


def peak_flops(gpu: str, where: str = "hardware.gpu") -> float:
    key = gpu.lower()
    if key not in PEAK_BF16_FLOPS:
        raise LadderError(f"{where}={gpu!r}: unknown GPU; use one of {', '.join(PEAK_BF16_FLOPS)}")
    return PEAK_BF16_FLOPS[key]


def device_peak_flops(device_name: str) -> float | None:
    """Peak for a torch device name such as 'NVIDIA H100 80GB HBM3' or 'NVIDIA H100 PCIe' (the longest key that
    matches: PCIe and NVL boards are slower than SXM); None where unknown (e.g. CPUs)."""
    name = device_name.lower().replace(" ", "_")
    for key in sorted(PEAK_BF16_FLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_BF16_FLOPS[key]
    return None
