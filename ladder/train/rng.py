"""Every random number generator's state, saved in a checkpoint and restored on resume, as tensors and numbers so
that a checkpoint loads with torch.load(weights_only=True)."""

from __future__ import annotations

import random

import numpy as np
import torch


def rng_state() -> dict:
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, python_state, python_gauss = random.getstate()
    return {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
            "numpy": [int(pos), int(has_gauss), float(gauss)], "python_version": version,
            "python": torch.tensor(python_state, dtype=torch.int64), "python_gauss": python_gauss}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    pos, has_gauss, gauss = state["numpy"]
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate((state["python_version"], tuple(int(v) for v in state["python"].tolist()),
                     state["python_gauss"]))
