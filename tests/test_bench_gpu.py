"""scripts/bench_gpu.py, the GPU check a lent GPU runs in one call, runs its whole path on the CPU (tiny shapes,
eager and compiled), so it is known to work before a GPU is at hand."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_gpu_runs_on_the_cpu(tmp_path):
    out = tmp_path / "rows.json"
    result = subprocess.run([sys.executable, "scripts/bench_gpu.py", "--cpu", "--steps", "6", "--json", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "LADDER_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [(r["shape"], r["mode"]) for r in rows] == [("tiny-40k", "eager"), ("tiny-40k", "compiled")]
    for row in rows:
        assert row["ladder_tokens_per_s"] > 0 and row["plain_tokens_per_s"] > 0
        assert row["ratio"] == pytest.approx(row["ladder_tokens_per_s"] / row["plain_tokens_per_s"])
        assert row["mfu"] is None and row["peak_gb"] is None  # no peak or GPU memory on a CPU
    assert "bench_gpu on CPU" in result.stdout and "ratio" in result.stdout.splitlines()[-4]


def test_bench_gpu_without_a_gpu_says_so():
    result = subprocess.run([sys.executable, "scripts/bench_gpu.py"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 1 and "no CUDA GPU here; run with --cpu" in result.stderr
