"""Corpora -> tokenized shards (prepare) -> deterministic batches (sampler)."""

from ladder.data.prepare import load_manifest, on_cluster, open_data, prepare, prepared
from ladder.data.shards import Sampler, TokenData

__all__ = ["Sampler", "TokenData", "load_manifest", "on_cluster", "open_data", "prepare", "prepared"]
