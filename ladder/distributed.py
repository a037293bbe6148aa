"""One process or many under torchrun: rank, world size, threads, and the few collectives the loop needs."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ladder.hardware import owned_cpus


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> Dist:
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size == 1:
        return Dist()
    info = Dist(rank=int(os.environ["RANK"]), world_size=world_size, local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    return info


def set_threads(configured, info: Dist) -> int:
    """Two processes with 2 threads each on 2 cores run ~17x slower: share the owned CPUs among local ranks, and a
    lone process takes no more than OMP_NUM_THREADS where it is set (torch's own knob: whoever set it shares the
    cores with others). Under torchrun it is torchrun's default of 1, not a choice: the ranks' share stands."""
    threads = int(configured) if str(configured) != "auto" else max(1, owned_cpus() // info.local_world_size)
    if (str(configured) == "auto" and info.local_world_size == 1
            and os.environ.get("OMP_NUM_THREADS", "").isdigit()):
        threads = max(1, min(threads, int(os.environ["OMP_NUM_THREADS"])))
    torch.set_num_threads(threads)
    return threads


def all_reduce_sum(values: list[float], info: Dist) -> list[float]:
    if not info.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return tensor.cpu().tolist()


def barrier(info: Dist) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: Dist) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
