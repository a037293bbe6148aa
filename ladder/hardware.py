"""Peak dense bf16 tensor-core throughput per accelerator, for MFU and GPU-hour estimates (vendor datasheets)."""

from __future__ import annotations

from ladder.errors import LadderError

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
