"""The model configurator's rule: a parameter count -> a transformer shape (ModelSpec), searched so that embeddings
and rounding count exactly."""

from __future__ import annotations

import functools
import math

from ladder.errors import require
from ladder.model.counting import count_params
from ladder.model.spec import ModelSpec


@functools.lru_cache(maxsize=4096)  # pure; `ladder design` asks for the same sizes many times
def shape_for_params(target_params: float, vocab_size: int, seq_len: int, tie_embeddings: bool = False,
                     aspect_ratio: float = 128.0, head_dim: int = 64, where: str = "params") -> ModelSpec:
    """A shape whose total parameter count is within 2% of `target_params` (or the closest there is).

    Rule: heads of `head_dim`; width a multiple of head_dim; width / depth within a factor 2 of `aspect_ratio`, and
    among the shapes that hit the count, the one closest to that ratio. Kaplan et al. 2020 (Fig. 5) find loss nearly
    flat for d_model / n_layers between ~20 and ~200; 128 is what Llama-7B, OLMo-1B and OLMo-7B use, and head_dim 64
    is the common choice below 10B. Shapes are searched, not solved for, so embeddings and rounding count exactly.
    """
    require(target_params > 0, f"{where}={target_params}: must be positive")
    candidates = []  # (count gap, aspect gap, spec)
    for n_layers in range(1, 257):
        widths = range(max(1, math.floor(aspect_ratio * n_layers / 2 / head_dim)),
                       math.ceil(aspect_ratio * n_layers * 2 / head_dim) + 1)
        for n_heads in widths:
            spec = ModelSpec(d_model=n_heads * head_dim, n_layers=n_layers, n_heads=n_heads, head_dim=head_dim,
                             vocab_size=vocab_size, seq_len=seq_len, tie_embeddings=tie_embeddings)
            count_gap = abs(math.log(count_params(spec).total / target_params))
            candidates.append((count_gap, abs(math.log(spec.d_model / n_layers / aspect_ratio)), spec))
        if count_params(candidates[-len(widths)][2]).total > 2 * target_params:
            break  # the narrowest shape of this depth is already far too big
    close = [c for c in candidates if c[0] < 0.02] or [min(candidates, key=lambda c: c[0])]
    return min(close, key=lambda c: c[1])[2]
