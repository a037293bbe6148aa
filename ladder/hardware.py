"""Peak dense bf16 tensor-core throughput per accelerator, for MFU and GPU-hour estimates (vendor datasheets)."""

from __future__ import annotations

from ladder.errors import LadderError

PEAK_BF16_FLOPS = {
    "h100": 989.4e12,  # SXM
    "h200": 989.4e12,
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
    """Peak for a torch device name such as 'NVIDIA H100 80GB HBM3'; None where unknown (e.g. CPUs)."""
    name = device_name.lower()
    for key in sorted(PEAK_BF16_FLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_BF16_FLOPS[key]
    return None
