"""Training one rung: schedules, WSD-S budgets, bitwise resume after SIGKILL, SIGTERM checkpoints, W&B ids,
DDP equality, NaN handling and checkpoint corruption."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ladder.io import read_metrics
from ladder.schedule import branch_factor, fork_step, lr_factor

ROOT = Path(__file__).resolve().parents[1]
RUNG = "tiny-14k"


def overrides(runs: Path, *extra: str) -> list[str]:
    evals = [] if "eval=[]" in extra else ["eval.next_line.limit=16"]  # a quarter of its items: evaluating was 40%
    return ["ladder=tiny", f"rung={RUNG}", f"runs_dir={runs}", "ladder.seq_len=64", "ladder.budgets=[1e4,2e4]",
            "train.log_every=1", "train.checkpoint_every=4", "train.eval_points=4", "train.eval_tokens=2048",
            "train.threads=1", "logger.wandb=disabled", "data.max_documents=300", "data.val_fraction=0.05",
            "recipe.micro_batch_sequences=4", "recipe.batch.ref_seq_len=64", "recipe.batch.base_sequences=16",
            "recipe.batch.exponent=0", *evals, *extra]  # 16 sequences at every size: 2 ranks x 2 micro-batches x 4


def ladder_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "ladder.cli", *args]


def run_train(runs: Path, *extra: str, timeout=120) -> subprocess.CompletedProcess:
    """`ladder train` as its own process, as a sweep or a Slurm job starts it (its output off a terminal)."""
    return subprocess.run(ladder_cmd("train", *overrides(runs, *extra)), capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def train_here(runs: Path, *extra: str) -> subprocess.CompletedProcess:
    """`ladder train` in this process, its prints and warnings captured as a process's stdout and stderr: for the
    runs a test neither kills nor watches (the reference, a resumption, a refusal), which in a process of their own
    spend ~5 s of their ~6 importing torch and transformers. The killed runs stay processes: their records and the
    records of runs here must agree bitwise."""
    import contextlib
    import io
    import logging

    from ladder.cli import main
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setLevel(logging.WARNING)
    logging.getLogger().addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["train", *overrides(runs, *extra)])
    finally:
        logging.getLogger().removeHandler(handler)
    return subprocess.CompletedProcess(["ladder", "train"], code, out.getvalue(), err.getvalue())


def wait_for_records(path: Path, count: int, deadline_s: float = 60) -> None:
    """Until `path` holds `count` records, or fail after `deadline_s` (a rung that never starts is a failure)."""
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        if path.exists() and path.read_text().count("\n") >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"{path}: fewer than {count} records after {deadline_s} s")


def curve(runs: Path) -> list[tuple]:
    """What must match between runs: every loss, learning rate, gradient norm and validation loss, in order."""
    records = read_metrics(runs / "tiny" / RUNG / "metrics.jsonl")
    keys = ("branch", "budget", "step", "loss", "lr", "grad_norm", "val_loss")
    return [tuple(r.get(k) for k in keys) for r in records]


def summary(runs: Path) -> dict:
    return json.loads((runs / "tiny" / RUNG / "summary.json").read_text())


# -- schedules ---------------------------------------------------------------------------------------------------
def test_schedule_shapes():
    cosine = {"name": "cosine", "final_lr_frac": 0.1}
    factors = [lr_factor(s, 100, 10, cosine) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == 1.0 and factors[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))
    linear = [lr_factor(s, 100, 0, {"name": "linear", "final_lr_frac": 0.0}) for s in range(100)]
    assert linear[49] == pytest.approx(0.5) and linear[-1] == pytest.approx(0.0)
    assert {lr_factor(s, 100, 5, {"name": "constant"}) for s in range(5, 100)} == {1.0}
    wsd = {"name": "wsd", "cooldown_frac": 0.2, "cooldown_shape": "linear", "final_lr_frac": 0.0}
    shape = [lr_factor(s, 100, 5, wsd) for s in range(100)]
    assert set(shape[5:80]) == {1.0} and shape[80] < 1.0 and shape[-1] == pytest.approx(0.0)
    sqrt = {**wsd, "cooldown_shape": "1-sqrt"}
    assert lr_factor(89, 100, 5, sqrt) < lr_factor(89, 100, 5, wsd)  # 1-sqrt drops faster early in the cooldown


def test_wsds_branches_end_exactly_at_their_budgets():
    schedule = {"name": "wsds", "cooldown_frac": 0.2, "cooldown_shape": "linear", "final_lr_frac": 0.0}
    assert {lr_factor(s, 1000, 10, schedule) for s in range(10, 1000)} == {1.0}  # the main run stays constant
    for budget in (50, 100, 400):
        fork = fork_step(budget, schedule)
        assert fork == budget - round(0.2 * budget)
        factors = [branch_factor(s, fork, budget, 10, schedule) for s in range(fork, budget)]
        assert factors[-1] == pytest.approx(0.0) and all(a > b for a, b in zip(factors, factors[1:]))


# -- a rung end to end ---------------------------------------------------------------------------------------------
def test_wsds_rung_yields_every_budget(reference):
    s = summary(reference)
    assert s["status"] == "done" and set(s["budgets"]) == {"10k", "20k"}
    batch = s["budgets"]["10k"]["tokens"] // s["budgets"]["10k"]["step"]
    for label, target in (("10k", 1e4), ("20k", 2e4)):
        result = s["budgets"][label]
        assert 0 <= result["tokens"] - target < batch and math.isfinite(result["loss"])
        assert result["flops"] == result["tokens"] * 6 * s["params"]
    assert s["main_steps"] == s["budgets"]["20k"]["fork_step"]  # the main run stops where the last branch leaves
    records = read_metrics(reference / "tiny" / RUNG / "metrics.jsonl")
    assert {r["branch"] for r in records if "branch" in r} == {"10k", "20k"}
    assert [r["budget"] for r in records if "budget" in r] == ["10k", "20k"]
    main = [r for r in records if "loss" in r and "branch" not in r]
    for key in ("tokens", "flops", "lr", "grad_norm", "tokens_per_s", "mfu", "elapsed_s"):
        assert key in main[0], key
    assert main[0]["mfu"] is None  # unknown peak on CPU
    run = reference / "tiny" / RUNG
    for name in ("config.yaml", "version.json", "summary.json", "checkpoints/latest"):
        assert (run / name).exists(), name
    version = json.loads((run / "version.json").read_text())
    assert version["data_fingerprint"] == s["data_fingerprint"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert version["git_commit"] == head and len(head) == 40  # the code this run was trained with
    assert "resolved_rung" in (run / "config.yaml").read_text()


def test_finished_rung_is_not_retrained(reference):
    before = (reference / "tiny" / RUNG / "metrics.jsonl").read_bytes()
    result = train_here(reference)
    assert result.returncode == 0 and "done" in result.stdout
    assert (reference / "tiny" / RUNG / "metrics.jsonl").read_bytes() == before


@pytest.mark.slow
def test_sigkill_and_resume_is_bitwise_identical(reference, tmp_path):
    """Killed after 3 metrics records, its resumption after 11 and that one's after 22: one chain of three kills,
    four trainers where three separate kills started six."""
    metrics = tmp_path / "tiny" / RUNG / "metrics.jsonl"
    for kill_after in (3, 11, 22):  # a resumption first cuts the records back to its checkpoint's: then they grow
        process = subprocess.Popen(ladder_cmd("train", *overrides(tmp_path)), cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        wait_for_records(metrics, kill_after, deadline_s=120)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert summary(tmp_path)["status"] == "running", kill_after  # killed: nothing was marked done
    result = train_here(tmp_path)
    assert result.returncode == 0, result.stderr
    assert curve(tmp_path) == curve(reference)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])  # Slurm's warning, and Ctrl-C
def test_sigterm_and_sigint_checkpoint_and_exit_cleanly(reference, tmp_path, sig):
    metrics = tmp_path / "tiny" / RUNG / "metrics.jsonl"
    process = subprocess.Popen(ladder_cmd("train", *overrides(tmp_path)), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    wait_for_records(metrics, 6)
    process.send_signal(sig)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 75 and f"interrupted ({sig.name})" in out, err[-2000:]
    assert "Traceback" not in err
    s = summary(tmp_path)
    assert s["status"] == "interrupted" and sig.name in s["reason"]
    latest = (tmp_path / "tiny" / RUNG / "checkpoints" / "latest").read_text().strip()
    assert int(latest.split("_")[1].split(".")[0]) == s["steps_done"] > 0
    assert train_here(tmp_path).returncode == 0
    assert curve(tmp_path) == curve(reference)


@pytest.mark.slow
def test_wandb_run_id_survives_restarts_offline(cache, tmp_path):
    metrics = tmp_path / "tiny" / RUNG / "metrics.jsonl"
    # no WANDB_SERVICE: a W&B service inherited from another process would hold runs of the same id
    env = {**{k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}, "WANDB_MODE": "offline",
           "WANDB_API_KEY": ""}
    process = subprocess.Popen(ladder_cmd("train", *overrides(tmp_path, "logger.wandb=auto")), cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=open(tmp_path / "first.err", "w"))
    wait_for_records(metrics, 5)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    first = summary(tmp_path)["wandb_id"]
    assert first, (tmp_path / "first.err").read_text()[-2000:]  # W&B's own warning, when it failed to start
    result = subprocess.run(ladder_cmd("train", *overrides(tmp_path, "logger.wandb=auto")), cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert first and summary(tmp_path)["wandb_id"] == first and first.startswith(f"tiny-{RUNG}-")
    runs = list((tmp_path / "tiny" / RUNG / "wandb").glob(f"offline-run-*-{first}"))
    assert len(runs) == 2  # two sessions of one W&B run


@pytest.mark.slow
def test_ddp_matches_single_process(reference, tmp_path):
    """FSDP's match is checked by test_fsdp_run_interrupted_and_resumed, on a run that is stopped and resumed."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
               "-m", "ladder.cli", "train", *overrides(tmp_path, "train.fsdp=false")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert_matches_single_process(curve(reference), curve(tmp_path))
    assert summary(tmp_path)["world_size"] == 2


def assert_matches_single_process(single: list[tuple], sharded: list[tuple]) -> None:
    """Same data, same global batch: equal up to float reduction order, whose drift grows slowly with the steps."""
    assert [r[:3] for r in single] == [r[:3] for r in sharded]
    for i, (a, b) in enumerate(zip(single, sharded)):
        loss, lr, grad_norm, val_loss = a[3:]
        tolerance = 1e-6 if i < 6 else 1e-3
        for x, y in ((loss, b[3]), (val_loss, b[6])):
            if x is not None:
                assert y == pytest.approx(x, rel=tolerance), (i, a, b)
        if grad_norm is not None:
            assert b[5] == pytest.approx(grad_norm, rel=1e-2) and b[4] == pytest.approx(lr, rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("sharding", ["ddp", "fsdp"])
def test_compiled_ddp_and_fsdp_reach_the_single_process_losses(reference, tmp_path, sharding):
    """train.compile=true (the default on CUDA) under DDP and FSDP2, on CPU with gloo: the compiled graph with
    DDP's buckets inside it, gradient accumulation's no_sync, and the evaluations through the model itself. The
    backend is aot_eager: Dynamo's graphs and AOTAutograd's, as on a GPU, without Inductor's C++ kernels for the
    CPU (a GPU runs Triton kernels instead; bench_gpu's CPU test compiles with Inductor). Measured alone with a
    cold cache: both tests 68 s -> 42 s, 136 -> 96 s of CPU."""
    port = 29521 if sharding == "ddp" else 29522
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
               "-m", "ladder.cli", "train", *overrides(tmp_path, f"train.fsdp={sharding == 'fsdp'}",
                                                       "train.compile=true", "train.compile_backend=aot_eager")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(compiled, aot_eager)" in result.stdout
    ours, theirs = summary(tmp_path)["budgets"], summary(reference)["budgets"]
    assert {k: pytest.approx(v["loss"], rel=1e-3) for k, v in theirs.items()} == {k: v["loss"] for k, v in ours.items()}


def diverge_at(monkeypatch, step_index: int, value: float) -> None:
    """Make the training step with index `step_index` return `value` as its loss (the step numbered one more)."""
    import torch

    from ladder.train.loop import Trainer
    original = Trainer.train_step

    def diverging(self, step, lr):
        loss, grad_norm = original(self, step, lr)
        return (torch.full_like(loss, value) if step == step_index else loss), grad_norm

    monkeypatch.setattr(Trainer, "train_step", diverging)


def test_nan_loss_fails_the_rung_and_keeps_the_last_good_checkpoint(cache, tmp_path, monkeypatch, capsys):
    from ladder.cli import main
    diverge_at(monkeypatch, 9, float("nan"))  # step 10
    assert main(["train", *overrides(tmp_path)]) == 1
    s = summary(tmp_path)
    assert s["status"] == "failed" and "loss is nan at step 10" in s["reason"]
    assert s["diverged"] is True  # what ladder tune reads: this learning rate is too high, never retrained
    latest = (tmp_path / "tiny" / RUNG / "checkpoints" / "latest").read_text().strip()
    assert latest.startswith("step_00000008")  # the last checkpoint before the NaN (the fork at step 8)
    assert "failed: loss is nan at step 10" in capsys.readouterr().out


def test_corrupt_checkpoint_falls_back_to_the_previous(reference, tmp_path, caplog):
    import shutil

    import torch

    from ladder.train.checkpoint import Checkpoints
    directory = tmp_path / "ck"
    checkpoints = Checkpoints(directory, keep=3)
    for step in (4, 8):
        checkpoints.save({"step": step, "w": torch.ones(3) * step}, step)
    (directory / "step_00000008.pt").write_bytes((directory / "step_00000008.pt").read_bytes()[:-5])
    with caplog.at_level("WARNING"):
        state = checkpoints.load_latest()
    assert state["step"] == 4
    assert "step_00000008.pt is unusable (truncated" in caplog.text
    # and a whole rung resumes from the previous checkpoint when its latest is corrupt
    shutil.copytree(reference / "tiny", tmp_path / "runs" / "tiny")
    rung = tmp_path / "runs" / "tiny" / RUNG
    (rung / "summary.json").write_text(json.dumps({**summary(reference), "status": "running"}))
    name = (rung / "checkpoints" / "latest").read_text().strip()
    raw = bytearray((rung / "checkpoints" / name).read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (rung / "checkpoints" / name).write_bytes(bytes(raw))
    result = train_here(tmp_path / "runs")
    assert result.returncode == 0 and "sha256 mismatch" in result.stderr
    assert curve(tmp_path / "runs") == curve(reference)


def test_changed_config_in_the_same_run_dir_is_refused(reference, tmp_path):
    import shutil
    shutil.copytree(reference / "tiny", tmp_path / "tiny")
    (tmp_path / "tiny" / RUNG / "summary.json").write_text(json.dumps({**summary(reference), "status": "running"}))
    result = train_here(tmp_path, "recipe.beta2=0.99")
    assert result.returncode == 2 and "holds a run of a different configuration" in result.stderr


@pytest.mark.slow
def test_fsdp_run_interrupted_and_resumed(reference, tmp_path):
    """The sharded path's checkpoint (a gathered full state) loads back into FSDP2 and the run continues, matching
    the single process as DDP does (one FSDP run checks both: each launch of two ranks costs ~15 s of CPU)."""
    metrics = tmp_path / "tiny" / RUNG / "metrics.jsonl"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29519",
               "-m", "ladder.cli", "train", *overrides(tmp_path, "train.fsdp=true")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    assert wait_for_lines(metrics, 14)
    os.killpg(process.pid, signal.SIGTERM)  # Slurm signals every process of the job
    process.wait(timeout=120)
    assert summary(tmp_path)["status"] == "interrupted"
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary(tmp_path)["status"] == "done" and summary(tmp_path)["world_size"] == 2
    assert_matches_single_process(curve(reference), curve(tmp_path))  # across the stop as if never stopped


def wait_for_lines(path: Path, lines: int, timeout: float = 120) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.read_text().count("\n") >= lines:
            return True
        time.sleep(0.01)
    return False


def test_wandb_mode_disabled_in_the_config_wins_over_the_environment(monkeypatch):
    from ladder.train.wandb_log import resolve_mode

    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode("disabled") == "disabled"  # else in-process rungs start a W&B service the config refused
    assert resolve_mode("online") == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode("auto") == "disabled"


def test_schedule_columns_give_the_lr_the_loop_logged(reference):
    """The curve law's LR history comes from the loop's own schedule code: at every logged step of the main run and
    of each cooldown branch, lr_frac times the peak is the LR the loop used, and the area grows with it."""
    import numpy as np

    from ladder.fit.curves import run_schedule, schedule_columns

    run = reference / "tiny" / RUNG
    recipe, budgets = run_schedule(run)
    records = [r for r in read_metrics(run / "metrics.jsonl") if "lr" in r]
    columns = schedule_columns(recipe, budgets, [r["tokens"] for r in records], [r.get("branch") for r in records])
    logged = np.array([r["lr"] for r in records]) / recipe["lr"]
    assert np.allclose(columns["lr_frac"], logged, rtol=1e-9, atol=1e-12)
    main = [i for i, r in enumerate(records) if "branch" not in r]
    assert np.all(np.diff(columns["lr_area_tokens"][main]) > 0)
    assert any("branch" in r for r in records), "the WSD-S rung logged no cooldown step"


def test_auto_threads_share_the_owned_cpus_and_take_no_more_than_omp_num_threads(monkeypatch):
    """train.threads=auto: the process's CPUs shared among its node's ranks; a lone process capped by OMP_NUM_THREADS
    where set (tests/conftest.py sets it to 1 in each xdist worker: an in-process rung with 2 threads beside two
    busy workers ran 10x slower), but not torchrun's ranks, for which torchrun sets it to 1 by default."""
    import torch

    from ladder.distributed import Dist, set_threads
    before = torch.get_num_threads()
    monkeypatch.setattr("ladder.distributed.owned_cpus", lambda: 8)
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert set_threads("auto", Dist(world_size=2, local_world_size=2)) == 4
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert set_threads("auto", Dist()) == 3 and torch.get_num_threads() == 3
        assert set_threads(6, Dist()) == 6  # a number given is taken as it is
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert set_threads("auto", Dist(world_size=2, local_world_size=2)) == 4
    finally:
        torch.set_num_threads(before)
