"""Spec -> transformers config -> randomly initialised model. Nothing is ever downloaded."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ladder.model.spec import ModelSpec


def hf_config(spec: ModelSpec, init_std: float = 0.02) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=spec.vocab_size,
        hidden_size=spec.d_model,
        intermediate_size=spec.ffn_hidden,
        num_hidden_layers=spec.n_layers,
        num_attention_heads=spec.n_heads,
        num_key_value_heads=spec.n_kv_heads,
        head_dim=spec.head_dim,
        max_position_embeddings=spec.seq_len,
        tie_word_embeddings=spec.tie_embeddings,
        rms_norm_eps=1e-6,
        rope_theta=10_000.0,
        attention_bias=False,
        mlp_bias=False,
        initializer_range=init_std,
        attn_implementation="sdpa",
        use_cache=False,
    )


def build_model(spec: ModelSpec, device: str | torch.device = "cpu", seed: int | None = None) -> LlamaForCausalLM:
    """A freshly initialised model; `device="meta"` builds the structure without allocating weights."""
    if seed is not None:
        torch.manual_seed(seed)
    with torch.device(device):
        return LlamaForCausalLM(hf_config(spec))


def built_param_counts(model: torch.nn.Module) -> dict[str, int]:
    """Counts read off a built model (unique tensors), to check `count_params` against."""
    unique = {id(p): p for p in model.parameters()}
    embedding = model.get_input_embeddings().weight
    output = model.get_output_embeddings().weight
    total = sum(p.numel() for p in unique.values())
    output_count = 0 if output is embedding else output.numel()
    return {"total": total, "embedding": embedding.numel(), "output": output_count,
            "non_embedding": total - embedding.numel() - output_count}
