"""AdamW with weight decay on matrices only: not on norms, biases or the input embedding (as OLMo 2 does). An untied
output layer is a matrix like any other and decays; a tied one is the embedding and does not."""

from __future__ import annotations

import torch

from ladder.recipe import Recipe


def make_optimizer(model: torch.nn.Module, recipe: Recipe, fused: bool = False) -> torch.optim.AdamW:
    embedding = model.get_input_embeddings().weight
    decay, no_decay = [], []
    for param in model.parameters():  # shared (tied) tensors appear once
        (no_decay if param.ndim < 2 or param is embedding else decay).append(param)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=recipe.lr, betas=(recipe.beta1, recipe.beta2), eps=recipe.eps,
                             fused=fused or None)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
