"""Corpora -> tokenized shards (prepare) -> deterministic batches (sampler)."""

from ladder.data.prepare import load_manifest, on_cluster, open_data, prepare, prepared

__all__ = ["Sampler", "TokenData", "load_manifest", "on_cluster", "open_data", "prepare", "prepared"]


def __getattr__(name: str):
    """The shards come as torch tensors: imported on first use, so planning and preparing never load torch."""
    if name in ("Sampler", "TokenData"):
        from ladder.data import shards
        return getattr(shards, name)
    raise AttributeError(f"module 'ladder.data' has no attribute {name!r}")
