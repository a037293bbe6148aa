"""Model configurator: a size spec (the shape of one transformer) and the shape rule that picks one from a size.

The architecture is Llama-style (pre-RMSNorm, SwiGLU MLP, rotary positions, no biases). A spec is plain data; it is
built into a `transformers` model by `ladder.model.build`, and counted by `ladder.model.counting`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, fields

from ladder.errors import LadderError, require


def swiglu_hidden(d_model: int, multiple_of: int = 16) -> int:
    """8/3 * d rounded up: a SwiGLU MLP with the parameter count of a 4x GELU MLP (Shazeer 2020, Llama)."""
    hidden = math.ceil(8 * d_model / 3)
    return multiple_of * math.ceil(hidden / multiple_of)


@dataclass(frozen=True)
class ModelSpec:
    d_model: int
    n_layers: int
    n_heads: int
    vocab_size: int
    seq_len: int
    head_dim: int = 0  # 0: d_model // n_heads
    n_kv_heads: int = 0  # 0: n_heads (no grouped-query attention)
    ffn_hidden: int = 0  # 0: swiglu_hidden(d_model)
    tie_embeddings: bool = False

    def __post_init__(self) -> None:
        # Resolve the derived defaults once so every consumer sees the same numbers.
        if self.n_heads > 0 and self.head_dim == 0 and self.d_model % self.n_heads == 0:
            object.__setattr__(self, "head_dim", self.d_model // self.n_heads)
        if self.n_kv_heads == 0:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        if self.ffn_hidden == 0 and self.d_model > 0:
            object.__setattr__(self, "ffn_hidden", swiglu_hidden(self.d_model))

    @classmethod
    def from_dict(cls, values: dict, where: str) -> "ModelSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        require(not unknown, f"{where}.{unknown[0] if unknown else ''}: unknown model field; "
                             f"use one of {', '.join(sorted(known))}")
        missing = [name for name in ("d_model", "n_layers", "n_heads", "vocab_size", "seq_len") if values.get(name) is None]
        require(not missing, f"{where}.{missing[0] if missing else ''}: missing; give it, or a preset or params")
        clean = {}
        for name, value in values.items():
            if value is None:
                continue
            if name == "tie_embeddings":
                require(isinstance(value, bool), f"{where}.tie_embeddings={value!r}: must be true or false")
                clean[name] = value
                continue
            require(_is_integer(value), f"{where}.{name}={value!r}: must be a whole number")
            clean[name] = int(value)
        spec = cls(**clean)
        spec.validate(where)
        return spec

    def validate(self, where: str) -> None:
        for name in ("d_model", "n_layers", "n_heads", "vocab_size", "seq_len"):
            value = getattr(self, name)
            require(value > 0, f"{where}.{name}={value}: must be a positive integer")
        if self.head_dim == 0:
            raise LadderError(
                f"{where}.n_heads={self.n_heads} does not divide d_model={self.d_model}; "
                f"pick n_heads among {_divisors(self.d_model)} or set {where}.head_dim")
        require(self.head_dim > 0 and self.head_dim % 2 == 0,
                f"{where}.head_dim={self.head_dim}: must be a positive even number (rotary embeddings pair dims)")
        require(self.n_kv_heads > 0 and self.n_heads % self.n_kv_heads == 0,
                f"{where}.n_kv_heads={self.n_kv_heads} must divide n_heads={self.n_heads}")
        require(self.ffn_hidden > 0, f"{where}.ffn_hidden={self.ffn_hidden}: must be a positive integer")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def shape(self) -> str:
        return f"d{self.d_model} L{self.n_layers} H{self.n_heads}"


@functools.lru_cache(maxsize=4096)  # pure; `ladder design` asks for the same sizes many times
def shape_for_params(target_params: float, vocab_size: int, seq_len: int, tie_embeddings: bool = False,
                     aspect_ratio: float = 128.0, head_dim: int = 64, where: str = "params") -> ModelSpec:
    """A shape whose total parameter count is within 2% of `target_params` (or the closest there is).

    Rule: heads of `head_dim`; width a multiple of head_dim; width / depth within a factor 2 of `aspect_ratio`, and
    among the shapes that hit the count, the one closest to that ratio. Kaplan et al. 2020 (Fig. 5) find loss nearly
    flat for d_model / n_layers between ~20 and ~200; 128 is what Llama-7B, OLMo-1B and OLMo-7B use, and head_dim 64
    is the common choice below 10B. Shapes are searched, not solved for, so embeddings and rounding count exactly.
    """
    from ladder.model.counting import count_params

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


def _is_integer(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value.is_integer()


def _divisors(n: int) -> str:
    return ", ".join(str(k) for k in range(1, n + 1) if n % k == 0 and k <= 64)
