"""Runs that never lie, never collide and never run a stranger's code: faults injected into a tiny rung's training
(kills inside checkpoint and budget writes, SIGINT, crashes, a full disk, two trainers of one rung, lost records)
and files crafted to run code. Each resumed run must reproduce the uninterrupted one bitwise."""

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time

import pytest

from ladder.io import read_metrics
from test_train import RUNG, ROOT, curve, ladder_cmd, overrides, run_train, summary, train_here, wait_for_records

# Kill the process at its Nth atomic write, with the temp file half written: a crash inside a checkpoint, a budget
# model, a summary or metadata write.
DIE_AT_WRITE = """
import os, signal, sys
from pathlib import Path
import ladder.io as io
n, calls, real = int(sys.argv[1]), [0], io.atomic_write_bytes
def dying(path, data):
    calls[0] += 1
    if calls[0] == n:
        path = Path(path)
        (path.parent / f".{path.name}.dying.tmp").write_bytes(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return real(path, data)
io.atomic_write_bytes = dying
import ladder.train.checkpoint as checkpoint
checkpoint.atomic_write_bytes = dying
from ladder.cli import main
sys.exit(main(sys.argv[2:]))
"""

COUNT_WRITES = DIE_AT_WRITE.replace("if calls[0] == n:", "if False:").replace(
    "sys.exit(main(sys.argv[2:]))", "code = main(sys.argv[2:]); print('writes', calls[0]); sys.exit(code)")


def train_with(script: str, runs, n: int, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, str(n), "train", *overrides(runs, *extra)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_kills_inside_writes_at_random_points_resume_bitwise(reference, tmp_path):
    counted = train_with(COUNT_WRITES, tmp_path / "count", 0)
    assert counted.returncode == 0, counted.stderr[-2000:]
    writes = int(counted.stdout.split("writes")[-1])
    assert writes > 20  # config, identity, version, summaries, checkpoints and their sidecars, budget models
    # One chain: killed at write n1, its resumption killed at its (n2 - n1)th write, that one's at its (n3 - n2)th,
    # then resumed to the end (five trainers where three separate kills started seven). A resumption redoes the
    # writes since its checkpoint, so each still has the writes left to die at.
    points = sorted(random.Random(0).sample(range(1, writes + 1), 3))
    runs = tmp_path / "killed"
    for n, previous in zip(points, [0, *points]):
        died = train_with(DIE_AT_WRITE, runs, n - previous)
        assert died.returncode == -signal.SIGKILL, (n, died.stderr[-2000:])
    resumed = train_here(runs)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert curve(runs) == curve(reference)
    rung = runs / "tiny" / RUNG
    assert not list(rung.rglob(".*.tmp"))  # the half-written files are gone, never read
    elapsed = [r["elapsed_s"] for r in read_metrics(rung / "metrics.jsonl") if "elapsed_s" in r]
    assert elapsed == sorted(elapsed)  # wall time carries across the kills


def test_a_killed_rung_shows_interrupted_and_resumes(reference, tmp_path, run_cli):
    metrics = tmp_path / "tiny" / RUNG / "metrics.jsonl"
    process = subprocess.Popen(ladder_cmd("train", *overrides(tmp_path)), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_for_records(metrics, 6)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert summary(tmp_path)["status"] == "running" and summary(tmp_path)["lease"]["pid"] == process.pid
    code, out, err = run_cli("status", *overrides(tmp_path)[:1], f"runs_dir={tmp_path}")
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith(RUNG))
    assert f"interrupted (stale lease: pid {process.pid}" in row
    assert train_here(tmp_path).returncode == 0 and curve(tmp_path) == curve(reference)


def test_sigterm_inside_a_cooldown_branch_resumes_without_duplicates(reference, tmp_path):
    metrics = tmp_path / "tiny" / RUNG / "metrics.jsonl"
    process = subprocess.Popen(ladder_cmd("train", *overrides(tmp_path)), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (metrics.exists() and '"branch"' in metrics.read_text()):
        time.sleep(0.005)
    assert '"branch"' in metrics.read_text(), "no cooldown branch started within 60 s"
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 75, out
    latest = (tmp_path / "tiny" / RUNG / "checkpoints" / "latest").read_text()
    assert latest.strip().endswith("_fork.pt"), latest  # stopped inside the branch: no checkpoint mid-branch
    assert train_here(tmp_path).returncode == 0
    assert curve(tmp_path) == curve(reference)  # every branch record once, in order


def test_a_crash_marks_the_rung_failed_with_its_reason(cache, tmp_path, monkeypatch):
    import errno

    from ladder.cli import main
    from ladder.train.loop import Trainer

    def disk_full(self, step, lr):
        raise OSError(errno.ENOSPC, "No space left on device", "checkpoints/step_00000004.pt")
    monkeypatch.setattr(Trainer, "train_step", disk_full)
    assert main(["train", *overrides(tmp_path)]) == 2  # one line: "error: disk full writing ..."
    s = summary(tmp_path)
    assert s["status"] == "failed" and s["reason"].startswith("disk full (checkpoints/step_00000004.pt)")


def test_a_second_trainer_of_one_rung_is_refused(cache, tmp_path):
    from ladder.rundir import RunDir

    with RunDir(tmp_path / "tiny" / RUNG).lock():
        result = run_train(tmp_path)
    assert result.returncode == 2 and f"already being trained by pid {os.getpid()}" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "tiny" / RUNG / "metrics.jsonl").exists()


def test_lost_metrics_are_refused_never_padded(reference, tmp_path):
    import shutil
    shutil.copytree(reference / "tiny", tmp_path / "tiny")
    rung = tmp_path / "tiny" / RUNG
    (rung / "summary.json").write_text(json.dumps({**summary(reference), "status": "running"}))
    text = (rung / "metrics.jsonl").read_text()
    (rung / "metrics.jsonl").write_text(text[: len(text) // 3])
    result = train_here(tmp_path)
    assert result.returncode == 2 and "shorter than the" in result.stderr and "records were lost" in result.stderr
    assert "\0" not in (rung / "metrics.jsonl").read_text()


def test_every_checkpoint_corrupt_keeps_the_finished_budgets(reference, tmp_path):
    import shutil
    shutil.copytree(reference / "tiny", tmp_path / "tiny")
    rung = tmp_path / "tiny" / RUNG
    (rung / "summary.json").write_text(json.dumps({**summary(reference), "status": "running"}))
    for checkpoint in (rung / "checkpoints").glob("*.pt"):
        checkpoint.write_bytes(b"corrupt")
    result = train_here(tmp_path)
    assert result.returncode == 2 and "every checkpoint is corrupt" in result.stderr
    s = summary(tmp_path)
    assert s["status"] == "failed" and {k: v["loss"] for k, v in s["budgets"].items()} == \
        {k: v["loss"] for k, v in summary(reference)["budgets"].items()}


def test_a_changed_config_of_a_finished_rung_is_refused_not_skipped(reference, tmp_path, run_cli):
    import shutil
    shutil.copytree(reference / "tiny", tmp_path / "tiny")
    result = train_here(tmp_path, "recipe.lr.base=0.003")
    assert result.returncode == 2 and "finished with another configuration" in result.stderr
    assert "train.overwrite=true" in result.stderr
    code, out, err = run_cli("status", f"runs_dir={tmp_path}", *overrides(tmp_path, "recipe.lr.base=0.003")[3:])
    assert code == 0 and any(line.startswith(RUNG) and "changed" in line for line in out.splitlines()), out
    code, out, err = run_cli("sweep", f"runs_dir={tmp_path}", f"rungs=[{RUNG}]",
                             *overrides(tmp_path, "recipe.lr.base=0.003")[3:])
    assert code == 2 and "finished with another configuration" in err
    retrained = train_here(tmp_path, "recipe.lr.base=0.003", "train.overwrite=true")
    assert retrained.returncode == 0, retrained.stderr[-2000:]
    assert summary(tmp_path)["lr"] != summary(reference)["lr"]


class RunsCode:
    def __reduce__(self):
        return os.system, ("touch PWNED",)


def test_a_crafted_budget_model_cannot_run_code(reference, tmp_path, run_cli, monkeypatch):
    import shutil

    import torch

    from ladder.train.checkpoint import save_verified
    shutil.copytree(reference / "tiny", tmp_path / "tiny")
    model = tmp_path / "tiny" / RUNG / "budgets" / "10k.pt"
    state = torch.load(model, weights_only=True)
    save_verified(model, {**state, "payload": RunsCode()})  # its author writes the matching checksum too
    monkeypatch.chdir(tmp_path)  # where the payload would write
    code, out, err = run_cli("eval", f"rung={RUNG}", "budget=10k", f"runs_dir={tmp_path}", "eval=[next_line]",
                             *overrides(tmp_path)[3:])
    assert code == 2 and "a safe load refuses" in err
    assert not (tmp_path / "PWNED").exists()
    with pytest.raises(pickle.UnpicklingError):
        torch.load(model, weights_only=True)


def test_names_that_become_paths_are_plain(tmp_path):
    from omegaconf import open_dict

    from ladder.config import compose_config
    from ladder.errors import LadderError
    from ladder.plan import make_plan

    cfg = compose_config(["ladder.name=../../escape"])
    with pytest.raises(LadderError, match="ladder.name='../../escape': use a plain name"):
        make_plan(cfg)
    cfg = compose_config([])
    with open_dict(cfg):
        cfg.ladder.sizes["../../../evil"] = {"params": 1e5}
    with pytest.raises(LadderError, match=r"ladder.sizes.../../../evil='../../../evil': use a plain name"):
        make_plan(cfg)


def test_mfu_is_per_gpu_and_knows_pcie_and_nvl_boards():
    from ladder.hardware import device_peak_flops
    from ladder.train.reporting import model_flops_utilization

    one = model_flops_utilization(1e5, 6e9, 989.4e12, 1)
    assert model_flops_utilization(8e5, 6e9, 989.4e12, 8) == pytest.approx(one)  # 8 GPUs, 8x the tokens
    assert device_peak_flops("NVIDIA H100 80GB HBM3") == 989.4e12
    assert device_peak_flops("NVIDIA H100 PCIe") == 756e12
    assert device_peak_flops("NVIDIA H100 NVL") == device_peak_flops("NVIDIA H200 NVL") == 835.5e12
    assert model_flops_utilization(1e5, 6e9, None, 1) is None


# -- bad input: one line, exit 2, nothing written ------------------------------------------------------------------

@pytest.fixture
def bad_conf(tmp_path, monkeypatch):
    """A copy of conf/ with broken ladder files, as LADDER_CONF."""
    import shutil

    import ladder.config
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    (conf / "ladder" / "tabbed.yaml").write_text("ladder:\n\tname: x\n")
    (conf / "ladder" / "nobudgets.yaml").write_text("# @package _global_\nladder:\n  name: nob\n"
                                                    "  sizes: {a: {params: 1e5}}\n")
    monkeypatch.setattr(ladder.config, "CONF_DIR", conf)
    return conf


@pytest.mark.parametrize("args, message", [
    (["plan", "ladder=tabbed"], "tabbed.yaml, line 2: not valid YAML"),
    (["plan", "ladder=nobudgets"], "ladder.budgets: missing or empty"),
    (["plan", "ladder.budgets=1xC"], "ladder.budgets='1xC': a list, e.g. [1xC]"),
    (["plan", "+ladder.budget=[1xC]"], "ladder.budget: not a ladder key (misspelt?)"),
    (["plan", "recipe.schedule=cosine"], "recipe.schedule='cosine': a mapping, not a name"),
    (["train", "rung=tiny-14k", "train.log_every=0"], "train.log_every=0: a whole number of at least 1"),
    (["train", "rung=tiny-14k", "train.checkpoint_every=0"], "train.checkpoint_every=0"),
    (["train", "rung=tiny-14k", "train.threads=abc"], "train.threads='abc': auto, or a whole number"),
    (["train", "rung=tiny-14k", "train.dtype=fp8"], "train.dtype='fp8': use one of auto, bf16, fp32"),
    (["train", "rung=tiny-14k", "train.compile_backend=tvm"],
     "train.compile_backend='tvm': use one of inductor, aot_eager, eager, cudagraphs"),
    (["sweep", "train.log_every=0"], "train.log_every=0"),
])
def test_bad_config_is_one_line_and_writes_nothing(bad_conf, tmp_path, run_cli, args, message):
    code, out, err = run_cli(*args, f"runs_dir={tmp_path / 'runs'}")
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "runs").exists()


def test_bad_files_are_one_line_errors(tmp_path, run_cli):
    (tmp_path / "runs.csv").write_text("params,tokens,loss\n1e6,2e7,3.1\n2e6,4e7,abc\n4e6,8e7,2.8\n")
    code, _, err = run_cli("fit", f"runs={tmp_path / 'runs.csv'}", f"out={tmp_path / 'fit'}")
    assert code == 2 and "column 'loss' is not numeric: row 1 holds 'abc'" in err
    good = tmp_path / "good.csv"
    rows = [(n, 20 * n * m) for n in (1e6, 3e6, 1e7, 3e7) for m in (1, 2, 4)]
    good.write_text("params,tokens,loss\n" + "".join(f"{n},{d},{2 + 50 / n ** 0.3 + 80 / d ** 0.3}\n" for n, d in rows))
    for option, message in (("ci_level=2", "ci_level=2.0: a probability between 0 and 1"),
                            ("bootstrap.n=-1", "bootstrap.n=-1: the number of resamples")):
        code, _, err = run_cli("fit", f"runs={good}", option, f"out={tmp_path / 'fit'}")
        assert code == 2 and message in err, err
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli("fit", f"runs={good}", f"out={tmp_path / 'afile'}")
    assert code == 2 and "a file; `ladder fit` writes a directory there" in err
    code, _, err = run_cli("status", f"runs_dir={tmp_path / 'afile'}")
    assert code == 2 and "runs_dir=" in err and "a file; give a directory" in err
    runs = tmp_path / "runs"
    (runs / "tiny" / ".sweep").mkdir(parents=True)
    (runs / "tiny" / ".sweep" / "jobs.json").write_text('{"tiny-14k": ')
    code, _, err = run_cli("status", f"runs_dir={runs}")
    assert code == 2 and "jobs.json: corrupt JSON" in err
    (runs / "tiny" / ".sweep" / "jobs.json").unlink()
    (runs / "tiny" / "tiny-14k").mkdir()
    (runs / "tiny" / "tiny-14k" / "summary.json").write_text("[1, 2]")
    code, _, err = run_cli("status", f"runs_dir={runs}")
    assert code == 2 and "not a rung summary" in err
    assert err.count("\n") == 1


def test_bad_corpora_name_the_record(tmp_path, run_cli):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "nulls.jsonl").write_text('{"text": "hello"}\n{"text": null}\n')
    for path, message in (("empty.jsonl", "holds no records (an empty file?)"),
                          ("nulls.jsonl", "record 1 has no text (its 'text' is null)")):
        code, _, err = run_cli("prepare", "data=local", f"data.path={tmp_path / path}", "data.tokenizer.kind=bytes",
                               f"data.cache_dir={tmp_path / 'cache'}")
        assert code == 2 and message in err and err.count("\n") == 1, err


def test_the_shape_rule_says_when_it_misses_the_size(tmp_path, run_cli):
    code, out, err = run_cli("plan", "+ladder.sizes.huge={params:1e30}", "+ladder.sizes.small={params:10}")
    assert code == 0, err
    assert "warning: ladder.sizes.huge.params=1e+30: the shape rule's closest shape has 2.06e+11" in out
    assert "warning: ladder.sizes.small.params=10:" in out
    code, out, _ = run_cli("plan")
    assert "warning" not in out  # the tiny ladder's presets are what they say


def test_a_lease_is_alive_by_pid_here_and_by_heartbeat_elsewhere():
    import socket

    from ladder.rundir import LEASE_TIMEOUT_S, lease, lease_alive

    assert lease_alive({"lease": lease()}) is True  # this process
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert lease_alive({"lease": {**lease(), "pid": int(dead.stdout)}}) is False
    remote = {"host": socket.gethostname() + "-elsewhere", "pid": 1, "heartbeat": 1000.0}
    assert lease_alive({"lease": remote}, now=1000.0 + LEASE_TIMEOUT_S - 1) is True
    assert lease_alive({"lease": remote}, now=1000.0 + LEASE_TIMEOUT_S + 1) is False
    assert lease_alive({}) is None  # written before leases: status trusts its word


def test_overwrite_resumes_an_interrupted_rung_of_the_same_config(reference, tmp_path):
    metrics = tmp_path / "tiny" / RUNG / "metrics.jsonl"
    process = subprocess.Popen(ladder_cmd("train", *overrides(tmp_path)), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_for_records(metrics, 8)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 75
    before = metrics.read_text().splitlines()[:6]  # written before the interrupt, with their elapsed_s
    assert train_here(tmp_path, "train.overwrite=true").returncode == 0
    assert metrics.read_text().splitlines()[:6] == before  # resumed, not retrained from scratch
    assert curve(tmp_path) == curve(reference)


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    import random as pyrandom

    import numpy as np
    import torch

    from ladder.train.checkpoint import load_verified, save_verified
    from ladder.train.rng import rng_state, set_rng_state

    torch.manual_seed(1), np.random.seed(2), pyrandom.seed(3)
    np.random.normal()  # a cached gaussian is part of numpy's state
    save_verified(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = (torch.rand(3).tolist(), np.random.normal(size=3).tolist(), [pyrandom.random() for _ in range(3)])
    torch.manual_seed(9), np.random.seed(9), pyrandom.seed(9)
    set_rng_state(load_verified(tmp_path / "rng.pt")["rng"])
    assert (torch.rand(3).tolist(), np.random.normal(size=3).tolist(), [pyrandom.random() for _ in range(3)]) == expected


# -- issue 30: liveness, a torn pointer, a crash before the loop, a second sweep ------------------------------------

def test_a_reused_pid_or_a_heartbeat_from_the_future_is_not_alive():
    import socket

    from ladder.rundir import LEASE_TIMEOUT_S, lease, lease_alive

    assert lease()["start"] and lease_alive({"lease": lease()}) is True
    reused = {**lease(), "pid": 1, "start": "not-when-pid-1-started"}  # pid 1 runs, but not the process that leased
    assert lease_alive({"lease": reused}) is False
    remote = {"host": socket.gethostname() + "-elsewhere", "pid": 1, "heartbeat": 1000.0 + LEASE_TIMEOUT_S + 1}
    assert lease_alive({"lease": remote}, now=1000.0) is False  # another host's clock ahead: stale all the same
    assert lease_alive({"lease": {**remote, "heartbeat": 1000.0 + 60}}, now=1000.0) is True  # skew within bounds


def test_a_torn_latest_pointer_falls_back_to_the_newest_verified_checkpoint(reference, tmp_path):
    import shutil
    shutil.copytree(reference / "tiny", tmp_path / "tiny")
    rung = tmp_path / "tiny" / RUNG
    (rung / "summary.json").write_text(json.dumps({**summary(reference), "status": "running"}))
    (rung / "checkpoints" / "latest").write_bytes(b"\xff\xfe\x00step")
    result = train_here(tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "names no checkpoint" in result.stderr and summary(tmp_path)["status"] == "done"
    assert curve(tmp_path) == curve(reference)


def test_a_crash_before_the_loop_marks_the_rung_failed(cache, tmp_path, monkeypatch):
    from ladder.cli import main
    from ladder.train.checkpoint import Checkpoints

    def crash(self):
        raise RuntimeError("the checkpoint directory went away")
    monkeypatch.setattr(Checkpoints, "load_latest", crash)
    with pytest.raises(RuntimeError):
        main(["train", *overrides(tmp_path)])
    s = summary(tmp_path)
    assert s["status"] == "failed" and s["reason"] == "RuntimeError: the checkpoint directory went away"


def test_a_second_sweep_leaves_a_rung_being_trained_to_its_trainer(cache, tmp_path):
    from ladder.rundir import RunDir

    args = [a for a in overrides(tmp_path) if not a.startswith("rung=")]
    with RunDir(tmp_path / "tiny" / RUNG).lock():  # this process trains it, as a first sweep would
        result = subprocess.run(ladder_cmd("sweep", *args, f"rungs=[{RUNG}]"), capture_output=True, text=True,
                                cwd=ROOT, timeout=300)
    assert result.returncode == 0 and "Traceback" not in result.stderr + result.stdout, result.stderr[-2000:]
    left = [line for line in result.stdout.splitlines() if "left to the process training it" in line]
    assert len(left) == 1 and f"already being trained by pid {os.getpid()}" in left[0]
    row = next(line for line in result.stdout.splitlines() if line.startswith(f"{RUNG} "))
    assert "pending" in row  # it wrote nothing: its trainer (this test) has not started it
