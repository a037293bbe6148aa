"""Progress bars: the fit's bootstrap and a waiting sweep draw tqdm bars on a terminal (here: tqdm told the stream
is one), and nothing where stderr is not a terminal."""

import io
import time

import numpy as np
import pytest
from tqdm import tqdm

import ladder.progress


@pytest.fixture
def terminal(monkeypatch):
    """Every bar drawn into one buffer, as on a terminal."""
    screen = io.StringIO()

    def bar(total, description, unit="it", unit_scale=False):
        return tqdm(total=total, desc=description, unit=unit, unit_scale=unit_scale, file=screen, disable=False,
                    mininterval=0)

    def each(iterable, total, description, unit="it"):
        return tqdm(iterable, total=total, desc=description, unit=unit, file=screen, disable=False, mininterval=0)
    monkeypatch.setattr(ladder.progress, "bar", bar)
    monkeypatch.setattr(ladder.progress, "each", each)
    return screen


def test_the_bootstrap_shows_its_resamples_finishing(terminal):
    from ladder.fit.laws import make_law
    from ladder.fit.table import Table

    params = np.repeat(np.geomspace(2e7, 1e9, 5), 3)
    tokens = params * np.tile([10, 20, 40], 5)
    table = Table({"params": params, "tokens": tokens, "loss": 1.69 + 406.4 / params ** 0.34 + 410.7 / tokens ** 0.28,
                   "flops": 6 * params * tokens})
    make_law({"name": "chinchilla"}, 0.95).fit(table).bootstrap(table, 40, seed=0)
    drawn = terminal.getvalue()
    assert "bootstrap chinchilla" in drawn and "40/40" in drawn


def test_a_waiting_sweep_shows_rungs_and_flops(terminal, tmp_path):
    from ladder.config import compose_config
    from ladder.plan import make_plan
    from ladder.sweep.run import sweep_progress

    plan = make_plan(compose_config([]))
    with sweep_progress(plan, tmp_path, every_s=0.05):
        time.sleep(0.5)
    drawn = terminal.getvalue()
    assert "sweep tiny" in drawn and "0 done, 0 running, 0 queued of 4 rungs" in drawn
    with sweep_progress(plan, tmp_path, enabled=False):  # submit_only: it returns at once, no bar
        pass
    assert terminal.getvalue() == drawn


def test_no_bar_where_stderr_is_not_a_terminal(capsys):
    with ladder.progress.bar(10, "x") as shown:
        shown.update(10)
    assert shown.disable and capsys.readouterr().err == ""
