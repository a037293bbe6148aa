import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # one file per worker, a worker per core and one spare (pyproject's addopts, the hook below): each worker's BLAS
    # and torch on one thread, its subprocesses too, or the workers' spinning thread pools share the cores and a fit
    # runs 4x slower than alone
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CHINCHILLA_CSV = SHARED / "refdata" / "chinchilla" / "svg_extracted_data.csv"


@pytest.fixture
def chinchilla_csv() -> Path:
    if not CHINCHILLA_CSV.exists():
        pytest.skip(f"reference data not found at {CHINCHILLA_CSV} (../shared is absent outside this workplace)")
    return CHINCHILLA_CSV


@pytest.fixture
def run_cli(capsys):
    """Run `ladder ARGS...` in-process; returns (exit code, stdout, stderr)."""
    from ladder.cli import main

    def run(*args: str):
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


# -- a tiny rung trained once per module (tests/test_train.py's settings) -------------------------------------
@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A prepared corpus shared by the module (and by subprocesses, through LADDER_CACHE, set for the module only)."""
    from ladder.cli import main
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LADDER_CACHE", str(path))
        assert main(["prepare", "data.max_documents=300", "data.val_fraction=0.05"]) == 0
        yield path


@pytest.fixture(scope="module")
def reference(cache, tmp_path_factory):
    """The rung trained once, uninterrupted, in this process: the curve that killed and resumed runs, each started as
    a process of its own, must reproduce bitwise."""
    runs = tmp_path_factory.mktemp("reference")
    from test_train import train_here
    result = train_here(runs)
    assert result.returncode == 0, result.stderr
    return runs


# the longest files first (wall time under `-n auto`, measured with a per-test timeline), so that with one file per
# worker no worker is left alone with a long file at the end. test_slurm.py mostly waits on its cluster: it starts
# first and its waiting overlaps the others' work. test_bench_gpu.py compiles for ~70 s when Inductor's cache is cold
# (a fresh machine). pyproject's `--no-loadscope-reorder` keeps this order: xdist's default sorts files by their
# number of tests, and test_slurm.py then started at 7.5 min and ended the suite alone.
LONGEST_FIRST = ["test_slurm.py", "test_calibration.py", "test_train.py", "test_faults.py", "test_design.py",
                 "test_demo.py", "test_bench_gpu.py", "test_data.py", "test_report.py", "test_fit_pipeline.py",
                 "test_tune.py", "test_sweep.py", "test_watching.py", "test_fit_reproduce.py", "test_curves.py",
                 "test_plan.py", "test_api.py", "test_run_files.py", "test_export.py", "test_evals_loop.py"]


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker more than the cores. Part of the suite waits (on rung subprocesses, Slurm jobs, kill
    timers), and a spare worker fills it: on 2 cores 26 min with 2 workers, 22 with 3."""
    return (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
