"""Which shape of the forecast-error model makes intervals sharp and honest? A study on cached fits.

Fitting is what costs (a backtest refits every fold, and each fit's calibration refits its own folds), and every
variant of the error model only recombines what the fits measured. So `capture` fits once and keeps, per forecast:
the point forecast and bootstrap band at each held-out row, the noise, each inner rolling fold's residuals, band
variances, parametric nulls and noise, and the log ratios (N, D, compute) of every row beyond its fit's largest
values. `compare` then scores variants of the error model on the cache in seconds: the prior (`prior_kappa`,
`prior_weight`, `prior_dof`), the distance (`distance`: max, n, compute, or n_dX for the larger of N and X times D),
the distance relative to each fit's log-size span (`relative`), the error's growth with distance (`power`, 1 linear),
and what a fold's error is measured against (`null`: bootstrap, the fold's own band; iid, run or split, refits of
data drawn from the fold's law; `noise_scale` reads the noise that much larger). The library's settings are
`{"distance": "max"}` with the defaults below. docs/fitting.md ("Why these settings") reports what this found;
scripts/bench_calibration.py measures a setting the library can run end to end.

    python scripts/study_intervals.py capture cache.pkl [--sims 8 --seed0 0] [--runs runs/tiny]
    python scripts/study_intervals.py compare cache.pkl '{"distance": "max"}' '{"prior_weight": 0.25}' ...
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import numpy as np
from bench_calibration import LAW, real_ladders

from ladder.errors import LadderError
from ladder.fit.calibrate import IntervalOptions, noise_sd, rolling_folds, weighted_median
from ladder.fit.forecast import backtest_folds, load_table
from ladder.fit.laws import make_law
from ladder.fit.laws.base import run_groups
from ladder.fit.optimize import lbfgs_batch
from ladder.fit.simulate import DESIGNS, SCENARIOS, simulate

OPTIONS = IntervalOptions()
N_DRAWS = 4000


def log_ratios(train, rows) -> np.ndarray:
    """(rows, 3): log of each row's N, D and N*D over the fit's largest."""
    def ratio(values, largest):
        return np.log(np.asarray(values, dtype=float) / largest)
    compute = np.asarray(rows["params"], dtype=float) * np.asarray(rows["tokens"], dtype=float)
    largest_compute = np.max(np.asarray(train["params"], dtype=float) * np.asarray(train["tokens"], dtype=float))
    return np.stack([ratio(rows["params"], np.max(train["params"])), ratio(rows["tokens"], np.max(train["tokens"])),
                     np.log(compute / largest_compute)], axis=1)


def span(table) -> float:
    return float(np.log(np.max(table["params"]) / np.min(table["params"])))


def shared_fraction(log_residuals: np.ndarray, groups: np.ndarray) -> float:
    """The share of the residuals' variance that a run's rows have in common (one-way ANOVA moments)."""
    names, index, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if len(names) == len(groups):
        return 0.0
    means = np.bincount(index, log_residuals) / counts
    within = np.sum((log_residuals - means[index]) ** 2) / max(len(groups) - len(names), 1)
    between = max(np.var(means, ddof=1) - within / np.mean(counts), 0.0)
    return float(between / (between + within)) if between + within > 0 else 0.0


def null_forecast_mse(law, train, test, noise: float, n: int, seed: int, shared: float) -> np.ndarray:
    """What a fold's forecast would err by at `test` if its law were exact: refit n data sets drawn from the fitted
    law times exp(noise), `shared` of the variance common to a run's rows (a parametric bootstrap), and return each
    test row's mean squared log deviation of the refits' forecasts from the fold's own."""
    log_fit = law.form.log_predict(law.theta_, law._log_x(train))[0]
    groups = run_groups(train)
    rng = np.random.default_rng([seed, 2])
    shifts = noise * (np.sqrt(shared) * rng.standard_normal((n, int(groups.max()) + 1))[:, groups]
                      + np.sqrt(1 - shared) * rng.standard_normal((n, len(train))))
    batch = lbfgs_batch(law._objective(train, per_problem="targets"), np.repeat(law.theta_[None, :], n, axis=0),
                        data=np.exp(log_fit[None, :] + shifts), bounds=law.bounds, max_iter=law.max_iter,
                        ftol=1e-10, gtol=1e-9, f_floor=0.0)
    log_x = law._log_x(test)
    return np.mean((law.form.log_predict(batch.x, log_x) - law.form.log_predict(law.theta_, log_x)[0]) ** 2, axis=0)


def capture_case(name: str, train, test, n_boot: int, seed: int) -> dict:
    """What every error-model variant needs for one forecast: `train` fitted, `test` forecast."""
    law = make_law(LAW).fit(train).bootstrap(train, n_boot, seed)
    n_params = law.form.n_params
    folds = []
    for fit_rows, held in rolling_folds(train["params"], OPTIONS.folds, OPTIONS.min_fold_sizes):
        fold_train, fold_test = train.take(fit_rows), train.take(held)
        try:
            fold = law.fresh(screen=OPTIONS.fold_starts, n_polish=1).fit(fold_train)
            fold.bootstrap(fold_train, OPTIONS.fold_bootstrap, seed)
        except LadderError:
            continue
        point, _, band, _ = fold.log_draws(fold_test)
        fit_residual = np.log(fold_train["loss"]) - fold.log_draws(fold_train)[0]
        noise = noise_sd(fit_residual, n_params)
        nulls = {name: null_forecast_mse(fold, fold_train, fold_test, noise, OPTIONS.fold_bootstrap, seed, shared)
                 for name, shared in (("iid", 0.0), ("run", 1.0),
                                      ("split", shared_fraction(fit_residual, run_groups(fold_train))))}
        folds.append({"sizes": len(np.unique(fold_train["params"])), "span": span(fold_train),
                      "residual": np.log(fold_test["loss"]) - point, "band_var": np.nanvar(band, axis=0),
                      "null_mse": nulls, "noise": noise, "ratios": log_ratios(fold_train, fold_test)})
    point, _, band, _ = law.log_draws(test)
    return {"name": name, "span": span(train), "folds": folds, "point": point, "band": band,
            "noise": noise_sd(np.log(train["loss"]) - law.log_draws(train)[0], n_params),
            "ratios": log_ratios(train, test), "actual": np.log(np.asarray(test["loss"], dtype=float))}


def rolling_cases(name: str, table, n_boot: int) -> list[dict]:
    out = []
    for _, fit_rows, held in backtest_folds(table, "rolling", OPTIONS.folds):
        train, test = table.take(fit_rows), table.take(held)
        if "final" in test and np.any(test["final"] == 1):
            test = test.take(np.flatnonzero(test["final"] == 1))
        try:
            out.append(capture_case(name, train, test, n_boot, 0))
        except LadderError as error:
            print(f"{name}: a fold not fitted ({error})")
    return out


def capture(path: Path, n_sims: int, seed0: int, n_boot: int, runs: Path | None) -> None:
    cases = [case for name, table in real_ladders().items() for case in rolling_cases(name, table, n_boot)]
    if runs:
        table = load_table(runs, {"params": "non_embedding_params", "tokens": "tokens", "loss": "loss",
                                  "flops": "flops", "budget": "budget", "run": "rung"})
        cases += rolling_cases(f"{runs}", table, n_boot)
    for design in DESIGNS:
        for scenario in SCENARIOS:
            for seed in range(seed0, seed0 + n_sims):
                ladder, targets = simulate(scenario, seed, design=design)
                cases.append(capture_case(f"sim {scenario} ({design})", ladder, targets, n_boot, seed))
            print(f"captured sim {scenario} ({design})", flush=True)
    path.write_bytes(pickle.dumps(cases))


def distance(ratios: np.ndarray, variant: dict, fit_span: float) -> np.ndarray:
    n, d, c = ratios[:, 0], ratios[:, 1], ratios[:, 2]
    rule = variant.get("distance", "max")
    out = {"max": np.maximum(n, d), "n": n, "compute": c}.get(rule)
    if out is None:  # n_dX: the larger of N and X times D
        out = np.maximum(n, float(rule.removeprefix("n_d")) * d)
    out = np.maximum(out, 0.0) / (fit_span if variant.get("relative") else 1.0)
    return out ** variant.get("power", 1.0)


def error_model(case: dict, variant: dict) -> tuple[float, float]:
    """(kappa, dof) as calibrate.learn_error_model learns them, under the variant's shape and settings."""
    excess, weights = [], []
    for fold in case["folds"]:
        d = distance(fold["ratios"], variant, fold["span"])
        if np.any(d > 0):
            # the parametric null scales with the noise squared: `noise_scale` reads the noise that much larger
            scale2 = variant.get("noise_scale", 1.0) ** 2
            null = variant.get("null", "bootstrap")  # bootstrap: the fold's own band; else a parametric null
            expected = fold["band_var"] if null == "bootstrap" else fold["null_mse"][null] * scale2
            excess.append(np.sum(fold["residual"] ** 2 - expected - scale2 * fold["noise"] ** 2) / np.sum(d * d))
            weights.append(fold["sizes"])
    n = len(excess)
    learned = max(0.0, weighted_median(excess, weights)) if n else 0.0
    weight = variant.get("prior_weight", OPTIONS.prior_weight)
    # the prior is per e-fold at the full fit: on a relative distance, per span (to the power the distance is taken)
    per_span = case["span"] ** variant.get("power", 1.0) if variant.get("relative") else 1.0
    prior = variant.get("prior_kappa", OPTIONS.prior_kappa) * per_span
    kappa2 = (weight * prior ** 2 + n * learned) / (weight + n) if weight + n > 0 else 0.0
    return float(np.sqrt(kappa2)), variant.get("prior_dof", OPTIONS.prior_dof) + n


def interval(case: dict, variant: dict, rng) -> tuple[np.ndarray, np.ndarray]:
    kappa, dof = error_model(case, variant)
    d = distance(case["ratios"], variant, case["span"])
    band = case["band"][np.arange(N_DRAWS) % len(case["band"])]
    draws = (band + rng.standard_normal((N_DRAWS, len(d))) * case["noise"]
             + rng.standard_t(dof, (N_DRAWS, 1)) * kappa * d[None, :])
    return tuple(np.percentile(draws, [2.5, 97.5], axis=0))


def compare(path: Path, variants: list[dict]) -> None:
    cases = pickle.loads(path.read_bytes())
    for variant in variants:
        rng = np.random.default_rng(0)
        scores = {}
        for case in cases:
            lo, hi = interval(case, variant, rng)
            entry = scores.setdefault(case["name"], {"covered": [], "error": [], "width": []})
            entry["covered"] += list((lo <= case["actual"]) & (case["actual"] <= hi))
            entry["error"] += list(np.abs(np.expm1(case["point"] - case["actual"])))
            entry["width"] += list(np.exp(hi - case["point"]) - np.exp(lo - case["point"]))
        scores["pooled"] = {key: [v for entry in list(scores.values()) for v in entry[key]]
                            for key in ("covered", "error", "width")}
        print(f"\n{json.dumps(variant)}: coverage, width / median |error|")
        for name, entry in scores.items():
            ratio = np.median(entry["width"]) / np.median(entry["error"])
            print(f"  {name:34} {len(entry['covered']):5d} rows  {np.mean(entry['covered']):.2f}  {ratio:5.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["capture", "compare"])
    parser.add_argument("cache", type=Path)
    parser.add_argument("variants", nargs="*", default=['{"distance": "max"}'], help="JSON objects (compare)")
    parser.add_argument("--sims", type=int, default=8, help="simulated ladders per scenario and design (capture)")
    parser.add_argument("--seed0", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--runs", type=Path, help="a ladder's runs directory too, e.g. runs/tiny after ladder demo")
    args = parser.parse_args()
    if args.action == "capture":
        capture(args.cache, args.sims, args.seed0, args.bootstrap, args.runs)
    else:
        compare(args.cache, [json.loads(v) for v in args.variants])


if __name__ == "__main__":
    main()
