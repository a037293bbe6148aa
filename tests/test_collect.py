import json

import pytest

from fit_data import chinchilla_loss
from ladder.errors import LadderError
from ladder.fit.collect import collect_runs, collect_wandb
from ladder.fit.table import Table


def summary(rung, params, budgets, status="done", evals=None):
    return {"status": status, "ladder": "tiny", "rung": rung, "size": rung, "seed": 0, "params": params,
            "non_embedding_params": params * 0.8, "olmo_params": params * 0.9, "flops_convention": "chinchilla_6nd",
            "budgets": {label: {"tokens": tokens, "flops": 6 * params * tokens,
                                "loss": None if loss is None else loss, "eval": evals or {}}
                        for label, (tokens, loss) in budgets.items()}}


def write_runs(root, sizes=(2e4, 5e4, 1e5, 2.5e5)):
    for n in sizes:
        budgets = {f"{m}xC": (20 * m * n, chinchilla_loss(n * 1e3, 20 * m * n * 1e3)) for m in (0.5, 1, 2)}
        rung = f"tiny-{int(n / 1e3)}k"
        (root / "tiny" / rung).mkdir(parents=True)
        (root / "tiny" / rung / "summary.json").write_text(json.dumps(summary(rung, n, budgets,
                                                                             evals={"arc/acc": 0.3})))
    return root


def test_collect_rows_per_rung_and_budget(tmp_path):
    table = collect_runs(write_runs(tmp_path))
    assert len(table) == 12
    for column in ("ladder", "rung", "seed", "budget", "params", "non_embedding_params", "tokens", "flops",
                   "flops_convention", "loss", "eval/arc/acc"):
        assert column in table, column
    assert set(table["budget"].tolist()) == {"0.5xC", "1xC", "2xC"}


def test_running_rung_contributes_finished_budgets_only(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "summary.json").write_text(json.dumps(summary("r", 1e5, {"1xC": (2e6, 3.1),
                                                                               "2xC": (4e6, None)}, "running")))
    table = collect_runs(tmp_path)
    assert len(table) == 1 and table["budget"][0] == "1xC"


def test_corrupt_summary_is_an_error_not_skipped(tmp_path):
    write_runs(tmp_path)
    (tmp_path / "tiny" / "tiny-20k" / "summary.json").write_text('{"status": "done", "lad')
    with pytest.raises(LadderError, match="tiny-20k/summary.json: corrupt JSON"):
        collect_runs(tmp_path)


def test_collect_from_wandb_with_the_public_api_shape():
    class Run:
        def __init__(self, i, s):
            self.id, self.summary = i, {"ladder/summary": s}

    class Api:
        def runs(self, project):
            assert project == "me/ladders"
            return [Run("a", summary("x", 1e5, {"1xC": (2e6, 3.0)})), Run("b", summary("y", 2e5, {"1xC": (4e6, 2.8)}))]

    table = collect_wandb("me/ladders", api=Api())
    assert table["rung"].tolist() == ["x", "y"] and table["loss"].tolist() == [3.0, 2.8]


def test_collect_cli_writes_csv(run_cli, tmp_path):
    write_runs(tmp_path / "runs")
    code, out, err = run_cli("collect", "ladder=tiny", f"runs_dir={tmp_path / 'runs'}", f"out={tmp_path / 't.csv'}")
    assert code == 0, err
    assert "collected 12 rows" in out
    assert len(Table.read_csv(tmp_path / "t.csv")) == 12


def test_fit_on_runs_dir_forecasts_the_ladders_target(run_cli, tmp_path):
    write_runs(tmp_path / "runs")
    code, out, err = run_cli("fit", "ladder=tiny", f"runs_dir={tmp_path / 'runs'}", "bootstrap.n=20",
                             f"out={tmp_path / 'fit'}", "law.grid.a=[0,5,10]", "law.grid.b=[0,5,10]")
    assert code == 0, err
    saved = json.loads((tmp_path / "fit" / "fit.json").read_text())
    (prediction,) = saved["predictions"]
    # the tiny ladder's N is non-embedding (ladder.params_convention), the target's 664800 of its 689376
    assert prediction["name"] == "tiny-665k" and prediction["params"] == 664800
    assert saved["params_used"].startswith("non_embedding parameters")
    # columns.params names another count: the target is forecast at that count too
    code, out, err = run_cli("fit", "ladder=tiny", f"runs_dir={tmp_path / 'runs'}", "bootstrap.n=0", "plots=false",
                             f"out={tmp_path / 'total'}", "++columns.params=params", "law.grid.a=[0,5,10]",
                             "law.grid.b=[0,5,10]")
    assert code == 0, err
    assert json.loads((tmp_path / "total" / "fit.json").read_text())["predictions"][0]["params"] == 689376
    assert prediction["tokens"] >= 20 * 664800  # 1xC in the recipe's `olmo` count
