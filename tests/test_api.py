"""The notebook API (`from ladder.api import collect, fit, plan`) on pandas DataFrames, agreeing with `ladder fit`; and
CSVs read through pandas as users expect (a BOM, semicolons with decimal commas, integer columns)."""

import json

import numpy as np
import pandas as pd
import pytest

from ladder.errors import LadderError
from ladder.fit.table import Table


def chinchilla_frame(seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    params = np.repeat(np.geomspace(2e7, 1e9, 5), 3).astype(np.int64)  # integer columns, as a user's CSV has
    tokens = (params * np.tile([10, 20, 40], 5)).astype(np.int64)
    loss = 1.69 + 406.4 / params ** 0.34 + 410.7 / tokens ** 0.28
    return pd.DataFrame({"run": [f"r{i}" for i in range(15)], "params": params, "tokens": tokens,
                         "loss": loss * np.exp(rng.normal(0, 0.003, 15))})


def test_fit_a_dataframe_as_ladder_fit_fits_its_csv(tmp_path, run_cli):
    from ladder.api import fit

    frame = chinchilla_frame()
    result = fit(frame, law="chinchilla", target={"params": 7e9, "tokens": 1.4e11}, bootstrap=50)
    assert set(result.coefficients) >= {"E", "A", "B", "alpha", "beta"}
    assert list(result.intervals.columns) == ["coefficient", "value", "lo", "hi"]
    assert (result.intervals["lo"] <= result.intervals["value"]).all()
    assert (result.intervals["value"] <= result.intervals["hi"]).all()
    forecast = result.forecasts.iloc[0]
    assert forecast["params"] == 7e9 and forecast["lo"] < forecast["value"] < forecast["hi"]
    frame.to_csv(tmp_path / "runs.csv", index=False)
    code, out, err = run_cli("fit", f"runs={tmp_path / 'runs.csv'}", "target.params=7e9", "target.tokens=1.4e11",
                             "bootstrap.n=50", "plots=false", f"out={tmp_path / 'fit'}", "format=json")
    assert code == 0, err
    cli = json.loads(out)
    assert cli["coefficients"] == pytest.approx(result.coefficients, rel=1e-12)  # the same config, the same numbers
    assert cli["predictions"][0]["value"] == pytest.approx(forecast["value"], rel=1e-12)
    at = result.predict(params=[7e9], tokens=[1.4e11]).iloc[0]
    assert at["value"] == pytest.approx(forecast["value"], rel=1e-12) and at["lo"] < at["value"] < at["hi"]
    plots = result.plots(tmp_path / "plots")
    assert {"loss_vs_compute.png", "residuals.png"} <= {p.name for p in plots}
    assert all(p.stat().st_size > 10_000 for p in plots)
    with pytest.raises(LadderError, match='law chinchilla forecasts no curve; fit with law="curve"'):
        result.curves


def test_collect_and_plan_give_frames_and_the_resolved_ladder(tmp_path):
    from ladder.api import collect, plan

    resolved = plan("tiny")
    assert [r.name for r in resolved.rungs] == ["tiny-14k", "tiny-40k", "tiny-111k", "tiny-201k"]
    assert plan("tiny", ["ladder.budgets=[1xC]"]).rungs[0].budgets.keys() == {"1xC"}
    with pytest.raises(Exception, match="runs=.*no summary.json"):
        collect(tmp_path)


def test_csv_with_a_bom_semicolons_and_decimal_commas_reads_as_numbers(tmp_path):
    frame = chinchilla_frame()
    text = frame.to_csv(index=False, sep=";", decimal=",")
    assert "," in text.splitlines()[1]  # decimal commas, as a European spreadsheet writes them
    (tmp_path / "eu.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    table = Table.read_csv(tmp_path / "eu.csv")
    assert list(table.columns) == ["run", "params", "tokens", "loss"]  # no BOM in the first name
    assert table["params"].dtype.kind == "f" and np.allclose(table["loss"], frame["loss"])
    assert table["run"][0] == "r0"
    out = tmp_path / "out.csv"
    table.write_csv(out)
    written = out.read_text().splitlines()
    assert written[0] == "run,params,tokens,loss" and written[1].split(",")[1] == "20000000"  # integers stay so
    assert np.array_equal(Table.read_csv(out)["loss"], table["loss"])  # floats round-trip exactly


def test_a_collected_table_is_fitted_on_the_ladders_count_as_ladder_fit_does(tmp_path, run_cli):
    from ladder.api import fit

    frame = chinchilla_frame()  # the columns ladder collect writes: every count; the tiny ladder fits non-embedding
    frame = frame.assign(non_embedding_params=(frame["params"] * 0.8).astype(np.int64),
                         olmo_params=(frame["params"] * 0.9).astype(np.int64))
    result = fit(frame, target={"params": 5.6e9, "tokens": 1.4e11}, bootstrap=20)
    assert result.params_used.startswith("non_embedding parameters (column 'non_embedding_params')")
    frame.to_csv(tmp_path / "collected.csv", index=False)
    code, out, err = run_cli("fit", f"runs={tmp_path / 'collected.csv'}", "target.params=5.6e9",
                             "target.tokens=1.4e11", "bootstrap.n=20", "plots=false", f"out={tmp_path / 'f'}",
                             "format=json")
    assert code == 0, err
    cli = json.loads(out)
    assert cli["params_used"] == result.summary["params_used"]
    assert cli["coefficients"] == pytest.approx(result.coefficients, rel=1e-12)
    excluded = fit(frame, bootstrap=0, overrides=["fit.exclude=[r0,r1,r2]"])
    assert excluded.summary["n_points"] == 12 and excluded.summary["excluded"] == ["r0", "r1", "r2"]
