"""The report page: self-contained, every section where it belongs, refreshed mid-sweep, plots a reviewer accepts,
and checked in a real browser (headless Chromium, installed by .ci/run)."""

import base64
import json
import re
import shutil
import struct

import numpy as np
import pytest

from fit_data import chinchilla_table, isoflop_table
from ladder.config import compose_config
from ladder.plan import make_plan

IMG = re.compile(r'<img src="([^"]*)"')


def png_size(uri: str) -> tuple[int, int]:
    """Width and height from a data URI's PNG header (IHDR), or an error if it is not a PNG."""
    assert uri.startswith("data:image/png;base64,"), uri[:40]
    data = base64.b64decode(uri.split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def section(html: str, anchor: str) -> str:
    start = html.index(f'<section id="{anchor}">')
    return html[start:html.index("</section>", start)]


def assert_self_contained(html: str) -> int:
    images = IMG.findall(html)
    assert images and all(min(png_size(src)) > 100 for src in images)
    assert not re.search(r'(src|href)="(?!data:|#)', html)  # nothing to fetch: no file, no network
    assert "<script" not in html and "<link" not in html
    return len(images)


# -- a fit's page ------------------------------------------------------------------------------------------------

def test_fit_writes_a_self_contained_page_with_its_numbers(tmp_path, run_cli):
    chinchilla_table().write_csv(tmp_path / "runs.csv")
    code, out, err = run_cli("fit", f"runs={tmp_path / 'runs.csv'}", "target.params=7e9", "target.tokens=1.4e11",
                             "backtest=rolling", "bootstrap.n=50", "interval.fold_bootstrap=20",
                             f"out={tmp_path / 'fit'}", *FEW_STARTS)
    assert code == 0, err
    page = tmp_path / "fit" / "report" / "index.html"
    assert f"report: {page}" in out
    html = page.read_text()
    assert assert_self_contained(html) == 5  # loss vs compute, residuals, compute-optimal, bootstrap, backtest
    fit = json.loads((tmp_path / "fit" / "fit.json").read_text())
    forecast = fit["predictions"][0]
    assert f"{forecast['value']:.4f}" in html and f"[{forecast['lo']:.4f}, {forecast['hi']:.4f}]" in html
    assert "compute-optimal frontier" in section(html, "forecast")
    assert f"{fit['backtest']['coverage']:.0%} of {fit['backtest']['n_test']} rows" in section(html, "backtest")


# -- a ladder's page ---------------------------------------------------------------------------------------------

def tiny_loss(n, d):
    return 0.6 + 60 / n ** 0.35 + 90 / d ** 0.3


def write_rung(runs, plan, rung, status="done", budgets_done=None, finished_at=0.0, off=1.0):
    """A run directory as `ladder train` leaves it: summary.json and metrics.jsonl, losses from a known law."""
    directory = runs / plan.ladder / rung.name
    directory.mkdir(parents=True)
    n = rung.counts.non_embedding
    labels = list(rung.budgets)[:budgets_done] if budgets_done is not None else list(rung.budgets)
    budgets = {label: {"tokens": tokens, "flops": 6.0 * rung.counts.total * tokens,
                       "loss": tiny_loss(n, tokens) * off if label in labels else None,
                       "finished_at": finished_at + i if label in labels else None}
               for i, (label, tokens) in enumerate(rung.budgets.items())}
    trained = max([b["tokens"] for b in budgets.values() if b["loss"] is not None], default=0)
    summary = {"status": status, "ladder": plan.ladder, "rung": rung.name, "size": rung.size, "seed": 0,
               **rung.counts.to_dict(), "flops_convention": "chinchilla_6nd",
               "flops_per_token": {"chinchilla_6nd": 6 * rung.counts.total}, "budgets": budgets,
               "tokens_seen": trained, "steps_done": trained // rung.recipe.batch_tokens, "wall_time_s": 1.0}
    (directory / "summary.json").write_text(json.dumps(summary))
    records = [{"step": s, "tokens": int(t), "loss": tiny_loss(n, t) * 1.02, "val_loss": tiny_loss(n, t)}
               for s, t in enumerate(np.geomspace(trained / 20, trained, 8) if trained else [])]
    records += [{"budget": label, "tokens": b["tokens"], "val_loss": b["loss"]} for label, b in budgets.items()
                if b["loss"] is not None]
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


FEW_STARTS = ["law.grid.a=[4,8]", "law.grid.b=[4,8]", "law.grid.e=[-0.5]", "law.grid.alpha=[0.3,0.6]",
              "law.grid.beta=[0.3,0.6]"]  # 16 starts, not 4500: the law is exact here


def ladder_overrides(runs):
    return [f"runs_dir={runs}", "bootstrap.n=50", "fit.task=null", "interval.fold_bootstrap=20", *FEW_STARTS]


def test_ladder_report_puts_each_warning_by_what_it_is_about(tmp_path, run_cli):
    runs = tmp_path / "runs"
    plan = make_plan(compose_config(ladder_overrides(runs)))
    landed = {"tiny-201k": 100, "tiny-14k": 200, "tiny-40k": 300, "tiny-111k": 400}  # the largest landed first
    for rung in plan.rungs:
        write_rung(runs, plan, rung, finished_at=landed[rung.name], off=1.15 if rung.name == "tiny-40k" else 1.0)
    code, out, err = run_cli("report", *ladder_overrides(runs))
    assert code == 0, err
    html = (runs / "tiny" / "report" / "index.html").read_text()
    assert assert_self_contained(html) >= 7
    for anchor in ("plan", "curves", "fit", "forecast", "backtest", "history"):
        assert f'<section id="{anchor}">' in html, anchor
    assert "tiny-40k" in section(html, "curves").split("warning: flagged before the fit:", 1)[1]
    assert "flagged before the fit" not in section(html, "fit")  # once, by the curves it concerns
    assert "off the law" in section(html, "fit")  # the residual warnings, by the residual plot
    assert "rungs: 4 done" in section(html, "plan")
    history = section(html, "history")
    rows = re.findall(r"<tr><td>(\d)</td><td>([\w-]+)</td>", history)
    assert rows == [("2", "tiny-14k"), ("3", "tiny-40k"), ("4", "tiny-111k")]  # the order they landed
    assert (runs / "tiny" / "report" / "report.md").read_text().count("## ") == 6


def test_a_report_after_ladder_eval_reads_its_task_scores(tmp_path, run_cli):
    """`ladder eval` appends a budget's task scores without a validation loss: the curves read past them."""
    runs = tmp_path / "runs"
    plan = make_plan(compose_config(ladder_overrides(runs)))
    for rung in plan.rungs[:3]:
        write_rung(runs, plan, rung)
    metrics = runs / "tiny" / "tiny-40k" / "metrics.jsonl"
    with metrics.open("a") as f:
        f.write(json.dumps({"budget": "2xC", "step": 10, "tokens": 100, "flops": 1e6, "eval/next_line/acc": 0.3,
                            "eval_s": 0.1, "source": "ladder eval"}) + "\n")
    code, out, err = run_cli("report", *ladder_overrides(runs))
    assert code == 0 and "Traceback" not in err, err
    assert '<section id="curves">' in (runs / "tiny" / "report" / "index.html").read_text()


def test_history_refits_only_what_is_new(tmp_path, monkeypatch):
    import ladder.report.history as history
    from ladder.report.ladder_page import write_ladder_report

    runs = tmp_path / "runs"
    cfg = compose_config(ladder_overrides(runs))
    plan = make_plan(cfg)
    for i, rung in enumerate(plan.rungs[:3]):
        write_rung(runs, plan, rung, finished_at=i)
    calls = []
    real = history.fit_ladder
    monkeypatch.setattr(history, "fit_ladder", lambda *a, **k: calls.append(1) or real(*a, **k))
    write_ladder_report(cfg, plan)
    assert len(calls) == 2  # 2 and 3 rungs
    write_rung(runs, plan, plan.rungs[3], finished_at=9)
    write_ladder_report(cfg, plan)
    assert len(calls) == 3  # only the 4-rung refit is new


def test_status_report_refreshes_the_page_mid_sweep(tmp_path, run_cli):
    runs = tmp_path / "runs"
    plan = make_plan(compose_config(ladder_overrides(runs)))
    code, out, err = run_cli("status", "report=true", *ladder_overrides(runs))
    assert code == 0 and "report: not written yet" in out, out + err  # nothing has finished
    write_rung(runs, plan, plan.rungs[0], finished_at=1)
    write_rung(runs, plan, plan.rungs[1], finished_at=2)
    write_rung(runs, plan, plan.rungs[2], status="running", budgets_done=0)
    code, out, err = run_cli("status", "report=true", *ladder_overrides(runs))
    page = runs / "tiny" / "report" / "index.html"
    assert code == 0 and f"report: {page}" in out, out + err
    html = page.read_text()
    assert "rungs: 2 done, 1 running, 1 not started" in section(html, "plan")
    assert "backtest=rolling: needs at least 3 sizes (2 to fit, 1 to forecast); 2 sizes have finished" in \
        section(html, "forecast")
    assert len(re.findall(r"<tr><td>\d</td>", section(html, "history"))) == 1
    write_rung(runs, plan, plan.rungs[3], finished_at=3)  # a third size lands: the page grows with it
    code, out, err = run_cli("status", "report=true", *ladder_overrides(runs))
    html = page.read_text()
    assert code == 0 and '<section id="backtest">' in html
    assert len(re.findall(r"<tr><td>\d</td>", section(html, "history"))) == 2
    assert run_cli("status", "report=yes", *ladder_overrides(runs))[0] == 2


# -- plots -------------------------------------------------------------------------------------------------------

@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions make, kept open instead of closed after saving."""
    import ladder.fit.plots as plots
    kept = []
    real = plots.save

    def keep(fig, path):
        fig.canvas.draw()
        kept.append(fig)
        fig.savefig(path)
        return path
    monkeypatch.setattr(plots, "save", keep)
    yield kept
    for fig in kept:
        plots.plt.close(fig)
    assert real


def labels(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def tick_texts(ax) -> list[str]:
    return [t.get_text() for t in [*ax.get_xticklabels(), *ax.get_yticklabels()] if t.get_text()]


def fitted(options, table, targets, backtest=None):
    from ladder.fit.forecast import fit_and_forecast

    law, result = fit_and_forecast(table, options, targets, 50, 0, 0.95, backtest)
    return law, {**result, "params_used": "total parameters (column 'params')"}


def test_loss_plots_name_their_conventions_and_hold_the_target(tmp_path, figures):
    from ladder.fit.plots import plot_fit
    from ladder.fit.table import Table

    table = chinchilla_table()
    target = Table({"name": ["big"], "params": [7e10], "tokens": [1.4e12], "flops": [6 * 7e10 * 1.4e12]})
    law, result = fitted({"name": "chinchilla"}, table, target, "rolling")
    plot_fit(law, table, result, tmp_path)
    by_title = {ax.get_title(): ax for fig in figures for ax in fig.axes if ax.get_title()}
    loss = by_title["chinchilla: loss vs compute"]
    assert {"fitted runs", "law at each fitted N", "compute-optimal frontier (law)", "held out by the backtest",
            "forecast big (95% interval)"} <= set(labels(loss)) and any("target's N" in t for t in labels(loss))
    assert loss.get_xlim()[0] < table["flops"].min() and loss.get_xlim()[1] > 6 * 7e10 * 1.4e12
    assert "FLOPs" in loss.get_xlabel() and "nats" in loss.get_ylabel()
    frontier = by_title["compute-optimal frontier"]
    assert frontier.get_xlim()[1] > 6 * 7e10 * 1.4e12 and "target big" in labels(frontier)
    assert "total parameters" in frontier.get_ylabel()
    for ax in (loss, frontier):
        assert ax.get_xscale() == "log" and tick_texts(ax)
        assert not any("$" in t or "times" in t for t in tick_texts(ax)), tick_texts(ax)  # 1e+20, not 10^20
    assert all(ax.get_ylabel() for fig in figures for ax in fig.axes if ax.get_title() in ("alpha", "beta"))
    assert labels(by_title["chinchilla: residuals"])


def test_isoflop_plot_marks_minima_and_reaches_the_target(tmp_path, figures):
    from ladder.fit.plots import frontier
    from ladder.fit.table import Table

    table = isoflop_table()
    law, result = fitted({"name": "isoflop"}, table, Table({"name": ["t"], "params": [np.nan], "tokens": [np.nan],
                                                            "flops": [1e23]}))
    frontier(law, table, result, tmp_path / "frontier.png")
    curves, right = figures[0].axes[:2]
    assert {"C = 1e+18", "C = 1e+21", "minimum (optimum)"} <= set(labels(curves))
    assert right.get_xlim()[1] >= 1e23 and "forecast t" in labels(right)
    assert not any("$" in t for t in tick_texts(right))


# -- in a real browser -------------------------------------------------------------------------------------------

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver (.ci/run "
                                                      "installs them)")
def test_page_loads_in_chromium_with_every_image(tmp_path):
    from ladder.fit.forecast import run_fit
    from ladder.fit.table import Table
    from ladder.report.browser import chromium, load, screenshot
    from ladder.report.ladder_page import write_fit_page

    table = chinchilla_table()
    target = Table({"name": ["big"], "params": [7e10], "tokens": [1.4e12], "flops": [6 * 7e10 * 1.4e12]})
    result = run_fit(table, {"name": "chinchilla"}, target, 50, 0, 0.95, "rolling", tmp_path, source="synthetic")
    page = write_fit_page(result, tmp_path)
    broken = tmp_path / "broken.html"  # the check itself: a page with a broken image and a script error fails it
    broken.write_text(page.read_text().replace("base64,iVBOR", "base64,AAAA", 1)
                      .replace("</body>", "<script>undefined_function()</script></body>"))
    with chromium() as driver:
        errors, sizes = load(driver, page)
        assert not errors, errors
        assert len(sizes) == 5 and all(w > 100 and h > 100 for w, h in sizes), sizes
        shot = screenshot(driver, page, tmp_path / "page.png", height=1200)
        assert png_size("data:image/png;base64," + base64.b64encode(shot.read_bytes()).decode())[1] == 1200
        errors, sizes = load(driver, broken)
        assert errors and min(w for w, _ in sizes) == 0


def test_log_ticks_read_as_plain_numbers_and_error_bars_never_go_negative():
    from ladder.fit.plots import error_bars, plain_log_axis, plt

    fig, ax = plt.subplots()
    ax.plot([0.15, 0.9], [2.1, 5.5])
    ax.set(xscale="log", yscale="log")
    plain_log_axis(ax)
    fig.canvas.draw()
    x = [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()]
    y = [t.get_text() for t in [*ax.get_yticklabels(), *ax.get_yticklabels(minor=True)] if t.get_text()]
    plt.close(fig)
    assert {"0.2", "0.3", "0.5"} <= set(x) and {"3", "5"} <= set(y), (x, y)
    assert not any("$" in t for t in x + y)
    below, above = error_bars([0.5, 0.7], [0.55, 0.6], [0.9, 0.8])  # the first point lies under its own interval
    assert below.tolist() == [0.0, pytest.approx(0.1)] and above.tolist() == [pytest.approx(0.4), pytest.approx(0.1)]
    assert error_bars(1.0, np.nan, 2.0) is None
