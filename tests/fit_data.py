"""Synthetic tables drawn from known laws, for recovery tests."""

import numpy as np

from ladder.fit.table import Table

TRUE = {"E": 1.8, "A": 400.0, "B": 2000.0, "alpha": 0.34, "beta": 0.37}


def chinchilla_loss(params, tokens, p=TRUE):
    return p["E"] + p["A"] / params ** p["alpha"] + p["B"] / tokens ** p["beta"]


def chinchilla_table(noise=0.003, seed=0, sizes=(2e7, 5e7, 1e8, 2e8, 5e8, 1e9, 2e9),
                     multiples=(0.5, 1, 2, 5, 10, 20), p=TRUE) -> Table:
    rng = np.random.default_rng(seed)
    params = np.repeat(np.array(sizes), len(multiples))
    tokens = params * 20 * np.tile(np.array(multiples), len(sizes))
    loss = chinchilla_loss(params, tokens, p) * np.exp(rng.normal(0, noise, params.size))
    rung = [f"n{int(n / 1e6)}m" for n in params]
    return Table({"rung": rung, "params": params, "tokens": tokens, "flops": 6 * params * tokens, "loss": loss})


def isoflop_table(budgets=(1e18, 1e19, 1e20, 1e21), n_sizes=9, noise=0.002, seed=0, p=TRUE) -> Table:
    rng = np.random.default_rng(seed)
    rows = []
    s = p["alpha"] + p["beta"]
    for c in budgets:
        n_opt = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / s) * (c / 6) ** (p["beta"] / s)
        for n in n_opt * np.geomspace(1 / 8, 8, n_sizes):
            d = c / (6 * n)
            rows.append((c, n, d, chinchilla_loss(n, d, p) * np.exp(rng.normal(0, noise))))
    budget, params, tokens, loss = map(np.array, zip(*rows))
    return Table({"budget": [f"{b:.0e}" for b in budget], "params": params, "tokens": tokens,
                  "flops": 6 * params * tokens, "loss": loss})
