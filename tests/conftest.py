import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")

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
