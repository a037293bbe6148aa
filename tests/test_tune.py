"""`ladder tune`: optima and rules recovered on simulated loss(LR, N) surfaces with a known answer; the tune ladder;
recipe files; rungs flagged before the fit."""

import json
import math

import numpy as np
import pytest

from ladder.config import compose_config, ladder_files
from ladder.errors import LadderError
from ladder.fit.checks import exclude_runs, flag_runs, lr_flags
from ladder.fit.table import Table
from ladder.plan import make_plan
from ladder.tune.grid import TuneOptions, ladder_file, tune_ladder
from ladder.tune.optimum import curve_optimum, fit_rule

# the truth of the simulations: LR_opt = 0.01 (N/1e5)^-0.25 (m/20)^-0.1, m = tokens per parameter
TRUE = {"a": math.log(0.01), "b": -0.25, "c": -0.1}


def true_lr(n, m):
    return np.exp(TRUE["a"] + TRUE["b"] * np.log(n / 1e5) + TRUE["c"] * np.log(m / 20))


def sweep_loss(lr, n, m, rng, noise=0.005, curvature=0.05, shared=None):
    """A loss surface: a Chinchilla-like floor times a bowl in log LR around the true optimum, one run's noise
    (`shared`: the part of it the budgets of one WSD-S run have in common, given per LR)."""
    floor = 1.5 + 40 / n ** 0.3 + 60 / (m * n) ** 0.3
    off = np.log(lr / true_lr(n, m))
    own = rng.standard_normal(np.shape(lr))
    draw = own if shared is None else np.sqrt(0.5) * (own + shared)
    return floor * (1 + curvature * off ** 2) * np.exp(noise * draw)


def simulated_rule(rng, sizes=(1e4, 3e4, 1e5), multiples=(0.5, 1, 2), grid=(0.25, 0.5, 1, 2, 4), recipe_lr=0.02):
    """One tune on the surface, WSD-S style: a recipe whose LR is off the truth (recipe_lr at every size), a grid
    around it, the budgets of one (size, LR) run sharing half their noise."""
    n_, m_, y, se, runs = [], [], [], [], []
    for n in sizes:
        lrs = recipe_lr * np.array(grid)
        shared = rng.standard_normal(len(lrs))
        for m in multiples:
            best = curve_optimum(lrs, sweep_loss(lrs, n, m, rng, shared=shared))
            if best.at_edge:
                continue
            n_.append(n), m_.append(m), y.append(math.log(best.lr)), se.append(best.log_lr_se), runs.append(n)
    return fit_rule(n_, m_, y, se, "N,D", 0.95, runs=runs)


def test_curve_optimum_finds_the_vertex_and_its_error():
    """Noise as large as the floor the tune assumes (tune.noise): the vertex is unbiased and its 95% interval covers
    the truth about 95% of the time."""
    rng = np.random.default_rng(0)
    lrs = 0.003 * 2.0 ** np.arange(6)
    hits, errors = 0, []
    for _ in range(400):
        best = curve_optimum(lrs, sweep_loss(lrs, 3e4, 20, rng))
        truth = true_lr(3e4, 20)
        errors.append(math.log(best.lr / truth))
        lo, hi = best.interval(0.95)
        hits += lo <= truth <= hi
    assert abs(np.median(errors)) < 0.05  # unbiased to 5% of the LR
    assert hits / 400 >= 0.88, hits


def test_a_diverged_run_beside_the_minimum_leaves_it_interior():
    lrs = [1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2]
    best = curve_optimum(lrs, [3.0, 2.8, 2.7, 2.75, np.nan])  # the highest LR diverged
    assert not best.at_edge and 2e-3 < best.lr < 8e-3
    assert curve_optimum(lrs, [3.0, 2.9, 2.8, 2.7, 2.6]).at_edge


def test_monotone_curve_is_at_the_edge_and_gives_no_optimum():
    best = curve_optimum([1e-3, 2e-3, 4e-3, 8e-3], [3.0, 2.9, 2.8, 2.7])
    assert best.at_edge and best.lr == pytest.approx(8e-3)
    with pytest.raises(LadderError, match="2 sizes or more"):
        fit_rule([1e4, 1e4], [20, 40], [-5.0, -5.1], [0.1, 0.1])


def test_rule_recovers_the_known_law_within_its_interval():
    """200 WSD-S tunes of the simulated surface (budgets of one run share half their noise): the size and budget
    exponents' 95% intervals cover the truth, and the rule's LR at a size 10x beyond the tuned ones covers the true
    optimum there."""
    rng = np.random.default_rng(1)
    covered = {"b": 0, "c": 0, "far": 0}
    estimates = []
    sims = 200
    for _ in range(sims):
        rule = simulated_rule(rng)
        intervals = rule.coef_interval()
        covered["b"] += intervals["size_exponent"][0] <= TRUE["b"] <= intervals["size_exponent"][1]
        covered["c"] += intervals["budget_exponent"][0] <= TRUE["c"] <= intervals["budget_exponent"][1]
        _, lo, hi = rule.predict(1e6, 20)
        covered["far"] += lo <= true_lr(1e6, 20) <= hi
        estimates.append(rule.exponent)
    assert abs(np.median(estimates) - TRUE["b"]) < 0.03
    for key, hits in covered.items():
        assert hits / sims >= 0.85, (key, hits)


def test_a_rule_from_one_budget_drops_the_budget_term_and_refuses_too_few_optima():
    # budgets rounded to whole batches differ in the 4th digit: that says nothing of D
    rule = fit_rule([1e4, 3e4, 1e5], [20.01, 20.02, 20.0], np.log([0.01, 0.008, 0.006]), [0.05] * 3)
    assert rule.form == "N" and "budget_exponent" not in rule.coef_interval()
    assert np.all(np.isfinite(rule.cov))
    with pytest.raises(LadderError, match="cannot fit LR_opt"):
        fit_rule([1e4, 3e4], [20, 20], np.log([0.01, 0.008]), [0.05] * 2)
    # two budgets but 3 optima: too few for N and D, the size rule alone, saying so
    rule = fit_rule([1e4, 3e4, 3e4], [10, 10, 20], np.log([0.01, 0.008, 0.007]), [0.05] * 3)
    assert rule.form == "N" and "too few for LR_opt(N, D)" in rule.note


def test_widening_adds_one_step_per_side_and_stops_at_extend():
    from ladder.tune.run import _widen

    grid, widened = {"a": [0.5, 1.0, 2.0]}, {"a": []}
    curves = [{"size": "a", "edge_side": "high"}, {"size": "a", "edge_side": "high"}]  # two budgets, one edge
    assert _widen(grid, widened, curves, extend=1) == {"a"} and grid["a"] == [0.5, 1.0, 2.0, 4.0]
    assert _widen(grid, widened, curves, extend=1) == set() and grid["a"] == [0.5, 1.0, 2.0, 4.0]


def test_best_setting_is_the_lowest_loss_at_its_best_lr():
    from ladder.tune.run import best_of

    small, large = {"batch_multipliers": 0.5}, {"batch_multipliers": 2.0}
    curves = [{"size": s, "budget": b, "setting": setting, "loss": loss} for s in ("a", "b") for b in ("1xC", "2xC")
              for setting, loss in ((small, 2.0), (large, 2.1))]
    assert best_of(curves, [small, large]) == small


def test_recipe_lr_is_the_rule_at_the_ladders_budget():
    rule = simulated_rule(np.random.default_rng(2))
    recipe = rule.recipe_lr(ref_params=1e5, tokens_per_param=20)
    lr, _, _ = rule.predict(3e5, 20)
    assert recipe["base"] * (3e5 / 1e5) ** recipe["exponent"] == pytest.approx(float(lr), rel=2e-3)


def test_tune_ladder_scales_the_recipe_per_run(tmp_path):
    cfg = compose_config(["ladder=tiny"])
    plan = make_plan(cfg)
    options = TuneOptions.from_config({"sizes": ["tiny-14k", "tiny-40k"], "lr_multipliers": [0.5, 1, 2],
                                       "batch_multipliers": [0.5, 1]})
    from omegaconf import OmegaConf
    body, runs = tune_ladder(OmegaConf.to_container(cfg.ladder, resolve=True),
                             OmegaConf.to_container(cfg.recipe, resolve=True), ["tiny-14k", "tiny-40k"],
                             {"tiny-14k": [0.5, 1, 2], "tiny-40k": [0.5, 1, 2]}, options.settings(), ["1xC"],
                             "tiny-tune")
    (tmp_path / "ladder").mkdir()
    (tmp_path / "ladder" / "tiny-tune.yaml").write_text(ladder_file(body, {"name": "t", "preset": "tiny-665k",
                                                                           "tokens": "1xC"}, "tiny", "test"))
    tuned = make_plan(compose_config(ladder_files([f"ladder={tmp_path / 'ladder' / 'tiny-tune.yaml'}"])))
    assert len(tuned.rungs) == 2 * 3 * 2
    base = {r.size: r.recipe for r in plan.rungs}
    for rung in tuned.rungs:
        info = runs[rung.size]
        assert rung.recipe.lr == pytest.approx(base[info["size"]].lr * info["lr_multiplier"], rel=1e-5)
        want = base[info["size"]].batch_sequences * info["setting"]["batch_multipliers"]
        assert rung.recipe.batch_sequences == max(1, round(want))
    assert "tiny-14k-lr0.5x-b0.5x" in runs and "tiny-40k-lr2x-b1x" in runs


def test_a_size_entry_refuses_an_unknown_recipe_key():
    cfg = compose_config(["ladder=tiny", "+ladder.sizes.tiny-14k.recipe={lrr: 1}"])
    with pytest.raises(LadderError, match=r"ladder.sizes.tiny-14k.recipe.lrr: not a per-size recipe key"):
        make_plan(cfg)


def test_a_recipe_file_composes_like_a_builtin(tmp_path, run_cli):
    (tmp_path / "recipe").mkdir()
    (tmp_path / "recipe" / "mine.yaml").write_text("defaults:\n  - tiny\n  - _self_\nname: mine\n"
                                                   "lr: {base: 0.5, ref_params: 1.0e5, exponent: 0.0}\n")
    code, out, err = run_cli("plan", f"recipe={tmp_path / 'recipe' / 'mine.yaml'}", "format=json")
    assert code == 0, err
    assert {r["lr"] for r in json.loads(out)["rungs"]} == {0.5}
    code, _, err = run_cli("plan", f"recipe={tmp_path / 'recipe' / 'nope.yaml'}")
    assert code == 2 and "no such file" in err
    (tmp_path / "recipe" / "tiny.yaml").write_text("name: tiny\n")
    code, _, err = run_cli("plan", f"recipe={tmp_path / 'recipe' / 'tiny.yaml'}")
    assert code == 2 and "also a built-in recipe" in err


def simulated_ladder(off_rung: str | None = None, off: float = 0.0, seed: int = 0) -> Table:
    """Five sizes x three budgets from a known Chinchilla law with 0.3% noise; one rung's losses moved by `off`."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, n in enumerate([1e5, 2e5, 4e5, 8e5, 1.6e6]):
        for m in (10, 20, 40):
            d = 20 * m * n / 20
            loss = (1.7 + 400 / n ** 0.34 + 410 / d ** 0.28) * math.exp(0.003 * rng.standard_normal())
            name = f"r{i}"
            rows.append({"run": name, "params": n, "tokens": d, "flops": 6 * n * d,
                         "loss": loss * (1 + off if name == off_rung else 1), "lr": 0.01, "final": 1})
    return Table({k: [r[k] for r in rows] for k in rows[0]})


def test_a_mistuned_rung_is_flagged_before_the_fit():
    law, checks = {"name": "chinchilla"}, {"flag_error": 0.05}
    assert flag_runs(law, simulated_ladder(), checks) == ([], [])
    flags, _ = flag_runs(law, simulated_ladder("r2", 0.08), checks)
    assert [f["run"] for f in flags] == ["r2"] and flags[0]["value"] > 0.05
    assert "fit.exclude" in flags[0]["message"]
    table, excluded = exclude_runs(simulated_ladder("r2", 0.08), ["r2"], "sim")
    assert excluded == ["r2"] and len(table) == 12 and "r2" not in set(table["run"])
    with pytest.raises(LadderError, match="fit.exclude: no run named 'r9'"):
        exclude_runs(table, ["r9"], "sim")
    assert flag_runs(law, simulated_ladder("r2", 0.08), {"flag_error": None}) == ([], [])  # null: no check
    _, notes = flag_runs(law, simulated_ladder().take(np.arange(9)), checks)  # 3 sizes
    assert notes == ["leave-one-size-out check skipped: 3 sizes (it needs 4 to 20)"]


def test_a_rung_far_from_the_tuned_lr_is_flagged(tmp_path):
    rule = simulated_rule(np.random.default_rng(3))
    tune = {"rule": rule.to_dict(), "params_for": "total", "best_setting": {},
            "curves": [{"n": 1e5, "size": "s", "setting": {}, "curvature": 0.05}]}
    (tmp_path / "tune.json").write_text(json.dumps(tune))
    table = Table({"run": ["good", "bad"], "params": [1e5, 1e5], "tokens": [2e6, 2e6], "loss": [3.0, 3.1],
                   "lr": [float(true_lr(1e5, 20)), float(true_lr(1e5, 20)) * 8]})
    flags = lr_flags(table, str(tmp_path), 0.01)
    assert [f["run"] for f in flags] == ["bad"]
    assert 0.15 < flags[0]["value"] < 0.3  # 0.05 x ln(8)^2 = 0.22 of the loss, by the rule's estimate of the optimum


def test_fit_cli_names_flags_and_exclusions(tmp_path, run_cli):
    path = tmp_path / "runs.csv"
    simulated_ladder("r2", 0.08).write_csv(path)
    code, out, err = run_cli("fit", f"runs={path}", "columns.run=run", "bootstrap.n=20", f"out={tmp_path / 'fit'}",
                             "plots=false", "target.params=1e7", "target.tokens=2e8")
    assert code == 0, err
    assert out.startswith("flagged before the fit: r2 (N=4e+05) sits +")
    code, out, err = run_cli("fit", f"runs={path}", "columns.run=run", "bootstrap.n=20", f"out={tmp_path / 'fit'}",
                             "plots=false", "fit.exclude=[r2]", "target.params=1e7", "target.tokens=2e8")
    assert code == 0, err
    assert "excluded from the fit (fit.exclude): r2" in out and "flagged" not in out
    fit = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert fit["n_points"] == 12 and fit["excluded"] == ["r2"] and fit["flags"] == []


@pytest.mark.slow
def test_tune_end_to_end_writes_a_recipe_plan_takes(tmp_path, run_cli):
    out = tmp_path / "tune"
    # multipliers 100x apart: the recipe's LR beats one that barely trains and one that blows up, so the optimum is
    # interior whatever the corpus
    args = ["tune", "tune.sizes=[tiny-14k,tiny-40k]", "tune.lr_multipliers=[0.01,0.1,1,10,100]", "tune.extend=0",
            "ladder.budgets=[1e4,2e4]", "eval=[]", "logger.wandb=disabled", "train.eval_points=2",
            "data.max_documents=300", "train.save_budget_models=false", f"out={out}"]
    code, text, err = run_cli(*args)
    assert code == 0, err
    result = json.loads((out / "tune.json").read_text())
    assert {c["size"] for c in result["curves"]} == {"tiny-14k", "tiny-40k"}
    assert "rule: LR_opt =" in text and "the ladder's current recipe (tiny) against the rule" in text
    for name in ("report.md", "plots/lr_curves.png", "plots/lr_rule.png"):
        assert (out / name).stat().st_size > 1000, name
    code, plan_out, err = run_cli("plan", f"recipe={result['recipe_yaml']}", "format=json")
    assert code == 0, err
    lr = result["recipe_lr"]
    for rung in json.loads(plan_out)["rungs"]:
        n = rung["olmo_params"]
        assert rung["lr"] == pytest.approx(lr["base"] * (n / lr["ref_params"]) ** lr["exponent"], rel=1e-9)
    summaries = sorted((out / "runs").glob("*/*/summary.json"))
    assert len(summaries) == 10
    written = [p.stat().st_mtime_ns for p in summaries]
    code, again, err = run_cli(*args)  # the same command again: no run trains again, the same rule comes out
    assert code == 0, err
    assert [p.stat().st_mtime_ns for p in summaries] == written
    assert json.loads((out / "tune.json").read_text())["rule"]["coef"] == result["rule"]["coef"]
