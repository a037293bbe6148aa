"""A step's batch on the device. On CUDA the next step's windows are built on the host and copied from pinned
memory while the current step still runs on the GPU (the loop never waits for the GPU between steps, so the host
is free to); on the CPU the batch is read when it is needed. Batches are a pure function of the step, so a batch
fetched ahead for a step the loop does not take next (a cooldown branch starts) is simply dropped."""

from __future__ import annotations

import torch

from ladder.data import Sampler
from ladder.errors import require
from ladder.recipe import Recipe


def micro_batch(recipe: Recipe, world_size: int) -> int:
    """Sequences per micro-batch on each rank: the recipe's, or this rank's whole share when that is smaller; the
    share must split into equal micro-batches (gradient accumulation averages them)."""
    share = recipe.batch_sequences // world_size
    micro = min(recipe.micro_batch_sequences, share)
    require(recipe.batch_sequences % world_size == 0 and share % micro == 0,
            f"recipe: a batch of {recipe.batch_sequences} sequences does not split into equal micro-batches over "
            f"{world_size} ranks; change recipe.micro_batch_sequences or the number of processes")
    return micro


class DeviceBatches:
    def __init__(self, sampler: Sampler, device: torch.device, rank: int = 0, world_size: int = 1):
        self.sampler, self.device, self.rank, self.world_size = sampler, device, rank, world_size
        self.ahead: tuple[int, torch.Tensor] | None = None

    def _load(self, step: int) -> torch.Tensor:
        windows = self.sampler.step_windows(step, self.rank, self.world_size)
        if self.device.type != "cuda":
            return windows
        return windows.pin_memory().to(self.device, non_blocking=True)

    def prefetch(self, step: int) -> None:
        if self.device.type == "cuda":
            self.ahead = (step, self._load(step))

    def get(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) of `step`, each [sequences, seq_len], on the device."""
        windows = self.ahead[1] if self.ahead is not None and self.ahead[0] == step else self._load(step)
        self.ahead = None
        return windows[:, :-1], windows[:, 1:]
