"""On a real single-node Slurm cluster (scripts/slurm_local.sh): sweeps through submitit, the sbatch template,
requeue mid-run, and a crashing rung. Skipped, with the reason, where the cluster cannot be brought up."""

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
TINY = ["ladder.seq_len=64", "logger.wandb=disabled", "data.max_documents=300", "data.val_fraction=0.05",
        "train.eval_points=2", "train.eval_tokens=2048", "train.device=cpu", "train.threads=1", "sweep.cpus=1"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("bringing up Slurm needs root")
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        pytest.skip("no apt-get to install slurm-wlm")
    up = subprocess.run(["bash", str(ROOT / "scripts" / "slurm_local.sh")], capture_output=True, text=True,
                        timeout=600)
    if up.returncode != 0:
        pytest.skip(f"could not bring up Slurm: {up.stderr.strip().splitlines()[-1:] or up.stdout}")
    cache = tmp_path_factory.mktemp("cache")
    env = {**os.environ, "LADDER_CACHE": str(cache), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run([sys.executable, "-m", "ladder.cli", "prepare", "data.max_documents=300",
                    "data.val_fraction=0.05"], check=True, env=env, capture_output=True)
    return env


def ladder(env, *args, timeout=900):
    return subprocess.run([sys.executable, "-m", "ladder.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=timeout)


def summary(runs: Path, rung: str, ladder_name: str = "tiny") -> dict:
    return json.loads((runs / ladder_name / rung / "summary.json").read_text())


def wait_for(predicate, timeout=300, every=0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def test_submitit_sweep_of_three_rungs_completes_and_collects(cluster, tmp_path):
    runs = tmp_path / "runs"
    result = ladder(cluster, "sweep", f"runs_dir={runs}", "rungs=[tiny-14k,tiny-40k,tiny-111k]",
                    "ladder.budgets=[1e4,2e4]", "hydra/launcher=slurm", "sweep.poll_s=0.5", "train.log_every=2", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    logs = {path: path.read_text() for path in (runs / "tiny" / ".sweep").glob("**/.submitit/**/*_log.out")}
    for rung in ("tiny-14k", "tiny-40k", "tiny-111k"):  # each job's Slurm log: a line per log_every, per budget
        log = next(text for text in logs.values() if f" {rung} starting at step 0" in text)
        assert re.search(rf" {rung} step 2/\d+ \| [\d.]+k tokens \| loss \d\.\d{{4}} \| .* ETA ", log), log[-2000:]
        assert f" {rung} budget 20k done at step " in log and f"{rung}: done - validation loss" in log
        assert re.search(rf" sweep tiny: {rung} done: validation loss ", result.stdout)
    collected = ladder(cluster, "collect", f"runs_dir={runs}", f"out={tmp_path / 't.csv'}", "ladder.budgets=[1e4,2e4]",
                       *TINY)
    assert collected.returncode == 0 and "collected 6 rows" in collected.stdout
    assert all(summary(runs, r)["slurm_job_id"] for r in ("tiny-14k", "tiny-40k", "tiny-111k"))


def test_submit_only_returns_at_once_and_status_follows(cluster, tmp_path):
    runs = tmp_path / "runs"
    started = time.time()
    result = ladder(cluster, "sweep", f"runs_dir={runs}", "rungs=[tiny-14k]", "ladder.budgets=[2e4,4e4]",
                    "hydra/launcher=slurm", "submit_only=true", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "submitted tiny-14k: job" in result.stdout and time.time() - started < 60
    assert wait_for(lambda: (runs / "tiny" / "tiny-14k" / "summary.json").exists()
                    and summary(runs, "tiny-14k")["status"] == "done")
    status = json.loads(ladder(cluster, "status", f"runs_dir={runs}", "format=json", "ladder.budgets=[2e4,4e4]",
                               *TINY).stdout)
    row = status["rungs"][0]
    assert row["state"] == "done" and row["slurm_job_id"]


def test_sbatch_array_template(cluster, tmp_path):
    runs = tmp_path / "runs"
    overrides = " ".join([f"runs_dir={runs}", "ladder.budgets=[1e4,2e4]", *TINY])
    env = {**cluster, "LADDER": "tiny", "OVERRIDES": overrides}
    submit = subprocess.run(["sbatch", "--parsable", "--wait", "--array=0-2", "--cpus-per-task=1", "--gpus-per-node=0",
                             f"--output={tmp_path}/slurm-%A_%a.out", str(ROOT / "slurm" / "ladder_array.sbatch")],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert submit.returncode == 0, submit.stderr + "".join(p.read_text() for p in tmp_path.glob("slurm-*.out"))
    logs = "".join(p.read_text() for p in tmp_path.glob("slurm-*.out"))
    for rung in ("tiny-14k", "tiny-40k", "tiny-111k"):
        assert summary(runs, rung)["status"] == "done"
        assert re.search(rf" {rung} step \d+/\d+ \| ", logs) and f" {rung} budget 10k done at step " in logs
    collected = ladder(cluster, "collect", f"runs_dir={runs}", f"out={tmp_path / 't.csv'}", "ladder.budgets=[1e4,2e4]",
                       *TINY)
    assert "collected 6 rows" in collected.stdout


def test_requeued_rung_resumes_to_the_same_loss(cluster, tmp_path):
    overrides = ["ladder.budgets=[4e5,8e5]", "train.checkpoint_every=20", "train.log_every=1", *TINY]  # ~200 steps
    reference = ladder(cluster, "train", "rung=tiny-14k", f"runs_dir={tmp_path / 'reference'}", *overrides)
    assert reference.returncode == 0, reference.stderr[-2000:]
    runs = tmp_path / "runs"
    env = {**cluster, "LADDER": "tiny", "OVERRIDES": " ".join([f"runs_dir={runs}", *overrides])}
    job = subprocess.run(["sbatch", "--parsable", "--array=0", "--cpus-per-task=1", "--gpus-per-node=0",
                          f"--output={tmp_path}/slurm-%A_%a.out", str(ROOT / "slurm" / "ladder_array.sbatch")],
                         capture_output=True, text=True, env=env, cwd=ROOT, check=True).stdout.strip()
    metrics = runs / "tiny" / "tiny-14k" / "metrics.jsonl"
    assert wait_for(lambda: metrics.exists() and metrics.read_text().count("\n") > 60)
    subprocess.run(["scontrol", "requeue", f"{job}_0"], check=True)

    def restarted():  # a requeued job waits for its begin time: ask Slurm to start it now, until it has
        subprocess.run(["scontrol", "update", f"jobid={job}_0", "StartTime=now"], capture_output=True)
        return "restart 1" in "".join(p.read_text() for p in tmp_path.glob("slurm-*.out"))
    assert wait_for(restarted, 300, every=2)
    assert wait_for(lambda: summary(runs, "tiny-14k")["status"] == "done", 600)
    log = "".join(p.read_text() for p in tmp_path.glob("slurm-*.out"))
    assert "interrupted (SIGTERM)" in log  # it checkpointed on the way out, then resumed
    ours, theirs = summary(runs, "tiny-14k"), summary(tmp_path / "reference", "tiny-14k")
    assert {k: v["loss"] for k, v in ours["budgets"].items()} == {k: v["loss"] for k, v in theirs["budgets"].items()}


def test_crashing_rung_is_reported_failed_and_the_sweep_ends(cluster, tmp_path):
    runs = tmp_path / "runs"
    broken = runs / "tiny" / "tiny-40k" / "checkpoints"
    broken.mkdir(parents=True)
    (broken / "step_00000004.pt").write_bytes(b"not a checkpoint")
    (broken / "step_00000004.json").write_text('{"sha256": "0", "bytes": 16, "step": 4}')
    started = time.time()
    result = ladder(cluster, "sweep", f"runs_dir={runs}", "rungs=[tiny-14k,tiny-40k]", "ladder.budgets=[1e4,2e4]",
                    "hydra/launcher=slurm", *TINY, timeout=600)
    assert result.returncode != 0 and time.time() - started < 500
    status = json.loads(ladder(cluster, "status", f"runs_dir={runs}", "format=json", "ladder.budgets=[1e4,2e4]",
                               *TINY).stdout)
    states = {r["name"]: r for r in status["rungs"]}
    assert states["tiny-14k"]["state"] == "done"
    assert states["tiny-40k"]["state"] == "failed" and "every checkpoint is corrupt" in states["tiny-40k"]["reason"]
    assert states["tiny-40k"]["slurm_job_id"]  # submitit pickles the exception: Slurm itself says COMPLETED


def test_tune_runs_its_sweep_on_slurm(cluster, tmp_path):
    out = tmp_path / "tune"
    result = ladder(cluster, "tune", "tune.sizes=[tiny-14k,tiny-40k]", "tune.lr_multipliers=[0.01,0.1,1,10,100]",
                    "tune.extend=0", "ladder.budgets=[1e4,2e4]", "hydra/launcher=slurm", f"out={out}", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    tune = json.loads((out / "tune.json").read_text())
    assert {c["size"] for c in tune["curves"]} == {"tiny-14k", "tiny-40k"} and tune["rule"]["dof"] >= 1
    runs = {r["run"] for r in tune["runs"]}
    assert len(runs) == 10
    for run in runs:  # every run was a Slurm job
        assert summary(out / "runs", run, "tiny-tune")["slurm_job_id"], run


def test_prepare_runs_as_a_job_and_the_rung_starts_after_it(cluster, tmp_path):
    """The sweep submits the data's prepare as a job of its own and the rung with a dependency on it: no rung
    tokenizes, and the rung starts only once the shards exist."""
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    env = {**cluster, "LADDER_CACHE": str(cache)}  # nothing prepared here
    result = ladder(env, "sweep", f"runs_dir={runs}", "rungs=[tiny-14k]", "ladder.budgets=[1e4]",
                    "hydra/launcher=slurm", "submit_only=true", "sweep.prepare_cpus=1", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = json.loads((runs / "tiny" / ".sweep" / "jobs.json").read_text())
    (prepare_job,) = [job for key, job in jobs.items() if key.startswith("prepare:")]
    assert f"job {prepare_job}" in result.stdout and "submitted tiny-14k: job" in result.stdout
    status = ladder(env, "status", f"runs_dir={runs}", "format=json", "ladder.budgets=[1e4]", *TINY)
    assert json.loads(status.stdout)["data"]["prepare_job"] == prepare_job, status.stderr[-2000:]
    assert wait_for(lambda: (runs / "tiny" / "tiny-14k" / "summary.json").exists()
                    and summary(runs, "tiny-14k")["status"] == "done", timeout=600)
    (manifest,) = cache.rglob("manifest.json")
    assert summary(runs, "tiny-14k")["data_fingerprint"] == json.loads(manifest.read_text())["fingerprint"]
    def accounting():
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State,Start,End", "-j",
                              f"{prepare_job},{jobs['tiny-14k']}"], capture_output=True, text=True).stdout
        return out, {line.split("|")[0]: line.split("|")[1:] for line in out.splitlines() if "|" in line}

    assert wait_for(lambda: accounting()[1].get(jobs["tiny-14k"], ["?"])[0] == "COMPLETED", timeout=120)
    times, rows = accounting()
    assert rows[prepare_job][0] == "COMPLETED", times
    assert rows[jobs["tiny-14k"]][1] >= rows[prepare_job][2], times  # ISO times: the rung started after it ended
    # the shards were written inside the prepare job, not by the sweep before it submitted (sacct: local time, 1 s)
    written = datetime.datetime.fromtimestamp(manifest.stat().st_mtime).replace(microsecond=0)
    assert datetime.datetime.fromisoformat(rows[prepare_job][1]) <= written, (times, written)
    again = ladder(env, "prepare", "hydra/launcher=slurm", "sweep.prepare_cpus=1", f"runs_dir={runs}", *TINY)
    assert again.returncode == 0 and "already prepared" in again.stdout, again.stderr[-2000:]
