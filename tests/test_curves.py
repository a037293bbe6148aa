"""The curve law (law=curve): the loss along a run under its LR schedule, its forecast curve, and `ladder watch`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ladder.fit.calibrate import IntervalOptions
from ladder.fit.curves import curve_forecast, run_path, schedule_columns
from ladder.fit.laws import make_law
from ladder.fit.simulate import curve_recipe as recipe  # the batch grows with N, warmup N tokens
from ladder.fit.table import Table
from ladder.fit.watch import Observed, watch

TRUTH = {"E": 1.7, "A": 400.0, "alpha": 0.34, "B": 2000.0, "beta": 0.28, "C": 0.05, "gamma": -0.1}
OLMO = Path(__file__).resolve().parents[2] / "shared" / "refdata" / "olmo-ladder"


def true_loss(params, columns):
    t = TRUTH
    return (t["E"] + t["A"] / params ** t["alpha"] + t["B"] / columns["lr_area_tokens"] ** t["beta"]
            + t["C"] * params ** -t["gamma"] * columns["lr_frac"])




WSDS = {"name": "wsds", "cooldown_frac": 0.2, "cooldown_shape": "linear", "final_lr_frac": 0.0}
COSINE = {"name": "cosine", "final_lr_frac": 0.1}


def wsds_ladder(sizes=(1e5, 2e5, 4e5, 8e5), noise=0.003, seed=0) -> Table:
    """Each size one WSD-S run: 4 main-run evaluations and a cooldown end at each of 3 budgets (10, 20, 40 tokens
    per parameter), with lognormal noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        r = recipe(n, WSDS)
        budgets = {f"{k}x": k * 20 * n for k in (0.5, 1, 2)}
        main = np.linspace(0, 0.8 * 40 * n, 6)[1:-1]
        tokens = np.concatenate([main, list(budgets.values())])
        branches = [None] * len(main) + list(budgets)
        columns = schedule_columns(r, budgets, tokens, branches)
        loss = true_loss(n, columns) * np.exp(noise * rng.standard_normal(len(tokens)))
        rows += [{"params": n, "tokens": t, "loss": v, "run": f"n{n:g}", **{k: c[i] for k, c in columns.items()}}
                 for i, (t, v) in enumerate(zip(tokens, loss))]
    return Table({k: [r[k] for r in rows] for k in rows[0]})


@pytest.fixture(scope="module")
def fitted():
    table = wsds_ladder()
    law = make_law({"name": "curve"}).fit(table).bootstrap(table, 200, 0).calibrate(table, IntervalOptions(), 0)
    return law, table


def test_the_schedule_columns_of_a_cosine_run():
    r = {"batch_tokens": 100, "warmup_steps": 10, "schedule": COSINE}
    columns = schedule_columns(r, {"run": 100 * 100}, [500, 1000, 10000])
    assert columns["lr_frac"][0] == pytest.approx(0.5)  # step 5 of a 10-step warmup
    assert columns["lr_frac"][-1] == pytest.approx(0.1)  # the cosine's floor at the end
    assert columns["lr_area_tokens"][0] == pytest.approx(100 * sum((s + 1) / 10 for s in range(5)))
    assert 0.5 * 10000 < columns["lr_area_tokens"][-1] < 0.6 * 10000  # a cosine to 10% keeps ~55% of its area


def test_the_curve_law_recovers_a_known_ladder_and_forecasts_another_schedule(fitted):
    """Fitted to WSD-S curves (main runs and cooldown ends), it forecasts a cosine run 4x larger than the largest
    rung along its whole length, within the band at every point."""
    law, table = fitted
    assert law.coefficients_["beta"] == pytest.approx(TRUTH["beta"], abs=0.08)
    residual = np.log(table["loss"]) - np.log(law.predict(table).value)
    assert np.median(np.abs(residual)) < 0.006
    n = 3.2e6
    path = run_path(recipe(n, COSINE), {"run": 20 * n})
    curve = curve_forecast(law, n, path, "big")
    actual = true_loss(n, path)
    value, lo, hi = (np.asarray(curve[k]) for k in ("value", "lo", "hi"))
    late = path["tokens"] >= 0.1 * path["tokens"][-1]  # past warmup
    assert np.all((lo <= actual) & (actual <= hi))
    assert np.median(np.abs(value[late] / actual[late] - 1)) < 0.03
    assert np.all(np.diff(np.asarray(curve["log_cov"]).shape) == 0) and len(curve["log_cov"]) == len(path["tokens"])


def test_a_run_leaving_the_band_is_flagged_and_its_final_loss_follows_the_run(fitted):
    law, _ = fitted
    n = 1.6e6
    path = run_path(recipe(n, COSINE), {"run": 20 * n})
    curve = curve_forecast(law, n, path, "big")
    truth = true_loss(n, path)
    # a run 8% worse than the forecast after its first fifth: outside the band, and its end forecast moves to it
    worse = truth * np.where(path["tokens"] > 0.2 * path["tokens"][-1], 1.08, 1.0) * np.asarray(curve["value"]) / truth
    seen = path["tokens"] <= 0.5 * path["tokens"][-1]
    report = watch(curve, Observed(path["tokens"][seen], worse[seen]))
    assert report["left_band"] is not None and report["left_band"]["side"] == "above"
    assert report["left_band"]["off"] == pytest.approx(0.08, abs=0.005)
    given = report["final_given_run"]
    assert given["lo"] <= worse[-1] <= given["hi"]
    on_track = watch(curve, Observed(path["tokens"][seen], np.asarray(curve["value"])[seen]))
    assert on_track["left_band"] is None and all(p["inside"] for p in on_track["points"])
    assert (on_track["final_given_run"]["hi"] - on_track["final_given_run"]["lo"]
            < report["final"]["hi"] - report["final"]["lo"])  # the interval narrows as the run proceeds


@pytest.fixture(scope="module")
def forecast_dir(tmp_path_factory):
    """`ladder fit law=curve` on a CSV of WSD-S curves, forecasting a 1.6M-parameter target under recipe=tiny."""
    from ladder.cli import main

    out = tmp_path_factory.mktemp("curve")
    wsds_ladder().write_csv(out / "curves.csv")
    code = main(["fit", f"runs={out / 'curves.csv'}", "law=curve", f"out={out / 'fit'}", "bootstrap.n=100",
                 "target.params=1.6e6", "target.tokens=3.2e7", "target.name=big", "plots=true"])
    assert code == 0
    return out


def test_fit_writes_the_target_curve(forecast_dir):
    result = json.loads((forecast_dir / "fit" / "fit.json").read_text())
    curve = result["curves"][0]
    assert curve["name"] == "big" and curve["tokens"][-1] == pytest.approx(3.2e7, rel=0.01)
    assert np.all(np.asarray(curve["lo"]) < np.asarray(curve["value"]))
    assert curve["value"][-1] == pytest.approx(result["predictions"][0]["value"], rel=1e-9)
    assert (forecast_dir / "fit" / "plots" / "curves.png").exists()


def test_watch_a_csv_run(forecast_dir, run_cli, tmp_path):
    curve = json.loads((forecast_dir / "fit" / "fit.json").read_text())["curves"][0]
    tokens, value = np.asarray(curve["tokens"]), np.asarray(curve["value"])
    Table({"tokens": tokens[:20], "loss": value[:20] * 1.002}).write_csv(tmp_path / "run.csv")
    code, out, err = run_cli("watch", f"watch.forecast={forecast_dir / 'fit'}", f"watch.run={tmp_path / 'run.csv'}",
                             f"watch.plot={tmp_path / 'watch.png'}")
    assert code == 0, err
    assert "20 of 20 evaluations inside the band" in out
    assert "has no lr column: assumed to follow the forecast's schedule" in out
    assert (tmp_path / "watch.png").exists()


@pytest.mark.parametrize("change, message", [
    (lambda t, v, lr: (t, np.where(t > t[5], np.nan, v), lr), "the run diverged"),
    (lambda t, v, lr: (t * 2, v, lr), "beyond the forecast's"),
    (lambda t, v, lr: (t, v, np.where(t > t[8], lr * 0.5, lr)), "restarted, or another schedule"),
])
def test_watch_refuses_a_run_it_cannot_compare(forecast_dir, run_cli, tmp_path, change, message):
    curve = json.loads((forecast_dir / "fit" / "fit.json").read_text())["curves"][0]
    tokens, value, lr = (np.asarray(curve[k])[:30] for k in ("tokens", "value", "lr_frac"))
    tokens, value, lr = change(tokens, value, lr * 3e-3)
    Table({"tokens": tokens, "loss": value, "lr": lr}).write_csv(tmp_path / "run.csv")
    code, _, err = run_cli("watch", f"watch.forecast={forecast_dir / 'fit'}", f"watch.run={tmp_path / 'run.csv'}")
    assert code == 2 and message in err and err.count("\n") == 1


def test_a_table_without_schedule_columns_is_refused_in_one_line(run_cli, tmp_path):
    table = wsds_ladder()
    Table({k: table[k] for k in ("params", "tokens", "loss", "run")}).write_csv(tmp_path / "plain.csv")
    code, _, err = run_cli("fit", f"runs={tmp_path / 'plain.csv'}", "law=curve", f"out={tmp_path / 'fit'}")
    assert code == 2 and "lr_area_tokens" in err and err.count("\n") == 1


def test_the_schedule_code_gives_the_olmo_ladders_logged_lr():
    """The OLMo ladder's runs logged their LR: the porian recipe's schedule (cosine to 10%, warmup N tokens), as
    the schedule code computes it, gives it to 0.2% of the peak at every evaluation."""
    if not OLMO.exists():
        pytest.skip(f"reference data not found at {OLMO} (../shared is absent outside this workplace)")
    import csv

    sizes = json.loads((OLMO / "final_config.json").read_text())
    for name in ("190M-1xC", "760M-5xC", "1B-10xC"):
        n = next(v["n"] for v in sizes.values() if any(p.endswith(f"/{name}.csv") for p in v["paths"]))
        rows = list(csv.DictReader((OLMO / "ladder-runs" / f"{name}.csv").open()))
        tokens = np.array([float(r["throughput/total_tokens"]) for r in rows])
        batch = int(float(rows[0]["batch_size_in_tokens"]))
        r = {"batch_tokens": batch, "warmup_steps": round(n / batch), "schedule": COSINE}
        logged = np.array([float(r_["optim/learning_rate_group0"]) / float(r_["learning_rate_peak"]) for r_ in rows])
        assert np.max(np.abs(schedule_columns(r, {"run": tokens[-1]}, tokens)["lr_frac"] - logged)) < 2e-3


def fake_run_dir(root: Path, n: float = 2e5) -> Path:
    """A WSD-S rung's run directory as `ladder train` leaves it: summary.json (3 budgets), metrics.jsonl (main-run
    evaluations) and config.yaml's resolved rung, whose recipe gives each point's schedule."""
    import yaml

    r = recipe(n, WSDS)
    budgets = {f"{k}x": int(k * 20 * n) // r["batch_tokens"] * r["batch_tokens"] for k in (0.5, 1, 2)}
    main = [float(t) for t in np.linspace(0, 0.8 * budgets["2x"], 6)[1:-1] // r["batch_tokens"] * r["batch_tokens"]]
    run = root / "tiny" / "rung"
    run.mkdir(parents=True)
    columns = schedule_columns(r, budgets, list(budgets.values()), list(budgets))
    summary = {"status": "done", "ladder": "tiny", "rung": "rung", "size": "rung", "seed": 0, "params": n,
               "non_embedding_params": n, "olmo_params": n, "flops_convention": "chinchilla_6nd",
               "budgets": {label: {"tokens": t, "flops": 6 * n * t, "loss": float(true_loss(n, {
                   k: v[i:i + 1] for k, v in columns.items()})[0]), "eval": {}} for i, (label, t) in enumerate(budgets.items())}}
    (run / "summary.json").write_text(json.dumps(summary))
    main_columns = schedule_columns(r, budgets, main)
    (run / "metrics.jsonl").write_text("".join(
        json.dumps({"step": int(t // r["batch_tokens"]), "tokens": t, "val_loss": float(v)}) + "\n"
        for t, v in zip(main, true_loss(n, main_columns))))
    (run / "config.yaml").write_text(yaml.safe_dump({"resolved_rung": {"recipe": {**r, "lr": 1e-3},
                                                                       "budgets": budgets}}))
    return run


def test_collect_places_each_curve_point_in_its_schedule(tmp_path):
    from ladder.fit.collect import collect_runs

    run = fake_run_dir(tmp_path)
    assert "lr_frac" not in collect_runs(tmp_path)  # final points alone: no schedule computed
    table = collect_runs(tmp_path, curves=True)
    finals = table["final"] == 1
    assert np.all(table["lr_frac"][finals] == 0) and np.all(table["lr_frac"][~finals] == 1)  # cooldown ends, main
    assert np.all(table["lr_area_tokens"] < table["tokens"])  # warmup and cooldowns weigh less than a token
    from ladder.fit.watch import observe
    observed = observe(str(run))
    assert len(observed.tokens) == 5 and "2 evaluation(s) at the end of other budgets' cooldowns" in observed.notes[0]


def test_watch_reads_a_wandb_run_through_the_public_api():
    from ladder.fit.watch import _from_wandb

    class Run:
        def history(self, keys, pandas):
            assert keys == ["tokens", "val_loss"] and pandas is False
            return [{"tokens": 1e6, "val_loss": 3.0}, {"tokens": 2e6, "val_loss": None}, {"tokens": 3e6, "val_loss": 2.5}]

    class Api:
        def run(self, path):
            assert path == "me/ladder/abc123"
            return Run()

    observed = _from_wandb("me/ladder/abc123", api=Api())
    assert observed.tokens.tolist() == [1e6, 3e6] and observed.loss.tolist() == [3.0, 2.5]
    assert "assumed to follow the forecast's schedule" in observed.notes[0]


@pytest.mark.parametrize("args, message", [
    ([], "watch.forecast: missing"),
    (["watch.forecast={empty}", "watch.run=x.csv"], "no fit.json there"),
    (["watch.forecast={plain}", "watch.run=x.csv"], "has no forecast curve; fit with law=curve"),
    (["watch.forecast={fit}", "watch.run=x.csv", "watch.curve=other"], "watch.curve=other: not in"),
    (["watch.forecast={fit}"], "watch.run: missing"),
    (["watch.forecast={fit}", "watch.run=not/a run"], "not a run directory, a CSV or a W&B run path"),
])
def test_watch_bad_input_is_one_line(forecast_dir, run_cli, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "fit.json").write_text(json.dumps({"law": "chinchilla", "predictions": []}))
    paths = {"empty": tmp_path / "empty", "plain": tmp_path / "plain", "fit": forecast_dir / "fit"}
    code, _, err = run_cli("watch", *(a.format(**paths) for a in args))
    assert code == 2 and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("change, message", [
    (lambda t: t.update(lr_frac=np.full(len(t["lr_frac"]), 1.0)), "every point has about the same LR"),
    (lambda t: t["lr_area_tokens"].__setitem__(0, 0.0), "a point before the first step"),
])
def test_the_curve_law_refuses_what_it_cannot_identify(change, message):
    from ladder.errors import LadderError

    table = wsds_ladder()
    columns = {k: np.array(table[k]) for k in table.columns}
    change(columns)
    with pytest.raises(LadderError, match=message):
        make_law({"name": "curve"}).fit(Table(columns))


def test_the_fit_page_shows_the_forecast_run(forecast_dir):
    from ladder.report.ladder_page import CAPTIONS

    page = (forecast_dir / "fit" / "report" / "index.html").read_text()
    assert "the forecast run, under the recipe&#39;s schedule" in page  # the table of the target's run
    assert CAPTIONS["curves"].split(",")[0] in page  # curves.png, with its caption


def test_the_notebook_api_forecasts_a_curve_and_watches_a_run(forecast_dir, tmp_path):
    """api.fit(law="curve") gives the curve `ladder fit` wrote for the same data; api.watch takes the Fit or its
    directory, and a DataFrame or a CSV, and agrees."""
    from ladder import api

    fit = api.fit(forecast_dir / "curves.csv", law="curve", bootstrap=100,
                  target={"params": 1.6e6, "tokens": 3.2e7, "name": "big"})
    written = json.loads((forecast_dir / "fit" / "fit.json").read_text())["curves"][0]
    curves = fit.curves
    assert list(curves.columns) == ["target", "tokens", "lr_frac", "value", "lo", "hi"]
    assert np.allclose(curves["value"], written["value"], rtol=1e-9) and (curves["target"] == "big").all()
    run = curves.iloc[:20][["tokens", "value"]].rename(columns={"value": "loss"})
    run.to_csv(tmp_path / "run.csv", index=False)
    from_fit, from_dir = api.watch(fit, run), api.watch(forecast_dir / "fit", tmp_path / "run.csv")
    assert len(from_fit["points"]) == 20 and all(p["inside"] for p in from_fit["points"])
    assert from_fit["final_given_run"] == pytest.approx(from_dir["final_given_run"], rel=1e-9)


def test_the_ladder_page_scores_the_held_out_run_against_its_curve(fitted, tmp_path):
    """A ladder's report with a curve forecast (the demo's report/curve_fit) shows the held-out run's evaluations
    against it: the median error and how many fall inside the band, and the plot."""
    from ladder.report.ladder_page import Measured, curve_section
    from ladder.rundir import RunDir

    law, table = fitted
    run = fake_run_dir(tmp_path / "runs")
    r = recipe(2e5, WSDS)
    budgets = {f"{k}x": int(k * 20 * 2e5) // r["batch_tokens"] * r["batch_tokens"] for k in (0.5, 1, 2)}
    result = {"law": "curve", "n_points": len(table), "ci_level": 0.95,
              "curves": [curve_forecast(law, 2e5, run_path(r, budgets), "rung")]}
    measured = Measured("rung", budgets["2x"], 3.0, {}, RunDir.of(tmp_path / "runs", "tiny", "rung"))
    assert measured.run.path == run
    section = curve_section(result, measured, tmp_path / "report")
    assert any("over its 5 evaluations, 5 of them inside the band" in p for p in section.paragraphs)
    assert section.figures[0].path.exists() and section.tables[0].rows[-1][1] == "100%"
    before = curve_section(result, None, tmp_path / "report")  # before the run: the forecast alone
    assert len(before.paragraphs) == 1 and len(before.figures) == 1 and before.figures[0].path.exists()


def test_a_short_run_has_no_point_before_its_first_step():
    """A run of fewer steps than points (a test-sized target) gets each step once, none at 0 tokens."""
    path = run_path(recipe(1e5, WSDS), {"run": 4 * 1024 * 5})
    assert path["tokens"][0] > 0 and np.all(np.diff(path["tokens"]) > 0) and np.all(path["lr_area_tokens"] > 0)


def test_the_simulated_truth_lags_the_lr_and_without_lag_is_the_curve_laws_form():
    """bench_curves' simulated ladders: with no momentum the truth is the curve law's form exactly; with the default
    momentum a cooldown's end has gained less than the drop in LR gives at once, and a run's evaluations carry their
    schedule columns."""
    from ladder.fit.simulate import CURVE_TRUTH, curve_truth, simulate_curve_run

    n, r = 1e5, recipe(1e5, WSDS)
    budgets = {"1x": 20 * n, "2x": 40 * n}
    tokens, branches = [0.5 * 40 * n, 20 * n, 40 * n], [None, "1x", "2x"]
    columns = schedule_columns(r, budgets, tokens, branches)
    t = {**CURVE_TRUTH, "momentum": 0.0}
    immediate = (t["E"] + t["A"] / n ** t["alpha"] + t["B"] / columns["lr_area_tokens"] ** t["beta"]
                 + t["C"] * n ** -t["gamma"] * columns["lr_frac"])
    assert curve_truth(n, r, budgets, tokens, branches, t) == pytest.approx(immediate, rel=1e-9)
    lagged = curve_truth(n, r, budgets, tokens, branches)
    assert lagged[0] == pytest.approx(immediate[0], rel=1e-9) and np.all(lagged[1:] > immediate[1:])
    run = simulate_curve_run(n, r, budgets, np.random.default_rng(0))
    assert list(run["final"]).count(1) == 2 and np.all(run["lr_frac"][run["final"] == 1] == 0)


def test_a_curve_forecast_of_another_run_is_a_warning_on_the_ladder_page(fitted, tmp_path):
    """The page goes on: a held-out run the saved curve forecast is not about is said in its section."""
    from ladder.report.ladder_page import Measured, curve_section
    from ladder.rundir import RunDir

    law, table = fitted
    fake_run_dir(tmp_path / "runs")
    r = recipe(2e5, WSDS)
    result = {"law": "curve", "n_points": len(table), "ci_level": 0.95,
              "curves": [curve_forecast(law, 2e5, run_path(r, {"x": 40 * 2e5}), "another")]}
    measured = Measured("rung", 8e6, 3.0, {}, RunDir.of(tmp_path / "runs", "tiny", "rung"))
    section = curve_section(result, measured, tmp_path / "report")
    assert section.figures == [] and "watch.curve=rung: not in report/curve_fit" in section.warnings[-1]


def test_watch_leaves_out_an_evaluation_before_the_first_step(fitted):
    law, _ = fitted
    path = run_path(recipe(1.6e6, COSINE), {"run": 20 * 1.6e6})
    curve = curve_forecast(law, 1.6e6, path, "big")
    tokens = np.concatenate([[0.0], path["tokens"][:5]])
    report = watch(curve, Observed(tokens, np.concatenate([[5.5], np.asarray(curve["value"])[:5]])))
    assert [p["tokens"] for p in report["points"]] == path["tokens"][:5].tolist()


def test_a_simulated_run_that_decays_has_one_budget():
    from ladder.errors import LadderError
    from ladder.fit.simulate import simulate_curve_run

    with pytest.raises(LadderError, match="one budget"):
        simulate_curve_run(1e5, recipe(1e5, COSINE), {"1x": 2e6, "2x": 4e6}, np.random.default_rng(0))


def test_a_noise_exponent_on_its_bound_has_resamples_and_a_band_that_leave_it():
    """Cut simulated ladders (5 sizes, budgets 0.5-2x, the truth's annealing gain lagging) where the fit sends gamma
    to a bound: to -2 (the noise floor growing as N^2, a forecast of a run 10x larger several times the truth
    mid-run) or to +2. Which seeds land there moves with the machine (seed 2 did on the machines of earlier stops;
    on this stop's, whose floating point differs, it fit -0.08 and seeds 0 and 5 went to the bounds), so three seeds
    are tried and one at least must land. The resamples also start gamma and C across their grid and keep the better
    fit, so gamma's interval is not the bound's point, and the curve's band, taken about the point, reaches where the
    resamples' forecasts lie (it need not reach the truth: where every resample keeps the bound, the law's form is
    wrong)."""
    from ladder.fit.simulate import simulate_curve_run

    sizes, target = np.geomspace(2e7, 3.2e8, 5), 3.2e9
    path = run_path(recipe(target, WSDS), {"target": 20 * target})
    middle = len(path["tokens"]) // 2
    landed = 0
    for seed in (0, 2, 5):
        rng = np.random.default_rng(seed)
        table = Table.concat([simulate_curve_run(n, recipe(n, WSDS), {f"{m:g}x": m * 20 * n for m in (0.5, 1, 2)},
                                                 rng) for n in sizes])
        law = make_law({"name": "curve"}).fit(table)
        if abs(abs(law.coefficients_["gamma"]) - 2) > 1e-6:
            continue
        landed += 1
        assert any("gamma sits on its" in w and "bound" in w for w in law.warnings_), law.warnings_
        law.bootstrap(table, 60, 0)
        low, high = np.percentile(law.samples_["gamma"], [2.5, 97.5])
        assert high - low > 0.3, f"seed {seed}: gamma's interval [{low:.3g}, {high:.3g}] is the bound's point"
        curve = curve_forecast(law, target, path)
        points = Table({"params": np.full(len(path["tokens"]), target), **path})
        resampled = np.exp(np.median(law.log_draws(points)[2][:, middle]))  # where the resamples put the middle
        assert curve["lo"][middle] <= resampled <= curve["hi"][middle], (seed, curve["value"][middle], resampled)
    assert landed >= 1, "no seed sent gamma to its bound: the test no longer tests the case"


def test_the_curves_covariance_is_the_bands_spread_about_the_point():
    """log_covariance: resamples centred off the point forecast widen the band by their offset; a walk anchored at
    the run's end adds nothing at the end and the most at the first point."""
    from types import SimpleNamespace

    from ladder.fit.curves import log_covariance

    law = SimpleNamespace(error_=None, run_effects_={"level_sd": 0.0, "point_sd": 0.01, "walk_sd": 0.0})
    point = np.zeros(3)
    band = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])  # both resamples agree, away from the point
    cov, point_sd = log_covariance(law, point, band, np.zeros(3), np.log([1.0, 2.0, 4.0]))
    assert np.diag(cov) == pytest.approx(2 * np.array([0.01, 0.04, 0.09])) and point_sd == 0.01
    law.run_effects_["walk_sd"] = 0.1
    walked, _ = log_covariance(law, point, None, np.zeros(3), np.log([1.0, 2.0, 4.0]))
    assert walked[2, 2] == 0 and walked[0, 0] == pytest.approx(0.01 * np.log(4))
    assert walked[0, 1] == pytest.approx(0.01 * np.log(2))


def test_run_effects_measure_a_runs_walk_and_its_own_scatter():
    """Runs whose residuals are a level, a random walk in log schedule area and each point's own noise: run_effects
    recovers the walk's and the points' scales; runs without a walk give a walk of ~0."""
    from ladder.fit.laws.curve import run_effects

    rng = np.random.default_rng(0)
    u = np.log(np.linspace(0.05, 1, 40))  # evaluations evenly spaced in steps: shorter steps in log area late on
    for walk in (0.01, 0.0):
        residuals, groups, areas = [], [], []
        for run in range(60):
            steps = rng.normal(0, walk * np.sqrt(np.diff(u, prepend=u[0])))
            residuals.append(rng.normal(0, 0.005) + np.cumsum(steps) + rng.normal(0, 0.002, len(u)))
            groups += [run] * len(u)
            areas.append(u)
        effects = run_effects(np.concatenate(residuals), np.array(groups), np.concatenate(areas))
        assert effects["point_sd"] == pytest.approx(0.002, rel=0.15)
        assert effects["walk_sd"] == pytest.approx(walk, abs=0.0015)
