"""Files ladder wrote and reads back, valid JSON of the wrong shape (issue 30): each is one line naming the file, the
field and the fix, checked where it is read by the module that owns it (rundir: summary.json, jobs.json,
metrics.jsonl; the report: history.json; tune: tune.json and grid.json; prepare: its manifest, tokenizer
description and pieces), never a traceback in status, collect, report, fit, tune or prepare."""

import json
import shutil

import pytest

from ladder.config import compose_config
from ladder.plan import make_plan
from test_report import ladder_overrides, write_rung


@pytest.fixture
def ladder_runs(tmp_path):
    """The tiny ladder's four rungs as `ladder train` leaves them (no training: summaries and metrics)."""
    runs = tmp_path / "runs"
    plan = make_plan(compose_config(ladder_overrides(runs)))
    for i, rung in enumerate(plan.rungs):
        write_rung(runs, plan, rung, finished_at=i)
    return runs


def one_line(code, err, *parts):
    """Exit 2 and one error line (a prepare's progress lines may come before it), holding each of `parts`."""
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and err.endswith(errors[0] + "\n") and "Traceback" not in err, err
    for part in parts:
        assert part in errors[0], err


def budget(s):
    return next(iter(s["budgets"]))


SUMMARY_FAULTS = [  # (what, how the summary is changed, the field the error names)
    ("a budget set to 5", lambda s: s["budgets"].update({budget(s): 5}), "budgets.0.5xC is 5, not a mapping"),
    ("a budget without tokens", lambda s: s["budgets"][budget(s)].pop("tokens"), "budgets.0.5xC.tokens is missing"),
    ("eval: x", lambda s: s["budgets"][budget(s)].update(eval="x"), 'budgets.0.5xC.eval is "x", not a mapping'),
    ("steps_done: abc", lambda s: s.update(status="running", steps_done="abc"), 'steps_done is "abc", not a number'),
    ("lease: garbage", lambda s: s.update(status="running", lease="garbage"), 'lease is "garbage", not a mapping'),
    ("lease.pid: abc", lambda s: s.update(status="running", lease={"host": "h", "pid": "abc", "heartbeat": 1.0}),
     'lease.pid is "abc", not a whole number'),
    ("heartbeat: yesterday", lambda s: s.update(status="running", lease={"host": "h", "pid": 1,
                                                                        "heartbeat": "yesterday"}),
     'lease.heartbeat is "yesterday", not a number'),
    ("params: x", lambda s: s.update(params="x"), 'params is "x", not a number'),
]


@pytest.mark.parametrize("what, change, field", SUMMARY_FAULTS, ids=[f[0] for f in SUMMARY_FAULTS])
def test_a_summary_of_the_wrong_shape_is_one_line_in_status_collect_and_report(ladder_runs, run_cli, what, change,
                                                                               field):
    path = ladder_runs / "tiny" / "tiny-40k" / "summary.json"
    summary = json.loads(path.read_text())
    change(summary)
    path.write_text(json.dumps(summary))
    for command in ("status", "collect", "report"):
        code, _, err = run_cli(command, *ladder_overrides(ladder_runs))
        one_line(code, err, f"{path}: {field}", "restore it, or delete the run directory to retrain")


def test_jobs_metrics_and_history_of_the_wrong_shape_are_one_line(ladder_runs, run_cli):
    jobs = ladder_runs / "tiny" / ".sweep" / "jobs.json"
    jobs.parent.mkdir()
    jobs.write_text('["a"]')
    one_line(*run_cli("status", *ladder_overrides(ladder_runs))[::2], f"{jobs}: the file is [\"a\"], not a mapping")
    jobs.unlink()
    metrics = ladder_runs / "tiny" / "tiny-40k" / "metrics.jsonl"
    clean = metrics.read_bytes()
    metrics.write_bytes(clean + b'{"val_loss": 3.1, "tokens": 9\xff}\n')
    lines = clean.count(b"\n") + 1
    one_line(*run_cli("collect", "curves=true", *ladder_overrides(ladder_runs))[::2],
             f"{metrics}:{lines}: corrupt metrics record; truncate the file before it")
    metrics.write_bytes(clean + b'{"val_loss": "low", "tokens": 9}\n')
    one_line(*run_cli("collect", "curves=true", *ladder_overrides(ladder_runs))[::2],
             f'{metrics}:{lines}: val_loss is "low", not a number')
    metrics.write_bytes(clean)
    history = ladder_runs / "tiny" / "report" / "history.json"
    history.parent.mkdir()
    history.write_text(json.dumps({"fingerprint": "f", "entries": [1, 2]}))
    code, _, err = run_cli("report", *ladder_overrides(ladder_runs))  # the page, its history section says why not
    assert code == 0 and "Traceback" not in err, err
    page = (ladder_runs / "tiny" / "report" / "index.html").read_text()
    assert f"{history}: entries is [1, 2], not a mapping; delete it: it is a cache" in page


def test_a_tune_json_of_the_wrong_shape_is_one_line_in_fit(tmp_path, run_cli):
    good = tmp_path / "runs.csv"
    rows = [(n, 20 * n * m) for n in (1e6, 3e6, 1e7, 3e7) for m in (1, 2)]
    good.write_text("params,tokens,loss,lr\n" + "".join(f"{n},{d},{2 + 50 / n ** 0.3 + 80 / d ** 0.3},0.01\n"
                                                      for n, d in rows))
    rule = {"form": "N", "coef": [-4.0, -0.3, 0.0], "cov": [[0.01, 0, 0], [0, 0.001, 0], [0, 0, 0]], "n_ref": 1e6,
            "m_ref": 20.0, "dof": 3, "scale": 1.0, "level": 0.95}
    tune = {"params_for": "total", "best_setting": {}, "rule": rule,
            "curves": [{"n": 1e6, "size": "s", "setting": {}, "curvature": 0.05}]}
    for change, field in ((lambda t: t.update(rule=[1, 2]), "rule is [1, 2], not a mapping"),
                          (lambda t: t["rule"].update(coef=[1, 2]), "rule.coef is [1, 2], not a list of 3 numbers"),
                          (lambda t: t.update(curves="x"), 'curves is "x", not a list'),
                          (lambda t: t["curves"][0].pop("n"), "curves[0].n is missing, not a positive number"),
                          (lambda t: t.pop("params_for"), "params_for is missing, not text")):
        broken = json.loads(json.dumps(tune))
        change(broken)
        (tmp_path / "tune.json").write_text(json.dumps(broken))
        code, _, err = run_cli("fit", f"runs={good}", f"fit.tune={tmp_path}", "bootstrap.n=10", "plots=false",
                               f"out={tmp_path / 'fit'}")
        one_line(code, err, f"fit.tune={tmp_path / 'tune.json'}: {field}", "run ladder tune again")


def test_a_tune_grid_of_the_wrong_shape_is_one_line_before_any_run(tmp_path, run_cli):
    out = tmp_path / "tune"
    out.mkdir()
    for state, field in (("[1]", "the file is [1], not a mapping"),
                         ('{"grid": {"tiny-14k": "abc"}}', 'grid.tiny-14k is "abc", not a list'),
                         ('{"grid": {"tiny-14k": [0, 1]}}', "grid.tiny-14k[0] is 0, not a positive number")):
        (out / "grid.json").write_text(state)
        code, _, err = run_cli("tune", f"out={out}", "tune.sizes=[tiny-14k,tiny-40k]", "logger.wandb=disabled")
        one_line(code, err, f"{out / 'grid.json'}: {field}")
        assert not (out / "runs").exists()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A small corpus prepared in 3 pieces: the cache to break a copy of."""
    from ladder.cli import main
    root = tmp_path_factory.mktemp("prepared")
    (root / "corpus").mkdir()
    for i in range(12):
        (root / "corpus" / f"{i}.txt").write_text(f"document {i} " * 40 + "\n")
    args = ["prepare", "data=local", f"data.path={root / 'corpus'}", "data.tokenizer.kind=bytes", "data.tasks=3",
            "data.workers=1"]
    assert main([*args, f"data.cache_dir={root / 'cache'}"]) == 0
    return root, args


def broken_copy(prepared, tmp_path, partial=True):
    """A copy of the prepared cache, as a prepare killed after its pieces leaves it (partial) or whole."""
    root, args = prepared
    shutil.copytree(root / "cache", tmp_path / "cache")
    final = next(p for p in (tmp_path / "cache").iterdir() if p.is_dir())
    if partial:
        (final / "manifest.json").unlink()
        final = final.rename(final.parent / f".{final.name}.partial")
    return final, [*args, f"data.cache_dir={tmp_path / 'cache'}"]


PREPARE_FAULTS = [
    ("piece_00001.json", lambda d: (d / "piece_00001.json").write_text("[1]"), "the file is [1], not a mapping"),
    ("piece_00001.json", lambda d: (d / "piece_00001.json").write_text('{"shards": "x"}'), 'shards is "x", not a list'),
    ("train_00001_000.bin", lambda d: (d / "train_00001_000.bin").unlink(), "missing or not the"),
    ("tokenizer-description.json", lambda d: (d / "tokenizer-description.json").write_text('{"kind": 5}'),
     "kind is 5, not one of bytes, bpe, hf"),
    ("datatrove", lambda d: (shutil.rmtree(d / "datatrove"), (d / "datatrove").write_text("x")),
     "a file where ladder keeps datatrove's logs"),
]


@pytest.mark.parametrize("name, change, message", PREPARE_FAULTS, ids=[f"{f[0]}-{i}" for i, f in
                                                                       enumerate(PREPARE_FAULTS)])
def test_a_prepare_work_directory_of_the_wrong_shape_is_one_line(prepared, tmp_path, run_cli, name, change, message):
    work, args = broken_copy(prepared, tmp_path)
    change(work)
    one_line(*run_cli(*args)[::2], f"{work / name}: {message}")


def test_a_redone_piece_resumes_the_prepare_and_a_bad_manifest_is_one_line(prepared, tmp_path, run_cli):
    work, args = broken_copy(prepared, tmp_path)
    (work / "train_00001_000.bin").unlink()
    code, _, err = run_cli(*args)
    mark = work / "datatrove" / "completions" / "00001"
    one_line(code, err, f"delete {mark} to redo that piece")
    mark.unlink()  # as the error says
    assert run_cli(*args)[0] == 0
    final = work.parent / work.name[1:].removesuffix(".partial")
    original = next(p for p in (prepared[0] / "cache").iterdir() if p.is_dir())
    assert (final / "train_00001_000.bin").read_bytes() == (original / "train_00001_000.bin").read_bytes()
    manifest = json.loads((final / "manifest.json").read_text())
    (final / "manifest.json").write_text(json.dumps({**manifest, "shards": "x"}))
    one_line(*run_cli(*args)[::2], f"{final / 'manifest.json'}: shards is \"x\", not a list")


def test_design_outputs_in_the_way_are_one_line(tmp_path, run_cli):
    small = ["design.sims=20", "design.check_sims=20", "design.largest=[0.01]", "design.n_sizes=[3]",
             "design.budgets=[[1xC,4xC]]", "design.seeds=[1]", "design.presets=false", "target.params=7e9",
             "target.tokens=1.4e11"]
    for name in ("frontier.png", "design.json"):
        out = tmp_path / name.split(".")[0]
        (out / name).mkdir(parents=True)
        code, _, err = run_cli("design", *small, f"out={out}")
        one_line(code, err, f"{out / name}: a directory where ladder keeps a file it writes")


def test_a_tune_name_is_a_plain_name_never_a_path():
    from ladder.errors import LadderError
    from ladder.tune.grid import TuneOptions

    with pytest.raises(LadderError, match=r"tune.name='../../evil': a plain name"):
        TuneOptions.from_config({"name": "../../evil"})  # the recipe file would land two directories above out=
    assert TuneOptions.from_config({"name": "wsds-tuned.v2"}).name == "wsds-tuned.v2"
