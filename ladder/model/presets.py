"""Named shapes. A preset fixes the transformer's shape; the ladder supplies vocab_size, seq_len and tie_embeddings.

- `olmo-*`: the OLMo model ladder (Bhagia et al. 2024; OLMo 2 "peteish" shapes: SwiGLU hidden = 4 * d_model).
  `OLMO_PUBLISHED_PARAMS` is their N (all parameters but the input embedding, vocabulary 100352). Their blocks also
  have QK-norm, which this Llama-style architecture lacks: ours count 2 * d_model * n_layers fewer parameters.
- `pythia-*`: Pythia's depth, width and heads (Biderman et al. 2023); the MLP is SwiGLU at 8/3 * d_model, which
  matches the parameter count of Pythia's 4x GELU MLP.
- `tiny-*`: CPU-sized, named by their non-embedding parameters; they train in seconds to minutes on 2 cores.
"""

from __future__ import annotations

from ladder.errors import LadderError

PRESETS: dict[str, dict] = {
    "olmo-190m": dict(d_model=768, n_layers=12, n_heads=12, ffn_hidden=3072),
    "olmo-370m": dict(d_model=1024, n_layers=16, n_heads=16, ffn_hidden=4096),
    "olmo-760m": dict(d_model=1536, n_layers=16, n_heads=16, ffn_hidden=6144),
    "olmo-1b": dict(d_model=2048, n_layers=16, n_heads=16, ffn_hidden=8192),
    "olmo-7b": dict(d_model=4096, n_layers=32, n_heads=32, ffn_hidden=11008),
    "olmo-13b": dict(d_model=5120, n_layers=40, n_heads=40, ffn_hidden=13824),
    "pythia-14m": dict(d_model=128, n_layers=6, n_heads=4),
    "pythia-31m": dict(d_model=256, n_layers=6, n_heads=8),
    "pythia-70m": dict(d_model=512, n_layers=6, n_heads=8),
    "pythia-160m": dict(d_model=768, n_layers=12, n_heads=12),
    "pythia-410m": dict(d_model=1024, n_layers=24, n_heads=16),
    "pythia-1b": dict(d_model=2048, n_layers=16, n_heads=8),
    "tiny-14k": dict(d_model=24, n_layers=2, n_heads=2),
    "tiny-40k": dict(d_model=32, n_layers=3, n_heads=2),
    "tiny-111k": dict(d_model=48, n_layers=4, n_heads=3),
    "tiny-201k": dict(d_model=64, n_layers=4, n_heads=4),
    "tiny-665k": dict(d_model=96, n_layers=6, n_heads=6),
}

# N as the OLMo ladder counts it (olmo/scaling MODEL_PARAMS): all parameters except the input embedding.
OLMO_PUBLISHED_PARAMS = {
    "olmo-190m": 190354176,
    "olmo-370m": 371262464,
    "olmo-760m": 758220288,
    "olmo-1b": 1279395840,
    "olmo-7b": 6887575552,
    "olmo-13b": 13202396160,
}


def preset_shape(name: str, where: str) -> dict:
    if name not in PRESETS:
        raise LadderError(f"{where}={name!r}: unknown preset; use one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])
