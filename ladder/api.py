"""The notebook API: the CLI's stages as three functions on pandas DataFrames.

    from ladder.api import collect, fit, plan
    runs = collect("runs/tiny")                        # a DataFrame: one row per (rung, budget)
    law = fit(runs, law="chinchilla", target={"params": 7e9, "tokens": 1.4e11})
    law.coefficients, law.intervals, law.forecasts     # dict; DataFrames
    law.predict(params=[1e9, 7e9], tokens=[2e10, 1.4e11]); law.plots("fits/tiny")
    curve = fit(runs_dir, law="curve", target={"params": 7e9, "tokens": 1.4e11})
    curve.curves                                       # the target's whole run: tokens, lr_frac, value, lo, hi
    watch(curve, "runs/big-run")                       # a run (dir, CSV, W&B path) against that band

Each composes the same config as the command line (`overrides`: the CLI's key=value strings), so a notebook and a
`ladder fit` of the same data agree to the last digit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ladder.errors import require


def _config(overrides):
    from omegaconf import OmegaConf

    from ladder.config import compose_config
    cfg = compose_config(list(overrides))
    return cfg, (lambda node: OmegaConf.to_container(node, resolve=True))


def plan(ladder: str = "tiny", overrides=()):
    """The resolved ladder (rungs, shapes, recipes, budgets, cost) as `ladder plan` prints it."""
    from ladder.plan import make_plan
    cfg, _ = _config([f"ladder={ladder}", *overrides])
    return make_plan(cfg)


def collect(runs: str | Path, curves: bool = False, overrides=()):
    """Every finished budget below a runs directory (a runs dir, a ladder's, one rung's) as a DataFrame, the same
    table `ladder collect` writes with the same `overrides`: a rung of that ladder that finished with another
    configuration is left out (and said so) unless collect.include_changed=true."""
    from ladder.fit.collect import collect_runs, include_changed
    from ladder.plan import make_plan
    cfg, _ = _config(list(overrides))
    return collect_runs(runs, curves, make_plan(cfg), include_changed(cfg.collect.include_changed)).to_frame()


@dataclass
class Fit:
    """A fitted law: its coefficients with intervals, the forecast of each target, and fit.json's whole content
    (`summary`). `law` is the fitted estimator itself (fit(table) -> predict(points))."""

    law: object
    table: object  # the ladder Table it was fitted on
    summary: dict
    written: list[Path] = field(default_factory=list)

    @property
    def params_used(self) -> str:
        """What N counts in this fit (the one choice: a ladder's convention, or the table's column)."""
        return str(self.summary.get("params_used", ""))

    @property
    def coefficients(self) -> dict[str, float]:
        return dict(self.summary["coefficients"])

    @property
    def intervals(self):
        """One row per coefficient: value, lo, hi at the fit's ci_level (bootstrap percentiles)."""
        import pandas as pd
        ci = self.summary.get("ci") or {}
        return pd.DataFrame([{"coefficient": name, "value": value, "lo": ci.get(name, [np.nan, np.nan])[0],
                              "hi": ci.get(name, [np.nan, np.nan])[1]} for name, value in self.coefficients.items()])

    @property
    def forecasts(self):
        """The targets' forecasts (value and its predictive interval), as predictions.csv holds them."""
        import pandas as pd
        return pd.DataFrame(self.summary.get("predictions") or [])

    @property
    def warnings(self) -> list[str]:
        return list(self.summary.get("warnings") or [])

    def predict(self, params, tokens):
        """Forecasts at any (N, D) points, intervals included."""
        import pandas as pd

        from ladder.fit.table import Table
        n, d = np.broadcast_arrays(np.atleast_1d(np.asarray(params, float)), np.atleast_1d(np.asarray(tokens, float)))
        points = Table({"params": n, "tokens": d, "flops": 6 * n * d})
        rows = []
        for prediction in self.law.predict_all(points):
            rows += [{"params": n[i], "tokens": d[i], "metric": prediction.metric, "value": prediction.value[i],
                      "lo": prediction.lo[i], "hi": prediction.hi[i]} for i in range(len(n))]
        return pd.DataFrame(rows)

    @property
    def curves(self):
        """law=curve: each target's forecast curve under the recipe's schedule, one row per point (target, tokens,
        lr_frac (the LR relative to its peak), value, lo, hi at the fit's ci_level), as fit.json `curves` has them."""
        import pandas as pd
        require("curves" in self.summary, f"Fit.curves: law {self.summary.get('law')} forecasts no curve; fit with "
                                          f"law=\"curve\"")
        return pd.DataFrame([{"target": c["name"], "tokens": t, "lr_frac": lr, "value": v, "lo": lo, "hi": hi}
                             for c in self.summary.get("curves") or []
                             for t, lr, v, lo, hi in zip(c["tokens"], c["lr_frac"], c["value"], c["lo"], c["hi"])])

    def plots(self, directory: str | Path) -> list[Path]:
        """The fit's plots (PNG) under `directory`."""
        from ladder.fit.plots import plot_fit
        return plot_fit(self.law, self.table, self.summary, Path(directory))


def fit(data, law: str = "chinchilla", target: dict | None = None, *, columns: dict | None = None,
        bootstrap: int | None = None, seed: int | None = None, ci_level: float | None = None, overrides=()) -> Fit:
    """Fit `law` to `data` (a DataFrame, a CSV path or a runs directory) and forecast `target` ({"params": N,
    "tokens": D} or {"flops": C}), as `ladder fit` does: N is the ladder's `ladder.params_convention` count for a
    table ladder collected, else the `params` column (`columns` renames, canonical -> yours, as `columns.*`);
    `fit.exclude`, `backtest`, `law.task` and the rest come from `overrides`; `bootstrap`, `seed` and `ci_level`
    default to the config's."""
    import pandas as pd

    from ladder.fit.checks import exclude_runs
    from ladder.fit.collect import collect_runs, include_changed, is_collected, params_column
    from ladder.fit.forecast import fit_and_forecast, input_columns, resolve_targets
    from ladder.fit.laws import LAWS
    from ladder.fit.table import Table, flops_per_nd, standard_table

    cfg, plain = _config([f"law={law}", *overrides])
    law_options = plain(cfg.law)
    require(law_options.get("name") in LAWS, f"law={law}: use one of {', '.join(LAWS)}")
    names = input_columns({**plain(cfg.columns), **(columns or {})}, law_options)
    law_class = LAWS[law_options["name"]]
    if isinstance(data, pd.DataFrame):
        raw, source = Table.from_frame(data), "a DataFrame"
    elif Path(data).is_dir():
        from ladder.plan import make_plan
        raw = collect_runs(data, bool(cfg.curves or law_class.reads_curves), make_plan(cfg),
                           include_changed(cfg.collect.include_changed))
        source = str(data)
    else:
        raw, source = Table.read_csv(data), str(data)
    explicit = "params" in (columns or {}) or any(o.lstrip("+").startswith("columns.params=") for o in overrides)
    names["params"], params_used = params_column(cfg.ladder.get("params_convention"), is_collected(raw.columns),
                                                 names["params"], explicit, source)
    table, excluded = exclude_runs(standard_table(raw, names, source, law_class.required_columns),
                                   list(cfg.fit.exclude or []), source)
    given = {f"target.{key}" for key, value in (target or {}).items() if value is not None}
    targets = resolve_targets({"name": "target", "params": None, "tokens": None, "flops": None, **(target or {})},
                              given, None, flops_per_nd(table))
    curves = None
    if law_class.forecasts_curves:  # each target trained under the recipe group: its whole curve
        from ladder.fit.curves import target_paths
        targets, curves = target_paths(targets, plain(cfg.recipe), int(cfg.ladder.seq_len))
    fitted, summary = fit_and_forecast(
        table, law_options, targets, int(cfg.bootstrap.n if bootstrap is None else bootstrap),
        int(cfg.bootstrap.seed if seed is None else seed), float(cfg.ci_level if ci_level is None else ci_level),
        cfg.backtest, source, plain(cfg.interval), str(names.get("run") or "run"),
        checks={**plain(cfg.fit), "excluded": excluded, "params_column": names["params"]}, curves=curves)
    summary["params_used"] = params_used
    return Fit(fitted, table, summary)


def watch(forecast: Fit | str | Path, run, target: str | None = None) -> dict:
    """`ladder watch` in a notebook: `run` (a run directory, a CSV of tokens,loss[,lr], a W&B entity/project/id, or
    a DataFrame with those columns: a NaN loss reads as a diverged run, so leave out the rows of a W&B history that
    hold no evaluation) placed in the band of `forecast`'s curve (a law=curve Fit, or its fit directory); `target`
    picks the curve when there are several. The dict `ladder watch format=json` prints:
    each point inside or outside, since when outside, and the final loss forecast from the part seen."""
    import pandas as pd

    from ladder.fit.table import Table
    from ladder.fit.watch import from_table, load_curve, observe, pick_curve, watch as watch_run
    if isinstance(forecast, Fit):
        curve = pick_curve(forecast.summary, target, "the Fit")
    else:
        curve = load_curve(forecast, target)
    if isinstance(run, pd.DataFrame):
        return watch_run(curve, from_table(Table.from_frame(run), "watch: run", "the DataFrame"))
    return watch_run(curve, observe(str(run)))
