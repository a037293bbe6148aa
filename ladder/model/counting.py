"""Exact parameter counts and training FLOPs per token, in named conventions.

Parameter conventions (all exact for the built model; tied embeddings counted once):
- `total`: every parameter.
- `non_embedding`: total minus the input embedding and the output layer (Kaplan et al. 2020).
- `olmo`: total minus the input embedding only (the N of the OLMo ladder, Bhagia et al. 2024).

FLOPs-per-token conventions (training = forward + backward = 3x forward):
- `chinchilla_6nd`: 6 * total params (Hoffmann et al. 2022). The default.
- `kaplan_6nd`: 6 * non-embedding params (Kaplan et al. 2020).
- `porian`: 6 * (non-embedding + output layer) + 6 * n_layers * seq_len * d_model for attention scores
  (Porian et al. 2024 show that leaving these out biases the compute-optimal exponent at small scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ladder.errors import LadderError, require
from ladder.model.spec import ModelSpec


class ParamCount(StrEnum):
    """Which parameters N counts. Each member is also the name of its column in summary.json and in collected
    tables, so `table[ParamCount.olmo]` is the OLMo count; configs may name either (`olmo` or `olmo_params`)."""
    total = "params"
    non_embedding = "non_embedding_params"
    olmo = "olmo_params"

    @classmethod
    def named(cls, value, field: str) -> ParamCount:
        """The convention a config value names (`non_embedding` or its column `non_embedding_params`)."""
        for member in cls:
            if value == member.name or value == member.value:
                return member
        names = ", ".join(member.name for member in cls)
        if value is None:
            raise LadderError(f"{field}: missing; name the parameter count, one of {names} (e.g. {field}=total)")
        raise LadderError(f"{field}={value!r}: unknown parameter count; use one of {names}")

    @classmethod
    def of_column(cls, column: str) -> ParamCount | None:
        """The convention whose column `column` is; None for a column of the user's own."""
        return next((member for member in cls if member.value == column), None)

    def describe(self) -> str:
        return f"{self.name} parameters (column {self.value!r})"

FLOPS_CONVENTIONS = ("chinchilla_6nd", "kaplan_6nd", "porian")
DEFAULT_FLOPS_CONVENTION = "chinchilla_6nd"


@dataclass(frozen=True)
class ParamCounts:
    total: int
    embedding: int  # the input embedding
    output: int  # the output layer (0 when tied to the input embedding)
    non_embedding: int

    @property
    def olmo(self) -> int:
        return self.total - self.embedding

    def by_convention(self, convention: ParamCount | str) -> int:
        return getattr(self, ParamCount.named(convention, "params convention").name)

    def to_dict(self) -> dict:
        """Every count under its column name (summary.json's and the collected table's)."""
        return {ParamCount.total.value: self.total, ParamCount.non_embedding.value: self.non_embedding,
                "embedding_params": self.embedding, "output_params": self.output, ParamCount.olmo.value: self.olmo}


def count_params(spec: ModelSpec) -> ParamCounts:
    d, q_dim, kv_dim = spec.d_model, spec.n_heads * spec.head_dim, spec.n_kv_heads * spec.head_dim
    attention = d * q_dim + 2 * d * kv_dim + q_dim * d
    mlp = 3 * d * spec.ffn_hidden
    norms = 2 * d
    non_embedding = spec.n_layers * (attention + mlp + norms) + d  # + the final norm
    embedding = spec.vocab_size * d
    output = 0 if spec.tie_embeddings else spec.vocab_size * d
    return ParamCounts(total=non_embedding + embedding + output, embedding=embedding, output=output,
                       non_embedding=non_embedding)


def flops_per_token(spec: ModelSpec, convention: str = DEFAULT_FLOPS_CONVENTION) -> int:
    require(convention in FLOPS_CONVENTIONS,
            f"flops_convention={convention!r} unknown; use one of {', '.join(FLOPS_CONVENTIONS)}")
    counts = count_params(spec)
    if convention == "chinchilla_6nd":
        return 6 * counts.total
    if convention == "kaplan_6nd":
        return 6 * counts.non_embedding
    output_layer = spec.vocab_size * spec.d_model  # a matmul even when its weights are tied
    return 6 * (counts.non_embedding + output_layer) + 6 * spec.n_layers * spec.seq_len * spec.d_model


def all_flops_per_token(spec: ModelSpec) -> dict[str, int]:
    return {convention: flops_per_token(spec, convention) for convention in FLOPS_CONVENTIONS}
