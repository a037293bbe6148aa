"""How the model is spread over ranks: one process, DDP (replicated), or FSDP2 (sharded, for rungs that do not fit
on one GPU). The loop asks only three things of it: the module to run, whether to sync gradients on this
micro-batch, and the full state to save or load."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from ladder.errors import require
from ladder.distributed import Dist


class Parallel:
    def __init__(self, model: torch.nn.Module, info: Dist, device: torch.device, fsdp: bool,
                 compile_backend: str | None):
        self.model, self.info, self.fsdp = model, info, fsdp and info.enabled
        require(not fsdp or info.enabled, "train.fsdp=true: FSDP needs several processes; launch with torchrun")
        if self.fsdp:
            from torch.distributed.fsdp import fully_shard
            for layer in model.model.layers:
                fully_shard(layer)
            fully_shard(model)
        self.compile_backend = compile_backend  # None: eager
        self.ddp = None
        module = model
        if info.enabled and not self.fsdp:
            from torch.nn.parallel import DistributedDataParallel
            module = self.ddp = DistributedDataParallel(model, device_ids=[info.local_rank] if device.type == "cuda"
                                                        else None)
        # DDP inside the compiled graph, as PyTorch documents it: the graph is split at DDP's gradient buckets, so
        # their all-reduce overlaps the rest of backward
        self.module = torch.compile(module, backend=compile_backend) if compile_backend else module

    def sync_context(self, last_micro_batch: bool):
        """Gradient accumulation: reduce across ranks on the last micro-batch only."""
        if self.fsdp:
            self.model.set_requires_gradient_sync(last_micro_batch)
            return nullcontext()
        if self.ddp is not None and not last_micro_batch:
            return self.ddp.no_sync()
        return nullcontext()

    def clip(self, max_norm: float) -> torch.Tensor:
        """Clip the gradients; their norm before clipping, left on the device (reading it would wait for the GPU)."""
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm

    def full_state(self, optimizer) -> tuple[dict, dict]:
        """Unsharded model and optimizer state (a collective under FSDP: every rank must call it)."""
        if not self.fsdp:
            return self.model.state_dict(), optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict
        return get_state_dict(self.model, optimizer, options=StateDictOptions(full_state_dict=True,
                                                                               cpu_offload=True))

    def full_model_state(self) -> dict:
        """Unsharded model weights only (a collective under FSDP)."""
        if not self.fsdp:
            return self.model.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
        return get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_full_state(self, optimizer, model_state: dict, optimizer_state: dict) -> None:
        if not self.fsdp:
            self.model.load_state_dict(model_state)
            optimizer.load_state_dict(optimizer_state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict
        set_state_dict(self.model, optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state,
                       options=StateDictOptions(full_state_dict=True))
