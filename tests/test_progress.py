"""Progress bars: the fit's bootstrap and a waiting sweep draw rich bars on a terminal (here: a rich console told
it is one), and nothing where stderr is not a terminal."""

import io
import time

import numpy as np
import pytest
from rich.console import Console

import ladder.progress


@pytest.fixture
def terminal(monkeypatch):
    """Every bar drawn into one buffer, as on a terminal."""
    screen = io.StringIO()
    monkeypatch.setattr(ladder.progress, "terminal", lambda: Console(file=screen, force_terminal=True, width=160))
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
    assert "bootstrap chinchilla" in drawn and "40/40 fit" in drawn


def test_a_per_resample_loop_counts_each_resample(terminal):
    shown = list(ladder.progress.each(range(7), 7, "bootstrap isoflop", "fit"))
    assert shown == list(range(7)) and "7/7 fit" in terminal.getvalue()


def test_a_waiting_sweep_shows_rungs_and_flops(terminal, tmp_path):
    from ladder.config import compose_config
    from ladder.plan import make_plan
    from ladder.sweep.run import sweep_progress

    plan = make_plan(compose_config([]))
    with sweep_progress(plan, tmp_path, every_s=0.05):
        time.sleep(0.5)
    drawn = terminal.getvalue()
    assert "sweep tiny" in drawn and "0 done, 0 running, 0 queued of 4 rungs" in drawn
    assert f"0/{plan.ladder_flops:.3g} FLOPs" in drawn
    with sweep_progress(plan, tmp_path, enabled=False):  # submit_only: it returns at once, no bar
        pass
    assert terminal.getvalue() == drawn


def test_no_bar_where_stderr_is_not_a_terminal(capsys, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich would call a log a terminal then; a Slurm log still gets no bar
    with ladder.progress.bar(10, "x") as shown:
        shown.advance(10)
        print("a line of the run")
    captured = capsys.readouterr()
    assert not shown.shown and captured.err == "" and captured.out == "a line of the run\n"


def test_bars_open_together_share_one_display(terminal):
    """A sweep's bar and, in the same process, a rung's: stacked in one display, gone when both close."""
    with ladder.progress.bar(4, "sweep tiny", unit="rungs") as outer:
        with ladder.progress.bar(1_500_000, "tiny-14k", unit="steps") as inner:
            assert inner._display is outer._display
            inner.advance(1_200_000, "loss 3.1")
            time.sleep(0.2)
        outer.advance(1)
    drawn = terminal.getvalue()
    assert "1,200,000/1,500,000 steps" in drawn and "loss 3.1" in drawn and "1/4 rungs" in drawn
    assert ladder.progress._display is None


def test_tables_are_plain_text_with_cells_as_written():
    from ladder.report import format_table

    text = format_table(["rung", "interval"], [["tiny-201k", "[0.8975, 1.1061]"], ["b", "[bold]x"]])
    header, rule, *rows = text.splitlines()
    assert header.split() == ["rung", "interval"] and set(rule) == {"─"}
    assert rows == ["tiny-201k   [0.8975, 1.1061]", "b                    [bold]x"]  # numbers right-aligned, no markup
    assert "\x1b" not in text
