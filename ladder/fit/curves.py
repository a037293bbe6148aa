"""A point on a loss curve, placed by its learning-rate history: what the curve law (`law=curve`) reads.

Two numbers summarise the schedule up to a point, both computed from the recipe by the training loop's own schedule
functions (`ladder.schedule`), never from a second copy of the schedule:
- `lr_area_tokens`: the tokens trained so far, each weighted by its step's LR relative to the peak (the schedule's
  forward area, Tissue et al. 2024; equal to the tokens seen after warmup under a constant LR);
- `lr_frac`: the LR of the last step taken, relative to the peak (0 at the end of a cooldown to zero).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ladder.errors import require
from ladder.schedule import fork_step, step_factors

SCHEDULE_COLUMNS = ("lr_area_tokens", "lr_frac")


def schedule_columns(recipe: dict, budget_tokens: dict[str, float], tokens, branches=None) -> dict[str, np.ndarray]:
    """`lr_area_tokens` and `lr_frac` of points `tokens` into a run of `recipe` (batch_tokens, warmup_steps,
    schedule) trained for `budget_tokens`; `branches` names the WSD-S cooldown each point is on (None: the main run
    or a run that decays to its one budget)."""
    batch = int(recipe["batch_tokens"])
    budget_steps = {label: int(t) // batch for label, t in budget_tokens.items()}
    steps = (np.asarray(tokens, dtype=float) // batch).astype(int)
    branches = [None] * len(steps) if branches is None else [b or None for b in branches]
    area, frac = np.zeros(len(steps)), np.ones(len(steps))
    for branch in set(branches):
        rows = [i for i, b in enumerate(branches) if b == branch]
        require(branch is None or branch in budget_steps, f"budget {branch!r}: not one of the run's budgets "
                                                          f"{', '.join(budget_steps)}")
        factors = np.array(step_factors(budget_steps, int(recipe["warmup_steps"]), recipe["schedule"],
                                        int(steps[rows].max()), branch))
        cumulative = np.concatenate([[0.0], np.cumsum(factors)])
        area[rows] = cumulative[steps[rows]] * batch
        frac[rows] = [factors[s - 1] if s > 0 else 0.0 for s in steps[rows]]
    return {"lr_area_tokens": area, "lr_frac": frac}


def run_schedule(run_path: str | Path) -> tuple[dict, dict] | None:
    """(recipe, budget tokens) a ladder run directory recorded in its config.yaml; None if it has none."""
    import yaml

    config = Path(run_path) / "config.yaml"
    if not config.exists():
        return None
    rung = (yaml.safe_load(config.read_text()) or {}).get("resolved_rung") or {}
    if "recipe" not in rung or "budgets" not in rung:
        return None
    return rung["recipe"], {label: float(t) for label, t in rung["budgets"].items()}


def run_path(recipe: dict, budget_tokens: dict[str, float], n_points: int = 48) -> dict[str, np.ndarray]:
    """Points along one run of `recipe` to its last budget, as a trainer would evaluate it: `n_points` evenly spaced
    in steps, the last at the budget; a WSD-S run's points past the last fork lie on that budget's cooldown."""
    batch = int(recipe["batch_tokens"])
    label, last = max(budget_tokens.items(), key=lambda item: item[1])
    end = int(last) // batch
    steps = np.unique(np.linspace(0, end, n_points + 1).round().astype(int)[1:])
    steps = steps[steps > 0]  # a short run has fewer steps than points
    fork = fork_step(end, recipe["schedule"]) if recipe["schedule"]["name"] == "wsds" else end
    tokens = steps * batch
    branches = [label if s > fork else None for s in steps]
    return {"tokens": tokens.astype(float), **schedule_columns(recipe, budget_tokens, tokens, branches)}


def curve_forecast(law, params: float, path: dict[str, np.ndarray], name: str = "target") -> dict:
    """The law's forecast along `path` (run_path's points) for a model of `params`: fit.json's `curve` entry, with
    the covariance of the log forecast between the points (`log_cov`), what `ladder watch` conditions on."""
    from ladder.fit.table import Table

    points = Table({"params": np.full(len(path["tokens"]), float(params)), **path})
    point, draws, band, dist = law.log_draws(points)
    prediction = law.prediction(point, draws, band, dist)
    shared, point_sd = log_covariance(law, point, band, dist, np.log(points["lr_area_tokens"]))
    sd = np.sqrt(np.diag(shared) + point_sd ** 2)
    z = normal_quantile(law.ci_level)
    log_value = np.log(prediction.value)
    return {"name": name, "params": float(params), "tokens": path["tokens"].tolist(),
            "lr_area_tokens": path["lr_area_tokens"].tolist(), "lr_frac": path["lr_frac"].tolist(),
            "value": prediction.value.tolist(), "lo": np.exp(log_value - z * sd).tolist(),
            "hi": np.exp(log_value + z * sd).tolist(), "band_lo": _list(prediction.band_lo),
            "band_hi": _list(prediction.band_hi), "level": law.ci_level, "log_cov": shared.tolist(),
            "point_sd": point_sd}


def log_covariance(law, point: np.ndarray, band: np.ndarray | None, dist: np.ndarray,
                   log_area: np.ndarray) -> tuple[np.ndarray, float]:
    """(covariance of the log forecast between `points` of one run that they share, each point's own sd). Shared:
    the coefficients' bootstrap band, the extrapolation error (one draw for the whole run, scaled by each point's
    distance), how far one run sits off the law at its end and how far it wanders from there back along the run
    (`law.run_effects_`, at each point's log schedule area `log_area`). Its own: an evaluation's scatter about its
    run's curve. The band's part is its spread about the `point` forecast, not about its own mean: where
    the resamples leave the fit's optimum (a coefficient on its bound, a flat valley), the band is centred elsewhere,
    and the Gaussian band about the point must reach that far."""
    m = len(dist)
    if band is not None and len(band) > 1:
        deviation = band - point[None, :]
        cov = np.atleast_2d(deviation.T @ deviation / (len(band) - 1))
    else:
        cov = np.zeros((m, m))
    if law.error_ is not None:
        error = law.error_
        t_var = error.dof / (error.dof - 2) if error.dof > 2 else 3.0
        cov = cov + t_var * error.kappa ** 2 * np.outer(dist, dist)
    effects = law.run_effects_
    to_end = log_area.max() - log_area  # the walk is anchored at the run's end (`run_effects`)
    return cov + effects["level_sd"] ** 2 + effects["walk_sd"] ** 2 * np.minimum.outer(to_end, to_end), \
        effects["point_sd"]


def normal_quantile(level: float) -> float:
    from scipy.stats import norm
    return float(norm.ppf(0.5 + level / 2))


def condition(mean: np.ndarray, shared: np.ndarray, point_sd: float, seen: np.ndarray, residual: np.ndarray,
              level: float):
    """The log forecast at every point given the run so far: Gaussian conditioning on the run's log residuals
    `residual` (observed minus forecast) at path indices `seen` (several may share an index). (mean, lo, hi) of what
    each point would measure."""
    z = normal_quantile(level)
    if len(seen) == 0:
        sd = np.sqrt(np.diag(shared) + point_sd ** 2)
        return mean, mean - z * sd, mean + z * sd
    seen_cov = shared[np.ix_(seen, seen)] + (point_sd ** 2 + 1e-12) * np.eye(len(seen))
    gain = np.linalg.solve(seen_cov, shared[seen]).T  # (points, seen)
    mean = mean + gain @ residual
    sd = np.sqrt(np.maximum(np.diag(shared) - np.einsum("ij,ji->i", gain, shared[seen]), 0.0) + point_sd ** 2)
    return mean, mean - z * sd, mean + z * sd


def _list(values) -> list | None:
    return None if values is None else np.asarray(values, dtype=float).tolist()


def target_paths(targets, recipe_cfg: dict, seq_len: int, n_points: int = 48):
    """(targets with their schedule columns, {name: run_path}) for the targets with a size: each trained under
    `recipe_cfg` (the recipe group, resolved for the target's size: its batch, warmup and schedule) for its tokens,
    as one budget. N in the table's convention stands for the recipe's."""
    from ladder.recipe import resolve_recipe

    paths = {}
    for i in np.flatnonzero(np.isfinite(np.asarray(targets["params"], dtype=float))):
        recipe = resolve_recipe(recipe_cfg, int(targets["params"][i]), int(seq_len), "recipe").to_dict()
        paths[str(targets["name"][i])] = run_path(recipe, {"target": float(targets["tokens"][i])}, n_points)
    return at_path_ends(targets, paths), paths


def at_path_ends(targets, paths: dict[str, dict]):
    """`targets` with each one's schedule columns where its run ends (NaN for a target without a path)."""
    from ladder.fit.table import Table

    names = [str(name) for name in targets["name"]]
    return Table({**targets.columns, **{column: [paths[n][column][-1] if n in paths else np.nan for n in names]
                                        for column in SCHEDULE_COLUMNS}})


def on_path(table) -> np.ndarray:
    """Rows of one run's collected evaluations (ladder collect curves=true) that lie on its path to its last budget:
    the main run's evaluations and that budget's end, not the other budgets' cooldown ends (WSD-S)."""
    finals = np.flatnonzero(table["final"] == 1)
    last = table["budget"][finals[np.argmax(table["tokens"][finals])]] if len(finals) else None
    return np.flatnonzero((table["final"] == 0) | (table["budget"] == last))
