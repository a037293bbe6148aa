"""The main job end to end, on token-sized budgets so that it runs in about a minute."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_end_to_end_then_reuses_everything(tmp_path):
    args = [sys.executable, "-m", "ladder.cli", "demo", f"runs_dir={tmp_path / 'runs'}", "logger.wandb=disabled",
            "ladder.budgets=[2e4,4e4,8e4]", "target.tokens=4e4", "data.max_documents=300",
            "data.val_fraction=0.05", "demo.eval_tokens=4096", "bootstrap.n=50",
            "eval.next_line.limit=16"]  # 16 of next_line's 64 items: evaluating was half of each rung's time
    env = {"LADDER_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin",  # a bare environment, the threads aside:
           **{k: v for k, v in os.environ.items() if k.endswith("_NUM_THREADS")}}  # the suite's workers share cores
    first = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    out = first.stdout
    for expected in ("forecast vs actual: tiny-665k", "predicted loss", "95% predictive interval",
                     "the mean law's band alone", "actual loss", "relative error", "interval covers it",
                     "ladder compute / held-out rung's", "ladder's rolling backtest coverage", "report:", "elapsed:"):
        assert expected in out, expected
    report = tmp_path / "runs" / "tiny" / "report"
    text = (report / "report.md").read_text()
    assert "## Forecast" in text and "curves.png" in text and "loss_vs_compute.png" in text
    html = (report / "index.html").read_text()
    assert f"report: {report / 'index.html'}" in out
    for anchor in ("plan", "curves", "fit", "forecast", "backtest", "task", "history"):
        assert f'<section id="{anchor}">' in html, anchor
    assert html.count('<img src="data:image/png;base64,') >= 7 and 'src="http' not in html  # 8 with a frontier
    for plot in ("curves.png", "fit/plots/loss_vs_compute.png", "fit/plots/residuals.png"):
        assert (report / plot).stat().st_size > 10_000, plot
    fit = json.loads((report / "fit" / "fit.json").read_text())
    assert fit["n_points"] == 12  # 4 rungs x 3 budgets; the held-out rung is not among them
    held = json.loads((tmp_path / "runs" / "tiny-heldout" / "tiny-665k" / "summary.json").read_text())
    actual = held["budgets"]["40k"]["loss"]
    assert f"{actual:.4f}" in out and f"{fit['predictions'][0]['loss']:.4f}" in out  # numbers read from the files
    assert f"{actual:.4f}" in html and f"{fit['predictions'][0]['loss']:.4f}" in html
    forecast = fit["predictions"][0]
    assert forecast["lo"] < forecast["band_lo"] <= forecast["band_hi"] < forecast["hi"]  # predictive holds the band
    assert fit["interval"]["method"].startswith("predictive") and fit["backtest"]["rule"].startswith("rolling")
    comparison = json.loads((report / "comparison.json").read_text())
    assert comparison["covered"] == (comparison["lo"] <= actual <= comparison["hi"])
    assert comparison["rolling_coverage"] == fit["backtest"]["coverage"]
    assert f"{fit['backtest']['coverage']:.0%} of {fit['backtest']['n_test']} rows" in out

    # the task forecast: two-step law on every rung's next_line evaluations, checked against the held-out rung
    assert "task forecast vs actual" in out and "## Task forecast" in text
    task_fit = json.loads((report / "task_fit" / "fit.json").read_text())
    assert task_fit["law"] == "two_step" and task_fit["n_points"] > 12  # budgets and intermediate points
    measured = held["budgets"]["40k"]["eval"]
    assert f"{measured['next_line/acc_norm']:.4f}" in out and f"{measured['next_line/bpb']:.4f}" in out

    second = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    table = lambda text: text[text.index("forecast vs actual:"):text.index("report:")]
    assert table(second.stdout) == table(out)  # the same result, from finished rungs
