"""Next-token cross-entropy in fp32 that never holds fp32 logits for a whole micro-batch.

`F.cross_entropy(logits.float())` keeps an fp32 copy of the logits and an fp32 log-softmax for backward: at a
100k vocabulary and 8k tokens per micro-batch that is 6.6 GB beside the 1.6 GB of bf16 logits. Compiled, Inductor
fuses the upcast away; eager, the loss and its gradient are computed together here, a chunk of tokens at a time in
fp32, and only the gradient (in the logits' dtype) is kept for backward. Small vocabularies, where chunks would save
nothing, take the plain path. A `FiniteWatch` notes a NaN without reading the loss back every step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CHUNK_ELEMENTS = 1 << 25  # fp32 logits per chunk: 128 MiB


class _ChunkedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, chunk_tokens: int) -> torch.Tensor:
        flat, flat_targets = logits.reshape(-1, logits.size(-1)), targets.reshape(-1)
        count = flat_targets.numel()
        grad = torch.empty_like(flat)
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        for start in range(0, count, chunk_tokens):
            part = flat[start:start + chunk_tokens].float()
            wanted = flat_targets[start:start + chunk_tokens].unsqueeze(1)
            log_probs = torch.log_softmax(part, dim=-1)
            total -= log_probs.gather(1, wanted).sum()
            probs = log_probs.exp_()  # d(mean loss)/d(logits) = (softmax - one-hot) / count
            probs.scatter_add_(1, wanted, torch.full_like(wanted, -1, dtype=probs.dtype))
            grad[start:start + chunk_tokens] = probs.div_(count)
        ctx.save_for_backward(grad)
        ctx.shape = logits.shape
        return total / count

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad, = ctx.saved_tensors
        return (grad * grad_output.to(grad.dtype)).view(ctx.shape), None, None


def upcast_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """Mean next-token loss in fp32 over every position of `logits` [..., vocab] against `targets` [...]."""
    chunk_tokens = max(1, chunk_elements // logits.size(-1))
    if targets.numel() <= chunk_tokens:
        return upcast_cross_entropy(logits, targets)
    return _ChunkedCrossEntropy.apply(logits, targets, chunk_tokens)


def loss_function(compile_backend: str | None):
    """The training loss: compiled beside a compiled model (Inductor fuses the upcast into the softmax and its
    gradient, so fp32 logits never exist, as OLMo-core's compiled loss does), else the chunked one."""
    return torch.compile(upcast_cross_entropy, backend=compile_backend) if compile_backend else cross_entropy


class FiniteWatch:
    """The first step whose loss or gradient norm was NaN or infinite, noted on the device (no host sync per step);
    `check` reads it at a sync point and raises, on every rank alike. A non-finite gradient reaches the weights
    even when that step's loss was finite, so both are watched."""

    def __init__(self, device: torch.device):
        self.step = torch.zeros((), dtype=torch.long, device=device)  # 0: every step so far was finite
        self.loss = torch.zeros((), device=device)
        self.grad_norm = torch.zeros((), device=device)

    def see(self, loss: torch.Tensor, grad_norm: torch.Tensor, step: int) -> None:
        first = (self.step == 0) & ~(torch.isfinite(loss) & torch.isfinite(grad_norm))
        self.step = torch.where(first, step + 1, self.step)
        self.loss = torch.where(first, loss, self.loss)
        self.grad_norm = torch.where(first, grad_norm.float(), self.grad_norm)

    def check(self, dist) -> None:
        from ladder import distributed

        step = int(self.step)
        anywhere, = distributed.all_reduce_sum([float(step > 0)], dist)
        if step:
            loss, grad_norm = float(self.loss), float(self.grad_norm)
            what = f"loss is {loss}" if not math.isfinite(loss) else f"the gradient norm is {grad_norm}"
            raise FloatingPointError(f"{what} at step {step}")
        if anywhere:
            raise FloatingPointError("the loss or gradient is not finite on another rank")
