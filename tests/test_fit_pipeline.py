import json

import numpy as np
import pytest

from fit_data import chinchilla_loss, chinchilla_table, isoflop_table
from ladder.config import compose_config
from ladder.errors import LadderError
from ladder.fit.forecast import resolve_targets, run_fit
from ladder.fit.laws import make_law
from ladder.fit.table import Table, standard_table

COLUMNS = {"params": "params", "tokens": "tokens", "loss": "loss", "flops": "flops", "budget": "budget",
           "run": "rung", "task_loss": "task_loss", "accuracy": "accuracy"}
NO_TARGETS = Table({"name": [], "params": [], "tokens": [], "flops": []})


def std(table):
    return standard_table(table, COLUMNS, "test")


# -- refusals ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("column, value, message", [
    ("loss", np.nan, "loss is NaN or missing in row 3"),
    ("params", 0.0, "params is zero or negative in row 3"),
    ("tokens", -5.0, "tokens is zero or negative in row 3"),
])
def test_bad_values_are_refused(column, value, message):
    table = chinchilla_table()
    table[column][3] = value
    with pytest.raises(LadderError, match=message):
        std(table)


def test_duplicate_rows_are_refused():
    table = chinchilla_table()
    doubled = table.take(np.r_[np.arange(len(table)), 4])
    with pytest.raises(LadderError, match="rows 4 and 42 are duplicates"):
        std(doubled)


def test_missing_column_names_the_rename():
    with pytest.raises(LadderError, match=r"no column 'loss' for loss.*columns.loss=NAME"):
        standard_table(Table({"params": [1.0], "tokens": [2.0], "val": [3.0]}), COLUMNS, "x.csv")


@pytest.mark.parametrize("rows, message", [
    (slice(0, 4), "4 points for 5 coefficients"),
    ("one_n", "every row has the same params"),
    ("one_d", "every row has the same tokens"),
    ("one_c", "same compute"),
])
def test_unidentifiable_data_is_refused(rows, message):
    law = make_law({"name": "chinchilla"})
    if rows == "one_n":
        table = Table({"params": [1e8] * 8, "tokens": np.geomspace(1e9, 1e11, 8), "loss": np.linspace(3, 2.5, 8)})
    elif rows == "one_d":
        table = Table({"params": np.geomspace(1e7, 1e9, 8), "tokens": [1e10] * 8, "loss": np.linspace(3, 2.5, 8)})
    elif rows == "one_c":
        params = np.geomspace(1e7, 1e9, 8)
        table = Table({"params": params, "tokens": 1e18 / params, "loss": np.linspace(3, 2.5, 8)})
    else:
        table = chinchilla_table().take(rows)
    with pytest.raises(LadderError, match=message):
        law.fit(table)


# -- warnings ----------------------------------------------------------------------------------------------------
def test_parameter_on_a_bound_is_warned():
    law = make_law({"name": "chinchilla", "bounds": {"alpha": [0.0, 0.2]}}).fit(chinchilla_table())
    assert law.coefficients_["alpha"] == pytest.approx(0.2)
    assert any("alpha sits on its upper bound" in w for w in law.warnings_)


def test_flat_valley_is_warned():
    # Losses of a pure power law in N*D with no curvature: E trades off against A and B, optima disagree.
    params = np.geomspace(1e7, 1e9, 6).repeat(3)
    tokens = params * np.tile([10.0, 20, 40], 6)
    table = Table({"params": params, "tokens": tokens, "loss": 3 + 0 * params + 1e-4 * np.log(params)})
    law = make_law({"name": "chinchilla"}).fit(table)
    assert any("flat valley" in w for w in law.warnings_)


def test_e_collapsed_to_zero_is_warned_and_not_a_point():
    """A seeded ladder too short to identify E (4 sizes over 0.9 e-folds of N, 1% noise): the fit sends E to ~1e-8.
    The warning names E, E's interval spans the values that fit about as well instead of one point, and the forecast
    interval at 3-10x the largest size covers the law's truth where a bootstrap left at E = 0 covered 1 row of 9."""
    from ladder.fit.calibrate import IntervalOptions
    from ladder.fit.simulate import EPOCH_LAW, simulate
    from ladder.fit.simulate import chinchilla_loss as law_truth

    ladder, targets = simulate("exact", 2, sizes=tuple(np.geomspace(2e7, 1.5e8, 4)), multiples=(1, 2, 4), noise=0.01)
    law = make_law({"name": "chinchilla"}).fit(ladder)
    assert law.coefficients_["E"] < 1e-6
    assert any(w.startswith("E collapsed to 0") for w in law.warnings_)
    law.bootstrap(ladder, 400, seed=0).calibrate(ladder, IntervalOptions(), seed=0)
    lo, hi = law.ci()["E"]
    assert lo < 1e-3 and hi > 0.5 * EPOCH_LAW["E"]
    forecast = law.predict(targets)
    truth = law_truth(targets["params"], targets["tokens"])
    assert np.mean((forecast.lo <= truth) & (truth <= forecast.hi)) >= 6 / 9


def test_a_fit_without_resamples_prints_no_band_not_nan():
    from ladder.report.tables import predictions_table

    result = {"ci_level": 0.95, "interval": {}, "predictions": [
        {"name": "t", "params": 1e9, "tokens": 2e10, "flops": 1.2e20, "metric": "loss", "value": 2.5, "lo": 2.4,
         "hi": 2.6, "band_lo": None, "band_hi": None}]}
    row = predictions_table(result).text().splitlines()[-1]
    assert "nan" not in row and row.split()[-1] == "-"


def test_broken_rung_is_named():
    table = chinchilla_table(noise=0.001)
    broken = table["rung"] == "n200m"
    table["loss"][broken] *= 1.06  # an undertuned rung: 6% above the law
    result = run_fit(std(table), {"name": "chinchilla"}, NO_TARGETS, 0, 0, 0.95)
    assert any(w.startswith("rung n200m") and "off the law" in w for w in result["warnings"])
    assert not any("rung n500m" in w for w in result["warnings"])


# -- targets, backtest, outputs ------------------------------------------------------------------------------------
def test_targets_from_params_tokens_flops_and_file(tmp_path):
    file = tmp_path / "targets.csv"
    file.write_text("name,params,tokens\nbig,7e9,1.4e11\n")
    targets = resolve_targets({"name": "t", "params": 1e10, "tokens": "2xC", "flops": None},
                              {"target.params", "target.tokens"}, str(file), 6.0)
    assert targets["name"].tolist() == ["big", "t"]
    assert targets["tokens"][1] == 2 * 20 * 1e10
    flops_only = resolve_targets({"params": None, "tokens": None, "flops": 1e23}, {"target.flops"}, None, 6.0)
    assert np.isnan(flops_only["params"][0]) and flops_only["flops"][0] == 1e23
    with pytest.raises(LadderError, match="target.tokens needs target.params"):
        resolve_targets({"params": None, "tokens": 5e9, "flops": None}, {"target.tokens"}, None, 6.0)


def test_run_fit_writes_fit_json_predictions_and_plots(tmp_path):
    table = std(chinchilla_table())
    targets = resolve_targets({"name": "7B", "params": 7e9, "tokens": 1.4e11, "flops": None},
                              {"target.params", "target.tokens"}, None, 6.0)
    compute = resolve_targets({"name": "C", "params": None, "tokens": None, "flops": 1e22}, {"target.flops"},
                              None, 6.0)
    both = Table({k: np.concatenate([targets[k], compute[k]]) for k in targets.columns})
    result = run_fit(table, {"name": "chinchilla"}, both, 100, 0, 0.9, backtest_spec="largest", out=tmp_path)
    saved = json.loads((tmp_path / "fit.json").read_text())
    assert saved["coefficients"] == pytest.approx(result["coefficients"])  # what it returns is what it wrote
    for key in ("law", "n_points", "coefficients", "ci", "objective", "predictions", "compute_optimal", "backtest",
                "warnings"):
        assert key in saved, key
    assert saved["ci_level"] == 0.9 and set(saved["coefficients"]) == {"E", "A", "B", "alpha", "beta"}
    point, optimal = saved["predictions"]
    assert point["loss"] == pytest.approx(chinchilla_loss(7e9, 1.4e11), rel=0.01)
    assert point["lo"] < point["loss"] < point["hi"]
    assert optimal["flops"] == 1e22 and optimal["params"] * optimal["tokens"] * 6 == pytest.approx(1e22)
    assert len(saved["compute_optimal"]["params"]) == 2 and 0.4 < saved["compute_optimal"]["a"] < 0.65
    backtest = saved["backtest"]
    assert backtest["n_test"] == 6 and backtest["rule"] == "largest size held out"
    for row in backtest["rows"]:
        assert abs(row["rel_error"]) < 0.02 and row["covered"] == (row["lo"] <= row["actual"] <= row["hi"])
    assert backtest["coverage"] == pytest.approx(np.mean([row["covered"] for row in backtest["rows"]]))
    assert (tmp_path / "predictions.csv").read_text().startswith("name,metric,params,tokens,flops,value,lo,hi")
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {"loss_vs_compute.png", "residuals.png",
                                                                     "bootstrap.png", "backtest.png",
                                                                     "compute_optimal.png"}


def test_backtest_by_compute_cutoff():
    result = run_fit(std(chinchilla_table()), {"name": "chinchilla"}, NO_TARGETS, 0, 0, 0.95, backtest_spec=1e20)
    assert all(row["flops"] > 1e20 for row in result["backtest"]["rows"])
    with pytest.raises(LadderError, match="both sides"):
        run_fit(std(chinchilla_table()), {"name": "chinchilla"}, NO_TARGETS, 0, 0, 0.95, backtest_spec=1e40)


def test_frontier_law_refuses_point_targets():
    targets = resolve_targets({"name": "t", "params": 7e9, "tokens": 1e11, "flops": None},
                              {"target.params", "target.tokens"}, None, 6.0)
    with pytest.raises(LadderError, match="give target.flops alone"):
        run_fit(std(isoflop_table()), {"name": "isoflop"}, targets, 0, 0, 0.95)


def test_fit_cli_on_csv_with_renamed_columns(run_cli, tmp_path):
    table = chinchilla_table()
    renamed = Table({"N": table["params"], "D": table["tokens"], "val_loss": table["loss"]})
    renamed.write_csv(tmp_path / "runs.csv")
    code, out, err = run_cli("fit", f"runs={tmp_path / 'runs.csv'}", "columns.params=N", "columns.tokens=D",
                             "columns.loss=val_loss", "target.params=7e9", "target.tokens=1.4e11",
                             "bootstrap.n=50", f"out={tmp_path / 'fit'}", "backtest=largest")
    assert code == 0, err
    assert "forecast" in out and "backtest (largest size held out)" in out
    assert "chinchilla_6nd" in out  # no flops column: 6ND, and it says so
    saved = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert saved["predictions"][0]["loss"] == pytest.approx(chinchilla_loss(7e9, 1.4e11), rel=0.01)


def test_fit_cli_flops_target_and_isoflop(run_cli, tmp_path):
    isoflop_table().write_csv(tmp_path / "iso.csv")
    code, out, err = run_cli("fit", f"runs={tmp_path / 'iso.csv'}", "law=isoflop", "target.flops=1e23",
                             "bootstrap.n=50", f"out={tmp_path / 'fit'}", "format=json")
    assert code == 0, err
    saved = json.loads(out)
    assert 0.45 < saved["coefficients"]["a"] < 0.6 and saved["predictions"][0]["metric"] == "params_opt"
    assert (tmp_path / "fit" / "plots" / "frontier.png").exists()


def test_fit_cli_errors_are_one_line(run_cli, tmp_path):
    code, _, err = run_cli("fit", f"runs={tmp_path / 'nope.csv'}")
    assert code == 2 and "no such file" in err and err.count("\n") == 1
    code, _, err = run_cli("fit", "runs=x.csv", "law=gompertz")
    assert code == 2 and "law=gompertz: no such law" in err


def test_tied_exponents_from_the_cli(run_cli, tmp_path):
    """Gadre et al.'s over-training law (alpha = beta) through the composed config, whose grid and bounds name beta."""
    params = np.repeat(np.geomspace(2e7, 1e9, 5), 3)
    tokens = params * 20 * np.tile([1, 4, 16], 5)
    loss = 1.8 + 400 / params ** 0.33 + 1500 / tokens ** 0.33
    Table({"params": params, "tokens": tokens, "loss": loss}).write_csv(tmp_path / "runs.csv")
    code, _, err = run_cli("fit", f"runs={tmp_path / 'runs.csv'}", "law=chinchilla", "law.tie_exponents=true",
                           "bootstrap.n=0", "plots=false", f"out={tmp_path / 'fit'}")
    assert code == 0, err
    fit = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert fit["coefficients"]["alpha"] == fit["coefficients"]["beta"] == pytest.approx(0.33, abs=0.01)


def test_data_that_does_not_scale_is_refused_or_warned_about(run_cli, tmp_path):
    """Loss rising with N: kaplan refuses in one line; chinchilla warns loudly and prints no compute-optimal NaNs."""
    params = np.repeat(np.geomspace(2e7, 1e9, 5), 3)
    tokens = 2e9 * np.tile([1, 4, 16], 5)
    loss = 2.0 + 0.2 * np.log(params / 2e7) + 1500 / tokens ** 0.33  # worse with every size
    Table({"params": params, "tokens": tokens, "loss": loss}).write_csv(tmp_path / "runs.csv")
    code, _, err = run_cli("fit", f"runs={tmp_path / 'runs.csv'}", "law=kaplan", "bootstrap.n=0", "plots=false",
                           f"out={tmp_path / 'k'}")
    assert code == 2 and "loss rises with N" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli("fit", f"runs={tmp_path / 'runs.csv'}", "law=chinchilla", "bootstrap.n=0",
                             "plots=false", f"out={tmp_path / 'c'}", "target.params=1e10", "target.tokens=2e11")
    assert code == 0, err
    assert "warning: DOES NOT SCALE: the loss does not fall with params" in out and "C^nan" not in out
    assert "compute-optimal" not in out
    assert "compute_optimal" not in json.loads((tmp_path / "c" / "fit.json").read_text())


def test_a_csv_fit_reads_a_bom_names_its_target_and_keeps_the_run_names(run_cli, tmp_path):
    """Excel's UTF-8 CSV starts with a BOM; the forecast of a CSV is `target`, not the default ladder's; backtest
    rows keep the input's own run column."""
    table = chinchilla_table(sizes=(2e7, 5e7, 1e8, 2e8, 5e8, 1e9), multiples=(1, 4, 16))  # a rung per size
    text = table.to_csv()
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    code, out, err = run_cli("fit", f"runs={tmp_path / 'bom.csv'}", "bootstrap.n=50", "plots=false",
                             f"out={tmp_path / 'fit'}", "target.params=7e9", "target.tokens=2e11",
                             "backtest=largest")
    assert code == 0, err
    fit = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert [p["name"] for p in fit["predictions"]] == ["target"]
    assert {r["rung"] for r in fit["backtest"]["rows"]} == {"n1000m"} and "n1000m" in out


def test_whole_numbers_are_written_as_integers():
    """Columns of whole numbers (seeds, counts) are written as integers; a column of measurements stays floats."""
    text = Table({"seed": [0.0, 1.0], "params": [20088.0, 3e9], "loss": [2.5, 3.0]}).to_csv()
    assert text.splitlines()[1:] == ["0,20088,2.5", "1,3000000000,3.0"]
    assert Table({"x": [0.1 + 0.2]}).to_csv().splitlines()[1] == repr(0.1 + 0.2)


def test_bootstrap_histogram_of_draws_piled_on_a_bound(tmp_path):
    """Draws that differ by rounding only (a parameter on its bound) once crashed the plot: 'Too many bins'."""
    from types import SimpleNamespace

    from ladder.fit.plots import bootstrap_exponents

    draws = np.array([1.0, 1 - 1.1e-16] * 50)
    law = SimpleNamespace(samples_={"step2.b": draws, "step2.a": np.linspace(-0.8, -0.7, 100)},
                          coefficients_={"step2.b": 1.0, "step2.a": -0.75})
    assert bootstrap_exponents(law, tmp_path / "b.png").stat().st_size > 0


def test_the_fits_n_is_one_named_choice(run_cli, tmp_path):
    """A collected table has every count: the fit takes ladder.params_convention's column and says so; columns.params
    wins when given; a CSV of other origin is fitted on its own column, stated as given. fit.json records it."""
    table = chinchilla_table(sizes=(2e7, 5e7, 1e8, 2e8, 5e8, 1e9), multiples=(1, 4, 16))
    collected = Table({**table.columns, "non_embedding_params": table["params"] * 0.8,
                       "olmo_params": table["params"] * 0.9})
    collected.write_csv(tmp_path / "collected.csv")
    common = ["bootstrap.n=0", "plots=false", "target.params=7e9", "target.tokens=2e11"]
    cases = [(["ladder=olmo"], "olmo parameters (column 'olmo_params') (ladder.params_convention)", 0.9),
             (["ladder=olmo", "ladder.params_convention=params"], "total parameters (column 'params')", 1.0),
             (["ladder=olmo", "columns.params=non_embedding_params"],
              "non_embedding parameters (column 'non_embedding_params') (columns.params)", 0.8)]
    fits = {}
    for extra, said, scale in cases:
        out = tmp_path / f"fit{len(fits)}"
        code, text, err = run_cli("fit", f"runs={tmp_path / 'collected.csv'}", *common, *extra, f"out={out}")
        assert code == 0, err
        fit = json.loads((out / "fit.json").read_text())
        assert said in fit["params_used"] and f"N: {fit['params_used']}" in text
        fits[scale] = fit["coefficients"]["A"]
    assert len({round(a, 6) for a in fits.values()}) == 3  # three different N, three different fits
    table.write_csv(tmp_path / "plain.csv")
    code, text, err = run_cli("fit", f"runs={tmp_path / 'plain.csv'}", *common, f"out={tmp_path / 'plain'}")
    assert code == 0, err
    assert "N: column 'params' of plain.csv, the count as given" in text


def test_a_ladder_must_name_its_params_convention(run_cli):
    code, _, err = run_cli("plan", "~ladder.params_convention")
    assert code == 2 and "ladder.params_convention" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("plan", "ladder.params_convention=embedding")
    assert code == 2 and "ladder.params_convention='embedding'" in err and "total, non_embedding, olmo" in err


def test_one_param_count_type_names_the_columns():
    """ParamCount's members are the columns summaries and collected tables hold; a config names either spelling."""
    from ladder.model import ParamCount, count_params
    from ladder.plan import make_plan, plan_to_dict

    assert [str(c) for c in ParamCount] == ["params", "non_embedding_params", "olmo_params"]
    assert ParamCount.named("olmo", "f") is ParamCount.named("olmo_params", "f") is ParamCount.olmo
    assert ParamCount.of_column("non_embedding_params") is ParamCount.non_embedding
    assert ParamCount.of_column("my_n") is None
    plan = make_plan(compose_config(["ladder.params_convention=olmo_params"]))
    assert plan.params_convention is ParamCount.olmo
    rung = plan.rungs[0]
    counts = count_params(rung.spec).to_dict()
    for member in ParamCount:  # every count under its member's name, as summary.json writes them
        assert counts[member] == rung.counts.by_convention(member) == rung.counts.by_convention(member.name)
    data = plan_to_dict(plan)
    assert data["params_convention"] == "olmo" and data["params_column"] == "olmo_params"


def test_an_exponent_on_its_bound_is_warned_and_its_interval_is_not_a_point():
    """Epoch's alpha is 0.35; bounded to [0.5, 1] the fit leaves it on 0.5. Its resamples start alpha (and A, its
    term's coefficient) across the grid instead of on the bound, so alpha's interval is not the bound's point."""
    from ladder.fit.simulate import simulate

    ladder, _ = simulate("exact", 0)
    law = make_law({"name": "chinchilla", "bounds": {"alpha": [0.5, 1]}}).fit(ladder)
    assert law.coefficients_["alpha"] == pytest.approx(0.5)
    assert any(w.startswith("alpha sits on its lower bound") for w in law.warnings_)
    law.bootstrap(ladder, 100, seed=0)
    lo, hi = law.ci()["alpha"]
    assert hi - lo > 0.05, (lo, hi)
    # each resample keeps the better of its two fits: starts across the grid alone left some in worse optima, with
    # beta's interval out to 10
    assert law.ci()["beta"][1] < 1
