"""Sweeps on this machine (basic and local launchers), status, idempotent re-runs and refusals before launch."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["ladder.seq_len=64", "ladder.budgets=[1e4,2e4]", "logger.wandb=disabled", "data.max_documents=300",
        "data.val_fraction=0.05", "train.eval_points=2", "train.eval_tokens=2048", "train.device=cpu"]


def ladder(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "ladder.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache")
    assert ladder("prepare", "data.max_documents=300", "data.val_fraction=0.05",
                  env={"LADDER_CACHE": str(path)}).returncode == 0
    return {"LADDER_CACHE": str(path)}


@pytest.mark.slow
def test_basic_sweep_trains_every_rung_then_skips_them(cache, tmp_path):
    runs = tmp_path / "runs"
    args = ["sweep", f"runs_dir={runs}", "rungs=[tiny-14k,tiny-40k]", "sweep.poll_s=0.2", *TINY]
    first = ladder(*args, env=cache)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "tiny-14k" in first.stdout and "2 done" in first.stdout
    for rung in ("tiny-14k", "tiny-40k"):  # the sweep's log: each rung's lines (in this process) and its end
        assert re.search(rf" {rung} step \d+/\d+ \| ", first.stdout)
        assert re.search(rf" sweep tiny: {rung} done: validation loss \d\.\d{{4}} at 20k", first.stdout)
    status = json.loads(ladder("status", f"runs_dir={runs}", "format=json", *TINY, env=cache).stdout)
    states = {r["name"]: r["state"] for r in status["rungs"]}
    assert states == {"tiny-14k": "done", "tiny-40k": "done", "tiny-111k": "pending", "tiny-201k": "pending"}
    for row in status["rungs"][:2]:
        assert row["tokens_done"] == row["tokens_budget"] and row["val_loss"] > 0 and row["last_budget"] == "20k"
        assert row["budgets_done"] == row["budgets_total"] == 2 and row["eta_s"] is None
    again = ladder(*args, env=cache)
    assert again.returncode == 0 and "skipping 2 rung(s) already done" in again.stdout


@pytest.mark.slow
def test_local_launcher_runs_rungs_in_parallel_with_their_share_of_cpus(cache, tmp_path):
    runs = tmp_path / "runs"
    result = ladder("sweep", f"runs_dir={runs}", "rungs=[tiny-14k,tiny-40k]", "hydra/launcher=local",
                    "sweep.poll_s=0.2", *TINY, env=cache)
    assert result.returncode == 0, result.stderr[-2000:]
    for rung in ("tiny-14k", "tiny-40k"):  # the jobs log elsewhere; the sweep says when each ends
        assert re.search(rf" sweep tiny: {rung} done: validation loss ", result.stdout)
    for rung in ("tiny-14k", "tiny-40k"):
        summary = json.loads((runs / "tiny" / rung / "summary.json").read_text())
        assert summary["status"] == "done"
        config = (runs / "tiny" / rung / "config.yaml").read_text()
        assert "threads: 1" in config  # 2 CPUs shared by 2 parallel rungs


def test_status_of_an_untouched_ladder_is_pending(tmp_path):
    result = ladder("status", f"runs_dir={tmp_path}", "format=json")
    assert result.returncode == 0
    assert {r["state"] for r in json.loads(result.stdout)["rungs"]} == {"pending"}


@pytest.mark.parametrize("args, message", [
    (["ladder=nope"], "ladder=nope: no such ladder"),
    (["hydra/launcher=pbs"], "hydra/launcher=pbs: no such hydra/launcher"),
    (["rungs=[tiny-14k,tiny-9k]"], "rung='tiny-9k': not in ladder 'tiny'"),
    (["submit_only=true"], "submit_only=true: needs hydra/launcher=slurm or local"),
])
def test_bad_sweeps_are_refused_before_launch(tmp_path, args, message):
    result = ladder("sweep", f"runs_dir={tmp_path}", *args)
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "tiny").exists()


def test_slurm_request_beyond_the_partition_is_refused(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sinfo").write_text("#!/bin/sh\necho '2 (null)'\n")  # a 2-CPU node without GPUs
    (bin_dir / "sinfo").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = ladder("sweep", f"runs_dir={tmp_path}", "hydra/launcher=slurm", "train.device=cuda", env=env)
    assert result.returncode == 2
    assert "hydra.launcher.gpus_per_node=1: the default partition has 0 GPUs per node" in result.stderr
    result = ladder("sweep", f"runs_dir={tmp_path}", "hydra/launcher=slurm", "train.device=cpu", "sweep.cpus=8",
                    env=env)
    assert result.returncode == 2 and "cpus_per_task=8" in result.stderr and "has 2 CPUs" in result.stderr


def test_local_sweeps_run_in_waves_of_sweep_parallel_longest_first():
    from ladder.config import compose_config
    from ladder.plan import make_plan
    from ladder.sweep.run import _waves

    plan = make_plan(compose_config(["ladder=tiny"]))
    waves = _waves({(("cpus_per_task", 1),): plan.rungs}, parallel=3)
    assert [[r.name for r in wave] for wave in waves.values()] == [["tiny-201k", "tiny-111k", "tiny-40k"],
                                                                   ["tiny-14k"]]
    assert all(dict(k)["cpus_per_task"] == 1 for k in waves)
