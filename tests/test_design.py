"""`ladder design`: simulated forecast errors with a known answer, the search, its files and its errors."""

import json
import re

import numpy as np
import pytest

from ladder.config import compose_config
from ladder.errors import LadderError
from ladder.design.prior import EPOCH_KAPPA, EPOCH_NOISE_SD, EPOCH_THETA_SD, epoch_prior, prior_from_fit
from ladder.design.search import rows_of
from ladder.design.simulate import LadderRows, fit_forecast, rung_losses, simulate
from ladder.fit.laws import make_law
from ladder.model import ParamCount
from ladder.fit.table import Table
from ladder.plan import make_plan

TARGET = (7e9, 2e12)
# a small search, so each CLI test runs in seconds
SMALL = ["ladder=olmo", "target.params=7e9", "target.tokens=2e12", "design.largest=[0.03,0.1,0.3]",
         "design.n_sizes=[3,5]", "design.budgets=[[1xC,4xC],[1xC,4xC,16xC]]", "design.seeds=[1]",
         "design.presets=false", "design.sims=120", "design.check_sims=300"]


def ladder(largest=1e9, n_sizes=5, multiples=(1, 4, 16), seeds=1, ratio=2.0) -> LadderRows:
    """WSD-S style rows: one run per (size, seed) yields every budget."""
    sizes = largest / ratio ** np.arange(n_sizes)
    rows = [(n, 20 * m * n, f"{n:.4g}-s{s}", s) for s in range(seeds) for n in sizes for m in multiples]
    return LadderRows.of(*map(list, zip(*rows)))


def scores(ladders, sims=300, seed=0):
    prior = epoch_prior()
    return [o.score(prior, 0.95) for o in simulate(ladders, *TARGET, prior, n_sims=sims, seed=seed)]


def test_batched_simulation_fit_is_the_fit_users_get():
    """Each simulated ladder, fitted from the prior's mean by the batched L-BFGS, lands where `ladder fit`'s grid
    of 4500 starts and scipy polish land; where it does not, the data do not pin the law down: the user's fit warns
    of a flat valley and both optima have the same objective."""
    prior = epoch_prior()
    rows = ladder(n_sizes=4, multiples=(1, 4))  # 8 rows for 5 parameters: a thin ladder, the hard case
    truths = prior.draw(8, seed=3)
    losses = rung_losses(rows, truths, prior.noise_sd, seed=3, branch_correlation=0.5)
    data = np.zeros((8, len(rows), 4))
    data[:, :, 0], data[:, :, 1], data[:, :, 2], data[:, :, 3] = np.log(rows.params), np.log(rows.tokens), losses, 1
    batched = fit_forecast(data, prior.theta, np.log([TARGET]), "huber_log", 1e-3)[:, 0]
    target = Table({"params": [TARGET[0]], "tokens": [TARGET[1]]})
    agree = 0
    for i in range(8):
        law = make_law({"name": "chinchilla"}).fit(Table({"params": rows.params, "tokens": rows.tokens,
                                                          "loss": losses[i]}))
        if abs(batched[i] - np.log(law.predict(target).value[0])) < 1e-4:
            agree += 1
            continue
        assert any("flat valley" in w for w in law.warnings_)
    assert agree >= 6
def test_more_larger_or_longer_rungs_never_raise_the_expected_error():
    short = (1, 4)  # 80B tokens at the top: the tokens, 3.2 e-folds short of the target's 2T, bind the distance
    base, more, larger, longer, seeds = scores([ladder(multiples=short), ladder(n_sizes=7, multiples=short),
                                                ladder(largest=2e9, multiples=short), ladder(multiples=(1, 4, 16)),
                                                ladder(seeds=2, multiples=short)])
    for name, better in (("more", more), ("larger", larger), ("longer", longer), ("seeds", seeds)):
        assert better["error"] <= base["error"] * 1.02, name
        assert better["median_error"] <= base["median_error"] * 1.02, name
    # reaching closer to the target shrinks the error by a clear margin, not by noise
    assert larger["error"] < 0.9 * base["error"] and longer["error"] < 0.9 * base["error"]
    assert larger["distance_efolds"] < base["distance_efolds"] and longer["distance_efolds"] < base["distance_efolds"]


def test_a_ladder_at_the_target_is_limited_by_noise_alone():
    """Known answer: with no extrapolation (rungs at the target's N and D) and a tight fit, |error| is about the
    target run's own noise and the fit's: the 95% quantile of |N(0, sd)| is 1.96 sd."""
    prior = epoch_prior().with_errors(noise_sd=0.01, kappa=0.0)
    sizes = TARGET[0] / 1.5 ** np.arange(8)
    rows = [(n, TARGET[1] * f, f"{n:.4g}", 0) for n in sizes for f in (0.25, 0.5, 1.0)]
    outcome = simulate([LadderRows.of(*map(list, zip(*rows)))], *TARGET, prior, n_sims=600)[0]
    score = outcome.score(prior, 0.95)
    expected = 1.96 * np.sqrt(0.01 ** 2 + score["band_sd"] ** 2)
    assert score["distance_efolds"] == 0
    assert abs(score["error"] / expected - 1) < 0.15


def test_design_chooses_a_ladder_that_meets_the_goal_in_fresh_simulations(run_cli, tmp_path):
    out = tmp_path / "design"
    code, text, err = run_cli("design", *SMALL, "design.error=0.06", f"out={out}")
    assert code == 0, err
    result = json.loads((out / "design.json").read_text())
    chosen = result["chosen"]
    assert chosen["error_upper"] <= 0.06 and result["check"]["error"] <= 0.06
    # nothing cheaper among the candidates meets the goal
    assert all(c["error_upper"] > 0.06 for c in result["candidates"] if c["gpu_hours"] < chosen["gpu_hours"])
    # the frontier's errors fall as the cost rises
    errors = [c["error"] for c in result["frontier"]]
    assert errors == sorted(errors, reverse=True)
    assert "chosen:" in text and "frontier" in text
    assert (out / "report.md").exists() and (out / "frontier.png").stat().st_size > 10_000

    # the written ladder is what `ladder plan` plans, at the cost the design reported ...
    yaml_path = out / "ladder" / "design-olmo-7b.yaml"  # 7e9 on the OLMo ladder is its olmo-7b preset
    code, plan_text, err = run_cli("plan", f"ladder={yaml_path}", "format=json")
    assert code == 0, err
    plan = json.loads(plan_text)
    assert plan["ladder"] == "design-olmo-7b"
    assert plan["ladder_gpu_hours"] == pytest.approx(chosen["gpu_hours"], rel=1e-9)
    assert len(plan["rungs"]) == chosen["rungs"]
    # ... and fresh simulations of that plan, with another seed, meet the goal too
    cfg = compose_config([f"hydra.searchpath=[file://{out}]", "ladder=design-olmo-7b"])
    fresh = simulate([rows_of(make_plan(cfg), ParamCount.total)], *TARGET, epoch_prior(), n_sims=400, seed=11)[0]
    assert fresh.score(epoch_prior(), 0.95)["error"] <= 0.06


def test_an_infeasible_goal_says_so_in_one_line(run_cli, tmp_path):
    code, text, err = run_cli("design", *SMALL, "design.error=0.002", "design.max_gpu_hours=5000",
                              f"out={tmp_path}")
    assert code == 1
    lines = [line for line in text.splitlines() if line.startswith("design.error=0.002")]
    assert len(lines) == 1 and "within design.max_gpu_hours=5000" in lines[0] and "best achievable is" in lines[0]
    result = json.loads((tmp_path / "design.json").read_text())
    assert result["best"]["gpu_hours"] <= 5000
    # the best is the affordable candidate whose error is lowest at its 90% upper bound (the goal's own measure)
    assert result["best"]["error_upper"] == min(c["error_upper"] for c in result["candidates"]
                                                if c["gpu_hours"] <= 5000)
    assert not (tmp_path / "ladder").exists()


def test_compute_alone_targets_the_priors_compute_optimal_size(run_cli, tmp_path):
    code, text, err = run_cli("design", *[o for o in SMALL if not o.startswith("target.")], "target.flops=1e23",
                              "design.error=0.5", "format=json", f"out={tmp_path}")
    assert code == 0, err
    law = epoch_prior().readable()
    a, b = law["alpha"], law["beta"]
    n_opt = (a * law["A"] / (b * law["B"])) ** (1 / (a + b)) * (1e23 / 6) ** (b / (a + b))
    plan = json.loads(run_cli("plan", f"ladder={tmp_path / 'ladder' / 'design-optimal-1e23f.yaml'}",
                              "format=json")[1])
    assert plan["target"]["params"] == pytest.approx(n_opt, rel=0.03)
    assert plan["target"]["flops"] == pytest.approx(1e23, rel=0.01)


@pytest.mark.parametrize("override, field", [
    ("design.error=2", "design.error"),
    ("design.params=weights", "design.params"),
    ("design.largest=[0.1,3]", "design.largest"),
    ("design.colour=red", "design.colour"),
    ("design.prior=nope.json", "design.prior"),
    ("design.name=../escape", "design.name"),
    ("design.name=olmo", "design.name"),
    ("design.budgets=[1xC,4xC]", "design.budgets"),
    ("design.sims=2.5", "design.sims"),
])
def test_bad_design_options_are_refused_in_one_line(run_cli, override, field, tmp_path):
    code, out, err = run_cli("design", *SMALL, override, f"out={tmp_path}")
    assert code == 2
    assert err.startswith("error: ") and field in err and len(err.strip().splitlines()) == 1


def test_prior_from_a_users_fit_json(run_cli, tmp_path):
    """A fit.json of law=chinchilla carries theta, its bootstrap covariance and the error model: a prior."""
    rng = np.random.default_rng(0)
    law = epoch_prior().readable()
    params = np.repeat(np.geomspace(5e7, 1e9, 6), 3)
    tokens = params * 20 * np.tile([1, 4, 16], 6)
    loss = (law["E"] + law["A"] / params ** law["alpha"] + law["B"] / tokens ** law["beta"]) * np.exp(
        rng.normal(0, 0.004, len(params)))
    Table({"params": params, "tokens": tokens, "loss": loss}).write_csv(tmp_path / "runs.csv")
    code, _, err = run_cli("fit", f"runs={tmp_path / 'runs.csv'}", "bootstrap.n=200", "plots=false",
                           f"out={tmp_path / 'fit'}", "target.params=7e9", "target.tokens=2e12")
    assert code == 0, err
    prior = prior_from_fit(tmp_path / "fit" / "fit.json")
    fit = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert prior.kappa == fit["interval"]["error_model"]["kappa_per_efold"] > 0
    assert prior.readable()["alpha"] == pytest.approx(fit["coefficients"]["alpha"])
    assert np.all(np.linalg.eigvalsh(prior.cov) > -1e-12) and prior.cov[2, 2] > 0
    code, _, err = run_cli("design", *SMALL, f"design.prior={tmp_path / 'fit' / 'fit.json'}", "design.error=0.5",
                           f"out={tmp_path / 'design'}")
    assert code == 0, err
    assert str(tmp_path / "fit" / "fit.json") in json.loads((tmp_path / "design" / "design.json").read_text())[
        "prior"]["source"]


def test_epoch_prior_is_what_ladder_fit_measures_on_epochs_data(chinchilla_csv):
    """The default prior's covariance, noise and extrapolation scale are ladder fit's own on Chinchilla's points."""
    from ladder.fit.calibrate import IntervalOptions
    from ladder.fit.reproduce import load_chinchilla

    table = load_chinchilla(chinchilla_csv)
    law = make_law({"name": "chinchilla"}).fit(table).bootstrap(table, 1000, 0).calibrate(table, IntervalOptions())
    sd = np.std(law.theta_samples_, axis=0)
    assert np.allclose(sd, EPOCH_THETA_SD, rtol=0.15)
    assert law.error_.noise_sd == pytest.approx(EPOCH_NOISE_SD, rel=0.05)
    assert law.error_.kappa == pytest.approx(EPOCH_KAPPA, rel=0.1)


@pytest.mark.parametrize("name, message", [("mine.yml", "reads .yaml files only"), ("tiny.yaml", "built-in ladder")])
def test_a_ladder_file_that_cannot_load_as_itself_is_refused(run_cli, tmp_path, name, message):
    (tmp_path / "ladder").mkdir()
    (tmp_path / "ladder" / name).write_text("# @package _global_\nladder: {name: other}\n")
    code, _, err = run_cli("plan", f"ladder={tmp_path / 'ladder' / name}")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


# -- the curve law: a prior from a fit.json of law=curve prices ladders by every evaluation of their runs ---------
CURVE_SMALL = ["ladder=tiny", "target.params=1.6e6", "target.tokens=3.2e7", "design.largest=[0.1,0.3]",
               "design.n_sizes=[3,4]", "design.budgets=[[1xC],[0.5xC,1xC,2xC]]", "design.seeds=[1]",
               "design.presets=false", "design.sims=60", "design.check_sims=200"]


@pytest.fixture(scope="module")
def curve_prior_path(tmp_path_factory):
    """`ladder fit law=curve` (bootstrap, calibrated) on test_curves' WSD-S ladder of known law."""
    from ladder.cli import main
    from test_curves import wsds_ladder

    out = tmp_path_factory.mktemp("curve-prior")
    wsds_ladder().write_csv(out / "curves.csv")
    assert main(["fit", f"runs={out / 'curves.csv'}", "law=curve", f"out={out / 'fit'}", "bootstrap.n=100",
                 "plots=false", "target.params=1.6e6", "target.tokens=3.2e7"]) == 0
    return out / "fit" / "fit.json"


def test_a_curve_fit_is_a_prior_with_its_runs_shared_noise(curve_prior_path, tmp_path):
    fit = json.loads(curve_prior_path.read_text())
    prior = prior_from_fit(curve_prior_path)
    assert prior.law == "curve" and prior.theta.shape == (7,) and prior.cov.shape == (7, 7)
    level, point = fit["run_effects"]["level_sd"], fit["run_effects"]["within_sd"]
    assert prior.noise_sd == pytest.approx(np.hypot(level, point))
    assert prior.run_share == pytest.approx(level ** 2 / (level ** 2 + point ** 2))
    assert prior.readable()["gamma"] == pytest.approx(fit["coefficients"]["gamma"])
    bound = {**fit, "theta": {**fit["theta"], "value": [*fit["theta"]["value"][:5], -2.0, fit["theta"]["value"][6]]}}
    for changed, message in (({"run_effects": {"level_sd": -1, "within_sd": 0.01}}, "run_effects.level_sd"),
                             ({"run_effects": [0.1]}, "has no run_effects"),
                             ({"law": ["curve"]}, "needs a fit of law=chinchilla or law=curve"),
                             ({"warnings": ["E collapsed to 0 (1e-08, ...)"]}, "the fit's E collapsed to 0"),
                             (bound, "theta's gamma sits on its lower bound (-2)")):
        (tmp_path / "fit.json").write_text(json.dumps({**fit, **changed}))
        with pytest.raises(LadderError, match=re.escape(message)) as refused:
            prior_from_fit(tmp_path / "fit.json")
        assert len(str(refused.value).splitlines()) == 1


@pytest.mark.parametrize("recipe, final_lr", [("wsds", 0.0), ("porian", 0.1)])
def test_the_targets_end_is_where_ladder_fit_places_it(recipe, final_lr):
    """target_end_schedule: the target's run under the recipe group, as `ladder fit law=curve` forecasts it
    (ladder.fit.curves.target_paths), N in the recipe's convention."""
    from omegaconf import OmegaConf

    from ladder.design.search import target_end_schedule
    from ladder.fit.curves import target_paths

    cfg = compose_config(["ladder=tiny", f"recipe={recipe}", "target.params=1.6e6", "target.tokens=3.2e7"])
    plan = make_plan(cfg)
    ours = target_end_schedule(cfg, plan)
    targets = Table({"name": ["t"], "params": [float(plan.target.counts.by_convention(plan.params_for))],
                     "tokens": [float(plan.target.tokens)]})
    theirs, _ = target_paths(targets, OmegaConf.to_container(cfg.recipe, resolve=True), plan.target.spec.seq_len)
    assert ours["lr_area_tokens"][0] == pytest.approx(theirs["lr_area_tokens"][0], rel=1e-12)
    assert ours["lr_frac"][0] == pytest.approx(final_lr, abs=1e-9) == theirs["lr_frac"][0]
    assert 0.4 * plan.target.tokens < ours["lr_area_tokens"][0] < plan.target.tokens


def test_a_planned_runs_curve_rows_are_the_evaluations_it_logs():
    """rows_of(curves=True): each rung's main-run evaluations (train.eval_points, where `ladder plan` puts them)
    and each budget's end on its cooldown, placed by the recipe's schedule."""
    cfg = compose_config(["ladder=tiny", "ladder.budgets=[0.5xC,1xC,2xC]", "train.eval_points=5"])
    plan = make_plan(cfg)
    rows = rows_of(plan, ParamCount.total, every_evaluation=True)
    assert len(rows) == sum(rung.eval_points + len(rung.budgets) for rung in plan.rungs)
    rung = plan.rungs[0]
    own = rows.run == rung.name
    ends = np.isin(rows.tokens[own], list(rung.budgets.values())) & (rows.schedule["lr_frac"][own] < 0.5)
    assert ends.sum() == len(rung.budgets)  # each budget's cooldown end, at the schedule's final LR
    assert np.allclose(rows.schedule["lr_frac"][own][ends], rung.recipe.schedule.get("final_lr_frac", 0.0))
    main_run = rows.schedule["lr_frac"][own][~ends]
    assert len(main_run) == rung.eval_points and np.all(main_run > 0.5)
    assert np.all(np.diff(rows.schedule["lr_area_tokens"][own][~ends]) > 0)


def test_batched_curve_simulation_fit_is_the_fit_users_get(curve_prior_path):
    """As for chinchilla: the batched L-BFGS from the prior's mean lands where `ladder fit law=curve`'s grid and
    polish land, or both optima fit the data as well (a flat valley the user's fit warns of)."""
    prior = prior_from_fit(curve_prior_path)
    law = prior.make_law()
    cfg = compose_config(["ladder=tiny", "ladder.budgets=[0.5xC,1xC,2xC]"])
    rows = rows_of(make_plan(cfg), ParamCount.total, every_evaluation=True)
    truths = prior.draw(6, seed=5)
    losses = rung_losses(rows, truths, prior.noise_sd, 5, prior.run_share, law)
    table = rows.table()
    data = np.concatenate([law._log_x(table)[None].repeat(6, 0), losses[:, :, None], np.ones((6, len(rows), 1))], 2)
    target = Table({"params": [1.6e6], "tokens": [3.2e7], "lr_area_tokens": [2.6e7], "lr_frac": [0.0]})
    batched = fit_forecast(data, prior.theta, law._log_x(target), "huber_log", 1e-3, law)[:, 0]
    agree = 0
    for i in range(6):
        own = make_law({"name": "curve"}).fit(Table({**table.columns, "loss": losses[i], "run": rows.run}))
        if abs(batched[i] - np.log(own.predict(target).value[0])) < 1e-3:
            agree += 1
            continue
        assert any("flat valley" in w for w in own.warnings_), own.warnings_
    assert agree >= 5


def test_design_prices_curve_law_ladders(run_cli, curve_prior_path, tmp_path):
    """With a curve-law prior, one run per size is a candidate (its evaluations span the tokens), the choice meets
    the goal in fresh simulations, and the report says which law it priced."""
    code, text, err = run_cli("design", *CURVE_SMALL, f"design.prior={curve_prior_path}", "design.error=0.2",
                              f"out={tmp_path}")
    assert code == 0, err
    result = json.loads((tmp_path / "design.json").read_text())
    assert result["law"] == "curve" and "law: curve" in text and "run_share" in result["prior"]
    assert any(c["budgets"] == ["1xC"] and np.isfinite(c["error"]) for c in result["candidates"])
    assert result["chosen"]["error_upper"] <= 0.2 and result["check"]["error"] <= 0.2
    assert "each evaluation of each run" in (tmp_path / "report.md").read_text()


def test_a_curve_prior_needs_params_and_tokens_and_the_simulation_its_schedule(run_cli, curve_prior_path, tmp_path):
    """The compute-optimal size is Chinchilla's formula: a curve prior with target.flops alone is refused in one
    line; simulating a curve prior without the rows' or the target's schedule is refused too."""
    code, _, err = run_cli("design", *CURVE_SMALL[:1], "target.flops=1e15", f"design.prior={curve_prior_path}",
                           f"out={tmp_path}")
    assert code == 2 and "needs a prior of law=chinchilla, not law=curve" in err and len(err.strip().splitlines()) == 1
    rows = rows_of(make_plan(compose_config(["ladder=tiny"])), ParamCount.total)  # final points, no schedule
    with pytest.raises(LadderError, match="a curve-law prior needs every evaluation"):
        simulate([rows], 1.6e6, 3.2e7, prior_from_fit(curve_prior_path), n_sims=20)
