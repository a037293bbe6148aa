"""What a person follows while a ladder trains: a rung's log off a terminal, its W&B run (read back from the
offline files), `ladder status`, runs left out of fits when their configuration changed, and a training step that
never waits for the device."""

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

import wandb_files
from test_train import RUNG, diverge_at, overrides, run_train, summary

ROOT = Path(__file__).resolve().parents[1]


# -- the log --------------------------------------------------------------------------------------------------------
def test_a_rung_off_a_terminal_prints_a_line_every_log_every_steps(cache, tmp_path):
    result = run_train(tmp_path, "train.log_every=3")  # stdout and stderr are pipes, as in a Slurm job
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    steps = [line for line in lines if re.search(r" tiny-14k step \d+/16 \| ", line)]
    assert [int(re.search(r"step (\d+)/", line).group(1)) for line in steps] == [3, 6, 9, 12, 15, 16]
    for part in (r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", r"[\d.]+k tokens", r"loss \d\.\d{4}", r"lr \d\.\d\de-\d\d",
                 r"[\d,]+ tokens/s", r"ETA \d+s"):
        assert re.search(part, steps[0]), (part, steps[0])
    assert "MFU" not in steps[0]  # no known peak on a CPU
    assert sum(" 10k cooldown step " in line for line in lines) == 2  # the 10k branch: steps 9 and its end, 10
    budgets = [line for line in lines if " budget " in line]
    assert len(budgets) == 2 and re.search(r"budget 10k done at step 10 \(10.2k tokens\): val_loss \d\.\d{4}, "
                                           r"next_line/acc [\d.]+", budgets[0])
    evals = [int(re.search(r" eval at step (\d+) ", line).group(1)) for line in lines if " eval at step " in line]
    assert evals == [3, 6, 9, 12]  # train.eval_points=4, evenly inside the main run of 16 steps
    assert lines[-1].startswith("tiny-14k: done - validation loss 10k: ") and "of it evaluating" in lines[-1]
    assert "\x1b" not in result.stdout and result.stderr.count("\n") < 5  # no bar drawn into a log


def test_on_a_terminal_the_bar_replaces_the_step_lines(cache, tmp_path, monkeypatch, capsys):
    import io

    from rich.console import Console

    import ladder.progress
    from ladder.cli import main

    screen = io.StringIO()
    monkeypatch.setattr(ladder.progress, "terminal", lambda: Console(file=screen, force_terminal=True, width=160))
    assert main(["train", *overrides(tmp_path, "train.log_every=3")]) == 0
    out = capsys.readouterr().out
    assert not re.search(r" step \d+/", out) and " eval at " not in out and "starting at" not in out
    assert out.count(" budget ") == 2 and out.splitlines()[-1].startswith("tiny-14k: done")
    assert re.search(r"tiny-14k .*/22 steps.*loss \d\.\d{3}, [\d,]+ tokens/s, ETA", screen.getvalue())


def test_eval_points_auto_keep_evaluation_under_a_tenth_of_every_rung(run_cli):
    from ladder.config import compose_config
    from ladder.plan import EVAL_SHARE, make_plan

    for ladder in ("tiny", "olmo"):
        plan = make_plan(compose_config([f"ladder={ladder}"]))
        for rung in plan.rungs:
            assert rung.eval_share <= EVAL_SHARE * 1.05, (rung.name, rung.eval_share)
        assert max(r.eval_points for r in plan.rungs) == 20  # the large rungs: the cap, not the share
    code, out, _ = run_cli("plan", "train.eval_points=auto")
    assert code == 0 and "evals   eval %" in out and re.search(r"tiny-201k .* 20\+3 +\d\.\d%", out)
    code, out, _ = run_cli("plan", "train.eval_points=20", "train.eval_tokens=65536", "format=json")
    rung = json.loads(out)["rungs"][0]
    assert rung["eval_points"] == 20 and rung["eval_share"] > 0.45  # what the old defaults cost tiny-14k
    code, _, err = run_cli("plan", "train.eval_points=some")
    assert code == 2 and "train.eval_points='some': auto, or a whole number" in err


# -- W&B ------------------------------------------------------------------------------------------------------------
def test_wandb_charts_plot_against_tokens_with_one_name_per_value(cache, tmp_path):
    result = run_train(tmp_path, "logger.wandb=offline", "train.log_every=2")
    assert result.returncode == 0, result.stderr[-2000:]
    run_file = next((tmp_path / "tiny" / RUNG / "wandb").glob("offline-run-*/run-*.wandb"))
    axes = wandb_files.metric_axes(run_file)
    assert {axes[f"{series}/*"] for series in ("train", "val", "eval", "branch", "budget")} == {"tokens"}
    rows = wandb_files.history(run_file)
    assert all("tokens" in row and "step" in row for row in rows)
    assert not any("loss" in row or "val_loss" in row for row in rows)  # every value sits in its series
    main = [row for row in rows if "train/loss" in row]
    assert [row["step"] for row in main] == [2, 4, 6, 8, 10, 12, 14, 16]
    evals = [row for row in rows if "val/loss" in row]
    assert len(evals) == 4 and all("eval/next_line/acc" in row for row in evals)
    branch = [row for row in rows if "branch/10k/loss" in row]
    assert branch and all(8 * 1024 < row["tokens"] <= 10 * 1024 for row in branch)  # on the branch's own tokens
    s, results = wandb_files.summary(run_file), summary(tmp_path)
    assert s["loss"] == results["budgets"]["20k"]["loss"]  # the last budget's validation loss, not a batch's
    assert s["budget/10k/val_loss"] == results["budgets"]["10k"]["loss"]
    assert s["budget/10k/next_line/acc"] == results["budgets"]["10k"]["eval"]["next_line/acc"]
    assert not [key for key in s if "/eval/" in key or key.startswith("budget/") and key.endswith("/loss")]
    config = wandb_files.config(run_file)
    assert set(config) == {"ladder", "rung", "params", "flops_convention", "data", "train", "eval", "runs_dir"}
    assert config["rung"]["name"] == RUNG and config["rung"]["recipe"]["lr"] == results["lr"]


def test_wandb_keys_put_each_record_in_its_series():
    from ladder.train.wandb_log import wandb_keys

    assert wandb_keys({"step": 5, "tokens": 640, "loss": 2.0, "lr": 0.01}) == \
        {"step": 5, "tokens": 640, "train/loss": 2.0, "train/lr": 0.01}
    assert wandb_keys({"branch": "1xC", "step": 9, "tokens": 90, "loss": 1.5}) == \
        {"step": 9, "tokens": 90, "branch/1xC/loss": 1.5}
    assert wandb_keys({"step": 6, "tokens": 60, "val_loss": 1.7, "eval/next_line/acc": 0.3, "eval_s": 0.2}) == \
        {"step": 6, "tokens": 60, "val/loss": 1.7, "eval/next_line/acc": 0.3, "val/eval_s": 0.2}
    assert wandb_keys({"budget": "1xC", "step": 9, "tokens": 90, "val_loss": 1.4, "eval/next_line/acc": 0.3}) == \
        {"step": 9, "tokens": 90, "budget/1xC/val_loss": 1.4, "budget/1xC/next_line/acc": 0.3}


# -- status ---------------------------------------------------------------------------------------------------------
def copy_run(reference: Path, runs: Path, **changes) -> Path:
    shutil.copytree(reference / "tiny", runs / "tiny")
    run = runs / "tiny" / RUNG
    (run / "summary.json").write_text(json.dumps({**summary(reference), **changes}))
    return run


def test_status_shows_validation_loss_budgets_throughput_and_eta(reference, tmp_path, run_cli):
    import socket
    import time

    budgets = {**summary(reference)["budgets"]}
    budgets["20k"] = {**budgets["20k"], "loss": None}
    copy_run(reference, tmp_path, status="running", budgets=budgets, eta_s=3700, tokens_per_s=12345.6, mfu=0.31,
             lease={"host": socket.gethostname(), "pid": os.getpid(), "heartbeat": time.time() - 150})
    args = [f"runs_dir={tmp_path}", *overrides(tmp_path)[3:]]
    code, out, err = run_cli("status", *args)
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith(RUNG))
    loss = budgets["10k"]["loss"]
    assert re.search(rf"{RUNG} +running +1/2 +{loss:.4f} \(10k\) .* 12,346 +31\.0% +59m\d\ds", row), row
    assert "the running rungs finish in 59m" in out and "last loss" not in out
    code, out, _ = run_cli("status", *args, "format=json")
    rung = json.loads(out)["rungs"][0]
    assert (rung["budgets_done"], rung["budgets_total"], rung["val_loss"], rung["last_budget"]) == (1, 2, loss, "10k")
    assert 3500 < rung["eta_s"] <= 3550 and rung["mfu"] == 0.31 and rung["train_loss"] is not None


def test_a_changed_rung_is_left_out_of_collect_and_fits_unless_asked(reference, tmp_path, run_cli, capsys):
    from ladder import api

    copy_run(reference, tmp_path)
    changed = [f"runs_dir={tmp_path}", *overrides(tmp_path)[3:], "recipe.beta2=0.99"]
    code, out, _ = run_cli("status", *changed)
    assert code == 0 and re.search(rf"{RUNG} +changed", out)
    code, _, err = run_cli("collect", *changed, f"out={tmp_path / 'all.csv'}")
    assert code == 2 and f"{RUNG}: finished with another configuration of rung {RUNG}" in err and "left out" in err
    assert "every finished rung was left out as changed" in err
    code, out, err = run_cli("collect", *changed, "collect.include_changed=true", f"out={tmp_path / 'all.csv'}")
    assert code == 0 and "collected 2 rows" in out and "kept (collect.include_changed=true)" in err
    code, _, err = run_cli("fit", *changed, "bootstrap.n=0", f"out={tmp_path / 'fit'}")
    assert code == 2 and "left out" in err
    with pytest.raises(Exception, match="every finished rung was left out as changed"):
        api.collect(tmp_path / "tiny", overrides=changed[1:])
    assert "left out" in capsys.readouterr().err
    frame = api.collect(tmp_path / "tiny", overrides=[*changed[1:], "collect.include_changed=true"])
    assert len(frame) == 2 and "kept" in capsys.readouterr().err
    same = [f"runs_dir={tmp_path}", *overrides(tmp_path)[3:]]
    code, out, err = run_cli("collect", *same, f"out={tmp_path / 'same.csv'}")
    assert code == 0 and "collected 2 rows" in out and "warning" not in err


# -- a step never waits for the device -----------------------------------------------------------------------------
SYNCS = ("item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__", "__array__")


def test_a_training_step_reads_nothing_back_from_the_device_except_to_log(cache, tmp_path, monkeypatch):
    """Every read of a tensor's value by ladder's own code (what forces a host sync on a GPU), counted by the
    steps finished when it happened: reads happen only at a logged step (train.log_every), an evaluation, a
    checkpoint or a budget, never inside a step."""
    import torch

    from ladder.cli import main
    from ladder.train.loop import Trainer

    package = str(ROOT / "ladder")
    finished, reads = [0], []

    def counting(name):
        original = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            if sys._getframe(1).f_code.co_filename.startswith(package):
                reads.append((finished[0], name, sys._getframe(1).f_code.co_name))
            return original(self, *args, **kwargs)
        return read
    for name in SYNCS:
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    step = Trainer.train_step

    def counted_step(self, *args):
        during = len(reads)
        out = step(self, *args)
        assert len(reads) == during, reads[during:]  # nothing read inside the step itself
        finished[0] += 1
        return out
    monkeypatch.setattr(Trainer, "train_step", counted_step)
    # one cosine run of 20 steps: logs at 5, 10, 15, 20; no evaluations between; one checkpoint at the end
    args = [a.replace(f"rung={RUNG}", f"rung={RUNG}-20k") for a in overrides(
        tmp_path, "recipe=porian", "ladder.budgets=[2e4]", "train.log_every=5", "train.eval_points=0",
        "train.checkpoint_every=1000", "eval=[]")]
    assert main(["train", *args]) == 0
    assert finished[0] == 20
    assert {steps for steps, _, _ in reads} <= {0, 5, 10, 15, 20}, sorted(set(reads))
    assert {steps for steps, _, _ in reads} >= {5, 10, 15, 20}  # the count sees the reads that log


def test_a_nan_between_logged_steps_is_caught_before_any_checkpoint_holds_it(cache, tmp_path, monkeypatch, capsys):
    from ladder.cli import main
    diverge_at(monkeypatch, 6, float("inf"))  # step 7
    assert main(["train", *overrides(tmp_path, "train.log_every=5")]) == 1  # read at step 8's fork checkpoint
    s = summary(tmp_path)
    assert s["status"] == "failed" and "loss is inf at step 7" in s["reason"] and s["diverged"] is True
    latest = (tmp_path / "tiny" / RUNG / "checkpoints" / "latest").read_text().strip()
    assert latest == "step_00000004.pt"  # the checkpoint before it, never the fork's after it
    assert "failed: loss is inf at step 7" in capsys.readouterr().out


def test_chunked_cross_entropy_matches_torch_in_value_and_gradient():
    import torch
    import torch.nn.functional as F

    from ladder.train.loss import cross_entropy

    torch.manual_seed(0)
    logits = torch.randn(3, 7, 50, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (3, 7))
    ours = cross_entropy(logits, targets, chunk_elements=4 * 50)  # 6 chunks of 4 tokens, the last short
    ours.backward()
    grad, logits.grad = logits.grad.clone(), None
    theirs = F.cross_entropy(logits.reshape(-1, 50), targets.reshape(-1))
    theirs.backward()
    assert ours.dtype == torch.float32 and ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    assert torch.allclose(grad, logits.grad.to(grad.dtype), rtol=1e-5, atol=1e-7)
    half = logits.detach().to(torch.bfloat16).requires_grad_()
    loss = cross_entropy(half, targets, chunk_elements=4 * 50)
    loss.backward()
    assert half.grad.dtype == torch.bfloat16 and loss.item() == pytest.approx(theirs.item(), rel=1e-2)


def test_a_nan_gradient_with_a_finite_loss_is_caught_too():
    import torch

    from ladder.distributed import Dist
    from ladder.train.loss import FiniteWatch

    watch = FiniteWatch(torch.device("cpu"))
    watch.see(torch.tensor(2.0), torch.tensor(1.0), 0)
    watch.check(Dist())  # all finite: nothing raised
    watch.see(torch.tensor(2.0), torch.tensor(float("nan")), 4)
    watch.see(torch.tensor(float("inf")), torch.tensor(1.0), 5)  # the first one is what is said
    with pytest.raises(FloatingPointError, match="the gradient norm is nan at step 5"):
        watch.check(Dist())


def test_the_plan_counts_the_evaluations_the_run_makes():
    from ladder.config import compose_config
    from ladder.plan import make_plan

    plan = make_plan(compose_config(["ladder.seq_len=64", "ladder.budgets=[1e4,2e4]", "train.eval_points=20"]))
    for rung in plan.rungs:
        steps = rung.run_steps.eval_steps(rung.eval_points)
        assert len(steps) == rung.eval_points == min(20, rung.run_steps.main_end - 1)
        assert len(set(steps)) == len(steps) and all(0 < s < rung.run_steps.main_end for s in steps)
