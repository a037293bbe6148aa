"""The Chinchilla reproduction (Besiroglu et al. 2024), held to the published numbers."""

import numpy as np
import pytest

from ladder.fit.laws import make_law
from ladder.fit.reproduce import EPOCH_CI, EPOCH_GRID_OBJECTIVE, load_chinchilla


@pytest.fixture(scope="module")
def chinchilla_fit(request):
    from conftest import CHINCHILLA_CSV
    if not CHINCHILLA_CSV.exists():
        pytest.skip(f"reference data not found at {CHINCHILLA_CSV}")
    table = load_chinchilla(CHINCHILLA_CSV)
    return table, make_law({"name": "chinchilla"}).fit(table).bootstrap(table, 4000, seed=0)


def test_drops_the_five_highest_losses(chinchilla_fit):
    table, _ = chinchilla_fit
    assert len(table) == 240 and table["loss"].max() < 3.5


def test_point_estimate_matches_epoch(chinchilla_fit):
    _, law = chinchilla_fit
    p = law.coefficients_
    assert law.objective_["n_starts"] == 4500
    assert law.objective_["value"] <= EPOCH_GRID_OBJECTIVE + 0.0000001  # 0.0010183
    assert p["E"] == pytest.approx(1.817, abs=0.005)
    assert p["alpha"] == pytest.approx(0.347, abs=0.005)
    assert p["beta"] == pytest.approx(0.367, abs=0.01)
    assert p["A"] == pytest.approx(477.84, rel=0.05) and p["B"] == pytest.approx(2143.86, rel=0.1)
    assert not law.warnings_


def test_bootstrap_intervals_match_epoch(chinchilla_fit):
    _, law = chinchilla_fit
    ci = law.ci()
    for name in ("E", "alpha", "beta"):
        width = EPOCH_CI[name][1] - EPOCH_CI[name][0]
        assert ci[name][0] == pytest.approx(EPOCH_CI[name][0], abs=0.1 * width), name
        assert ci[name][1] == pytest.approx(EPOCH_CI[name][1], abs=0.1 * width), name
    for name in ("A", "B"):  # weakly identified: compare loosely
        assert ci[name][0] == pytest.approx(EPOCH_CI[name][0], rel=0.25), name
        assert ci[name][1] == pytest.approx(EPOCH_CI[name][1], rel=0.25), name


def test_hoffmann_published_fit_is_worse_on_these_points(chinchilla_fit):
    import numpy as np

    from ladder.fit.powerlaw import huber
    table, law = chinchilla_fit
    h = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    predicted = h["E"] + h["A"] / table["params"] ** h["alpha"] + h["B"] / table["tokens"] ** h["beta"]
    hoffmann_objective = huber(np.log(predicted) - np.log(table["loss"]), 1e-3).sum()
    assert hoffmann_objective > 1.5 * law.objective_["value"]


def test_reproduce_command(run_cli, chinchilla_csv, tmp_path):
    code, out, err = run_cli("reproduce", "chinchilla", f"path={chinchilla_csv}", "bootstrap.n=50",
                             f"out={tmp_path}")
    assert code == 0, err
    assert "Epoch grid L-BFGS-B" in out and "Hoffmann 2022" in out and "0.00101827" in out
    assert (tmp_path / "fit.json").exists()


@pytest.mark.parametrize("dataset", ["chinchilla", "olmo", "gadre"])
def test_reproduce_offline_is_one_line(run_cli, tmp_path, monkeypatch, dataset):
    import urllib.request
    monkeypatch.setenv("LADDER_CACHE", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    code, out, err = run_cli("reproduce", dataset)
    assert code == 2 and err.count("\n") == 1 and "pass path=" in err


def test_reproduce_downloads_are_pinned(run_cli, tmp_path, monkeypatch, gadre_csv):
    """`ladder reproduce gadre` with no path= downloads their raw files (served here from ../shared's copies),
    checks each against its pinned sha256, parses them as their code does and gives the published errors; a file
    changed upstream is refused in one line."""
    import io
    import json
    import urllib.request

    from ladder.fit.reproduce import GADRE_PUBLISHED, GADRE_URL

    raw = gadre_csv.parent / "raw"
    served = {}

    def serve(url, timeout=None):
        assert url.startswith(GADRE_URL)
        served[url] = True
        return io.BytesIO(served.get("tamper", b"") + (raw / url[len(GADRE_URL):]).read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    monkeypatch.setenv("LADDER_CACHE", str(tmp_path / "cache"))
    code, out, err = run_cli("reproduce", "gadre", "format=json")
    assert code == 0, err
    assert len(served) == 16  # a model file and an eval file for each of the 8 runs
    ours = json.loads(out)["ours"]
    for quantity, published in GADRE_PUBLISHED.items():
        assert ours[quantity] == pytest.approx(list(published), abs=5e-6)
    served["tamper"] = b" "
    monkeypatch.setenv("LADDER_CACHE", str(tmp_path / "fresh"))
    code, _, err = run_cli("reproduce", "gadre")
    assert code == 2 and "changed upstream" in err and err.count("\n") == 1


@pytest.fixture
def gadre_csv():
    from conftest import SHARED

    path = SHARED / "refdata" / "gadre" / "runs_flat.csv"
    if not path.exists():
        pytest.skip(f"reference data not found at {path} (../shared is absent outside this workplace)")
    return path


def test_gadre_over_training_and_error_laws_from_the_cli(run_cli, gadre_csv, tmp_path):
    """Gadre et al. 2024's published relative errors: the over-training law (alpha = beta, least squares on the
    loss) on five runs, 0.7103% (1.4B at M=640) and 0.7320% (6.9B at M=20); their error law on those runs and
    open_lm_1b at M=20, chained on the forecast loss, 3.6365% and 0.0464% of the 17-task average top-1 error."""
    import json

    import numpy as np

    from ladder.fit.table import Table

    from ladder.fit.reproduce import GADRE_ERROR_RUNS, GADRE_RUNS, GADRE_TARGETS, gadre_rows

    raw = Table.read_csv(gadre_csv)

    def rows(runs):
        return gadre_rows(raw, runs)

    def write(name, picked, loss=None):
        table = Table({"name": [raw["name"][i] for i in picked], "params": raw["N_params"][picked],
                       "tokens": raw["D_tokens"][picked], "loss": raw["loss_c4_val"][picked] if loss is None else loss,
                       "err_avg17": raw["err_avg17"][picked]})
        table.write_csv(tmp_path / name)
        return tmp_path / name

    def forecasts(name, runs, targets_csv, *law):
        code, _, err = run_cli("fit", f"runs={runs}", *law, "bootstrap.n=0", "plots=false",
                               f"targets={targets_csv}", f"out={tmp_path / name}")
        assert code == 0, err
        return np.array([p["value"] for p in json.loads((tmp_path / name / "fit.json").read_text())["predictions"]])

    targets = rows(GADRE_TARGETS)
    loss = forecasts("loss", write("five.csv", rows(GADRE_RUNS)), write("targets.csv", targets), "law=chinchilla",
                     "law.tie_exponents=true", "law.objective=mse")
    np.testing.assert_allclose(100 * np.abs(loss / raw["loss_c4_val"][targets] - 1), [0.7103, 0.7320], atol=5e-4)
    six = write("six.csv", rows(GADRE_ERROR_RUNS))
    error = forecasts("error", six, write("chained.csv", targets, loss=loss), "law=exp_error", "law.error=err_avg17")
    np.testing.assert_allclose(100 * np.abs(error / raw["err_avg17"][targets] - 1), [3.6365, 0.0464], atol=5e-4)
    # its backtest scores the error column, not the loss
    code, _, err = run_cli("fit", f"runs={six}", "law=exp_error", "law.error=err_avg17", "bootstrap.n=0",
                           "plots=false", "backtest=largest", f"out={tmp_path / 'bt'}")
    assert code == 0, err
    held = json.loads((tmp_path / "bt" / "fit.json").read_text())["backtest"]["rows"]
    assert [r["actual"] for r in held] == pytest.approx(list(raw["err_avg17"][rows([("open_lm_1b", 20)])]))


@pytest.fixture(scope="module")
def olmo_dir():
    from conftest import SHARED

    path = SHARED / "refdata" / "olmo-ladder"
    if not path.exists():
        pytest.skip(f"reference data not found at {path} (../shared is absent outside this workplace)")
    return path


@pytest.fixture(scope="module")
def olmo_reproduced(olmo_dir) -> dict[str, dict]:
    """`ladder reproduce olmo format=json`'s rows by task, run once for the module (eight two-step fits)."""
    import contextlib
    import io
    import json

    from ladder.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["reproduce", "olmo", f"path={olmo_dir}", "format=json"]) == 0
    return {row["task"]: row for row in json.loads(out.getvalue())["rows"]}


def test_olmo_ladder_two_step_predictions(olmo_dir, olmo_reproduced):
    """The OLMo ladder's published two-step forecasts of its 13B-5T run (chained_main.csv, 8 tasks) and of 7B-4T
    (MMLU 0.4838, HellaSwag 0.8252), from its 16 runs, with two_step's default rules and each task's chance (the
    13B-5T ones as `ladder reproduce olmo` fits them)."""
    from ladder.fit.reproduce import OLMO_TARGETS, load_olmo_task
    from ladder.fit.table import Table

    published = Table.read_csv(olmo_dir / "chained_main.csv")
    assert len(published) == 8 and len(olmo_reproduced) == 8
    for task, expected in zip(published["Task"], published["Pred"]):
        assert olmo_reproduced[str(task)]["accuracy"] == pytest.approx(expected, abs=1e-6), task
    assert olmo_reproduced["mmlu_avg_test_5shot"]["task_loss"] == pytest.approx(0.75016, abs=1e-4)
    for task, expected in (("mmlu_avg_test_5shot", 0.4838), ("hellaswag_val_5shot", 0.8252)):
        law = make_law({"name": "two_step"}).fit(load_olmo_task(olmo_dir / "ladder-runs", task))
        params, tokens = OLMO_TARGETS["7B-4T"]
        assert law.predict(Table({"params": [params], "tokens": [tokens]})).value[0] == pytest.approx(
            expected, abs=1e-4)


def test_two_step_on_a_checkpoint_table_matches_reproduce_olmo(run_cli, olmo_dir, olmo_reproduced, tmp_path):
    """A user who collects the OLMo ladder's checkpoints as a table (final=1 on each run's last row) and fits
    law=two_step gets what `ladder reproduce olmo` gives: step 1 averages each run's last step1.window evaluations,
    whatever the final column says."""
    import json

    from ladder.fit.reproduce import OLMO_TARGETS, load_olmo_task
    from ladder.fit.table import Table

    task = load_olmo_task(olmo_dir / "ladder-runs", "mmlu_avg_test_5shot")
    runs = np.asarray(task["run"])
    final, step = np.zeros(len(task), int), np.zeros(len(task), int)
    for run in dict.fromkeys(runs):
        idx = np.flatnonzero(runs == run)
        final[idx[np.argmax(task["tokens"][idx])]], step[idx] = 1, np.arange(len(idx))
    Table({"rung": runs, "params": task["params"], "tokens": task["tokens"], "step": step, "final": final,
           "mmlu_bpb": task["task_loss"], "mmlu_acc": task["accuracy"]}).write_csv(tmp_path / "checkpoints.csv")
    params, tokens = OLMO_TARGETS["13B-5T"]
    code, out, err = run_cli("fit", f"runs={tmp_path / 'checkpoints.csv'}", "law=two_step", "columns.run=rung",
                             "columns.task_loss=mmlu_bpb", "columns.accuracy=mmlu_acc", "law.step2.minimum=0.25",
                             f"target.params={params}", f"target.tokens={tokens}", "bootstrap.n=0",
                             "interval.method=bootstrap", "plots=false", f"out={tmp_path / 'fit'}", "format=json")
    assert code == 0, err
    fitted = {p["metric"]: p["value"] for p in json.loads(out)["predictions"]}
    reproduced = olmo_reproduced["mmlu_avg_test_5shot"]
    assert fitted["accuracy"] == pytest.approx(reproduced["accuracy"], abs=1e-6)
    assert fitted["task_loss"] == pytest.approx(reproduced["task_loss"], abs=1e-6)


def test_reproduce_olmo_and_gadre_commands(run_cli, olmo_reproduced, gadre_csv):
    import json

    from ladder.fit.reproduce import GADRE_PUBLISHED

    assert all(abs(r["accuracy"] - r["published"]) < 1e-5 for r in olmo_reproduced.values())
    code, out, err = run_cli("reproduce", "gadre", f"path={gadre_csv.parent}", "format=json")
    assert code == 0, err
    ours = json.loads(out)["ours"]
    for quantity, published in GADRE_PUBLISHED.items():
        assert ours[quantity] == pytest.approx(list(published), abs=5e-6)
