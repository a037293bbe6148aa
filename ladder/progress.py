"""Progress bars (tqdm) for the long waits: a sweep's rungs, a fit's bootstrap. Shown on a terminal only, on
stderr; logs, pipes and CI get none."""

from __future__ import annotations


def bar(total: float, description: str, unit: str = "it", unit_scale: bool = False):
    from tqdm import tqdm
    return tqdm(total=total, desc=description, unit=unit, unit_scale=unit_scale, disable=None, leave=False,
                dynamic_ncols=True)


def each(iterable, total: int, description: str, unit: str = "it"):
    """`iterable` with a bar over it (on a terminal)."""
    from tqdm import tqdm
    return tqdm(iterable, total=total, desc=description, unit=unit, disable=None, leave=False, dynamic_ncols=True)
