"""Model configurator: a size spec (the shape of one transformer) and the shape rule that picks one from a size.

The architecture is Llama-style (pre-RMSNorm, SwiGLU MLP, rotary positions, no biases). A spec is plain data; it is
built into a `transformers` model by `ladder.model.build`, and counted by `ladder.model.counting`.
"""

from __future__ import annotations

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


def _is_integer(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value.is_integer()


def _divisors(n: int) -> str:
    return ", ".join(str(k) for k in range(1, n + 1) if n % k == 0 and k <= 64)
