"""`ladder tune` end to end: grid -> the tune ladder -> `ladder sweep` -> collect -> optima per curve -> widen the grid
where an optimum sits at its edge -> the LR rule -> tune.json's content (the command writes it, the recipe and the
report).

Re-running the same command resumes: finished and diverged runs are not trained again, the widened grid is read back
from grid.json. With `submit_only=true` (Slurm or local) it returns while jobs are queued or running; the same command
again collects once they are done.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf, open_dict

from ladder.errors import require
from ladder.fit.collect import collect_runs
from ladder.io import Each, is_number, atomic_write_json, atomic_write_text, check_shape, read_json
from ladder.model import ParamCount
from ladder.plan import Plan, make_plan, target_entry
from ladder.recipe import budget_label
from ladder.rundir import RunDir, has_runs, ladder_dir
from ladder.tune.grid import TuneOptions, ladder_file, tune_ladder, tune_sizes
from ladder.tune.optimum import LRRule, curve_optimum, fit_rule, lr_cost, nearest_curvature

# grid.json: the multipliers each size's grid holds, and the sides it was widened on, so a re-run resumes it
GRID_STATE = {"grid?": Each([(lambda v: is_number(v) and v > 0, "a positive number")]), "widened?": Each([(lambda v: v in ("low", "high"), "low or high")])}
_DROPPED = ("ladder", "runs_dir", "out", "rungs", "tune", "submit_only")  # what the tune sets itself (and ladder.*)


def run_tune(cfg, overrides: list[str], options: TuneOptions, out: Path, compose) -> dict:
    """tune.json's content (the caller writes it). `compose(overrides)` composes a config, as the CLI does."""
    from ladder.sweep.run import run_sweep
    from ladder.sweep.status import rung_status

    started = time.time()
    plan = make_plan(cfg)
    recipe = OmegaConf.to_container(cfg.recipe, resolve=True)
    ladder = OmegaConf.to_container(cfg.ladder, resolve=True)
    sizes = tune_sizes(plan, options)
    budgets = list(options.budgets or short_budgets(plan, ladder["budgets"]))
    name = f"{plan.ladder}-tune"
    state_path = out / "grid.json"  # the grid as widened so far, so that a re-run resumes it
    state = check_shape(state_path, read_json(state_path), GRID_STATE, f"delete it (the tune starts from "
                        f"tune.lr_multipliers again)") if state_path.exists() else {}
    grid = {size: sorted(set(state.get("grid", {}).get(size, [])) | set(options.lr_multipliers)) for size in sizes}
    widened = {size: list(state.get("widened", {}).get(size, [])) for size in sizes}
    settings = options.settings()
    passthrough = [o for o in overrides if o.split("=", 1)[0].lstrip("+~").split(".")[0] not in _DROPPED]
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    # a tune reads validation losses only: no downstream evals, no budget weights, unless asked for
    passthrough += [o for o in ("eval=[]", "train.save_budget_models=false") if o.split("=")[0] not in keys]
    recipe_choice = next((o.split("=", 1)[1] for o in overrides if o.startswith("recipe=")), str(recipe["name"]))
    runs_dir = out / "runs"
    while True:
        body, runs = tune_ladder(ladder, recipe, sizes, grid, settings, budgets, name)
        atomic_write_text(out / "ladder" / f"{name}.yaml", ladder_file(
            body, target_entry(cfg.target), recipe_choice,
            f"{len(runs)} runs tuning {plan.ladder}'s recipe {recipe['name']} at sizes {', '.join(sizes)}"))
        atomic_write_json(state_path, {"grid": grid, "widened": widened})
        sweep_overrides = [*_with_searchpath(passthrough, out), f"ladder={name}", f"runs_dir={runs_dir}"]
        tune_cfg = compose(sweep_overrides)
        tune_plan = make_plan(tune_cfg)
        require(tune_cfg.recipe.name == recipe["name"], f"recipe={recipe_choice}: its name is "
                                                        f"{tune_cfg.recipe.name!r}; name a recipe file as its file")
        diverged = [r.name for r in tune_plan.rungs if _summary(runs_dir, name, r.name).get("diverged")]
        todo = [r.name for r in tune_plan.rungs if r.name not in diverged]  # a diverged run stays diverged
        print(f"tune: {len(tune_plan.rungs)} runs ({', '.join(sizes)} x LR multipliers {_multipliers(grid)}"
              f"{' x ' + str(len(settings)) + ' settings' if len(settings) > 1 else ''}), "
              f"{len(diverged)} diverged before", flush=True)
        if todo:
            with open_dict(tune_cfg):
                tune_cfg.rungs, tune_cfg.submit_only = todo, bool(cfg.submit_only)
            run_sweep(tune_cfg, sweep_overrides)
        states = {row["name"]: row["state"] for row in rung_status(tune_plan, str(runs_dir))}
        waiting = [run for run in todo if states.get(run) in ("queued", "running", "pending")]
        if cfg.submit_only and waiting:
            return {"submitted": len(waiting), "ladder_file": str(out / "ladder" / f"{name}.yaml")}
        failed = [run for run in todo if states.get(run) != "done"
                  and not _summary(runs_dir, name, run).get("diverged")]
        require(not failed, f"tune: {len(failed)} run(s) did not finish ({', '.join(failed[:3])}); see "
                            f"ladder status ladder={out / 'ladder' / f'{name}.yaml'} runs_dir={runs_dir}, fix, and run "
                            f"the same ladder tune command again")
        rows = run_rows(tune_plan, runs, runs_dir)
        curves = optima(rows, sizes, settings, options)
        grown = _widen(grid, widened, curves, int(options.extend))
        if not grown:
            break
        print(f"an optimum sits at the grid's edge for {', '.join(sorted(grown))}: widening its grid", flush=True)

    best_setting = best_of(curves, settings)
    chosen = [c for c in curves if c["setting"] == best_setting and not c["at_edge"]]
    edges = [c for c in curves if c["setting"] == best_setting and c["at_edge"]]
    short = sorted({r["run"] for r in rows if r["diverged"]})
    require(chosen, f"tune: no curve has an interior optimum ({len(edges)} at the grid's edge after widening "
                    f"{int(options.extend)} time(s); diverged runs: {', '.join(short) or 'none'}); widen "
                    f"tune.lr_multipliers (now {_multipliers(grid)}) or raise tune.extend")
    rule = fit_rule([c["n"] for c in chosen], [c["tokens_per_param"] for c in chosen],
                    [math.log(c["lr"]) for c in chosen], [c["log_lr_se"] for c in chosen], options.rule,
                    float(cfg.ci_level), runs=[c["size"] for c in chosen] if plan.rungs[0].recipe.branches_budgets
                    else None)
    middle = ladder_tokens_per_param(plan)
    return {
        "ladder": plan.ladder, "recipe": str(recipe["name"]), "params_for": plan.params_for.name,
        "sizes": sizes, "budgets": [str(b) for b in budgets], "grid": grid, "settings": settings,
        "best_setting": best_setting, "window": options.window, "noise": options.noise,
        "runs": rows, "curves": curves, "edges": [f"{c['size']} at {c['budget']}" for c in edges],
        "diverged": short, "rule": rule.to_dict(), "tokens_per_param": middle,
        "recipe_lr": rule.recipe_lr(float(recipe["lr"]["ref_params"]), middle),
        "current": current_recipe(plan, rule, [c for c in curves if c["setting"] == best_setting]),
        "cost": {"runs": len({r["run"] for r in rows}), "flops": sum(r.flops for r in tune_plan.rungs),
                 "gpu_hours": sum(tune_plan.gpu_hours(r.spec, r.trained_tokens) for r in tune_plan.rungs),
                 "train_wall_s": sum({r["run"]: r["wall_time_s"] for r in rows}.values()),
                 "tune_wall_s": time.time() - started},
    }


def _summary(runs_dir: Path, ladder: str, rung: str) -> dict:
    return RunDir.of(runs_dir, ladder, rung).summary() or {}


def short_budgets(plan: Plan, budgets: list) -> list:
    """The ladder's budgets up to its middle one (by tokens per parameter): short runs, the LR measured where the
    recipe sets it."""
    size = plan.rungs[0].size
    tokens = {label: t for r in plan.rungs if r.size == size for label, t in r.budgets.items()}
    keep = sorted(tokens, key=tokens.get)[: len(tokens) // 2 + 1]
    return [b for b in budgets if budget_label(b) in keep] or budgets


def _with_searchpath(overrides: list[str], out: Path) -> list[str]:
    """The tune's directory joins any search path already given (a recipe file, say)."""
    own = f"file://{out.resolve()}"
    for i, o in enumerate(overrides):
        if o.startswith("hydra.searchpath="):
            inner = o.split("=", 1)[1].strip("[]")
            return [*overrides[:i], f"hydra.searchpath=[{inner},{own}]", *overrides[i + 1:]]
    return [f"hydra.searchpath=[{own}]", *overrides]


def _multipliers(grid: dict) -> str:
    values = sorted({m for ms in grid.values() for m in ms})
    return "[" + ", ".join(f"{m:g}" for m in values) + "]"


def run_rows(tune_plan: Plan, runs: dict, runs_dir: Path) -> list[dict]:
    """One row per finished (run, budget) and per budget a diverged run never reached (loss None): size, N in the
    recipe's convention, tokens, the LR the run trained with and its loss."""
    directory = ladder_dir(runs_dir, tune_plan.ladder)
    if not has_runs(directory):
        return []
    table = collect_runs(directory)
    by_rung = {r.name: r for r in tune_plan.rungs}
    summaries = {r.name: _summary(runs_dir, tune_plan.ladder, r.name) for r in tune_plan.rungs}  # read once
    rows = []
    for i in range(len(table)):
        rung = by_rung.get(str(table["rung"][i]))
        if rung is None:  # a run of an earlier grid no longer asked for
            continue
        rows.append(_row(rung, runs[rung.size], tune_plan.params_for, str(table["budget"][i]),
                         float(table["tokens"][i]), float(table["loss"][i]), summaries[rung.name],
                         directory))
    for rung in tune_plan.rungs:  # a diverged run: the budgets it never reached count as diverged at this LR
        summary = summaries[rung.name]
        if summary.get("diverged"):
            done = {r["budget"] for r in rows if r["run"] == rung.name}
            rows += [_row(rung, runs[rung.size], tune_plan.params_for, label, float(tokens), None, summary, directory)
                     for label, tokens in rung.budgets.items() if label not in done]
    return rows


def _row(rung, info: dict, params_for: ParamCount, budget: str, tokens: float, loss: float | None, summary: dict,
         directory: Path) -> dict:
    lr = float(summary.get("lr") or rung.recipe.lr)
    require(abs(lr / rung.recipe.lr - 1) < 1e-6,
            f"out={directory.parent.parent}: run {rung.name} there trained with LR {lr:.4g}, not this tune's "
            f"{rung.recipe.lr:.4g} (another recipe or overrides); give another out= or remove that directory")
    n = float(rung.counts.by_convention(params_for))
    return {"run": rung.name, "size": info["size"], "n": n, "budget": budget, "tokens": tokens,
            "tokens_per_param": tokens / n, "lr": lr, "lr_multiplier": info["lr_multiplier"],
            "setting": info["setting"], "batch_tokens": rung.recipe.batch_tokens, "loss": loss,
            "diverged": loss is None, "wall_time_s": float(summary.get("wall_time_s") or 0.0)}


def optima(rows: list[dict], sizes: list[str], settings: list[dict], options: TuneOptions) -> list[dict]:
    """The optimum of every (size, budget, setting) curve with 3 or more finished points."""
    out = []
    for size in sizes:
        for setting in settings:
            mine = [r for r in rows if r["size"] == size and r["setting"] == setting]
            for budget in dict.fromkeys(r["budget"] for r in mine):
                curve = [r for r in mine if r["budget"] == budget]
                if len({r["lr"] for r in curve}) < 3:
                    continue
                losses = [np.inf if r["loss"] is None else r["loss"] for r in curve]
                if sum(np.isfinite(losses)) < 3:
                    continue
                best = curve_optimum([r["lr"] for r in curve], losses, options.window, options.noise)
                lowest = curve[int(np.argmin(losses))]
                out.append({"size": size, "budget": budget, "setting": setting, "n": curve[0]["n"],
                            "tokens": curve[0]["tokens"], "tokens_per_param": curve[0]["tokens_per_param"],
                            "edge_side": ("low" if lowest["lr"] == min(r["lr"] for r in curve) else "high")
                            if best.at_edge else None, "curve": [[r["lr"], r["loss"]] for r in curve],
                            **best.to_dict()})
    return out


def _widen(grid: dict, widened: dict, curves: list[dict], extend: int) -> set[str]:
    """One more multiplier beyond each edge where an optimum sits, at most `extend` times per size and side (the
    count is kept in `widened`); the sizes widened."""
    grown = set()
    for size in grid:
        sides = {c["edge_side"] for c in curves if c["size"] == size and c["edge_side"]}
        for side in sorted(sides):
            if widened[size].count(side) >= extend:
                continue
            values = grid[size]
            step = values[1] / values[0] if side == "low" else values[-1] / values[-2]
            grid[size] = sorted(values + [float(f"{(values[0] / step if side == 'low' else values[-1] * step):.6g}")])
            widened[size].append(side)
            grown.add(size)
    return grown


def best_of(curves: list[dict], settings: list[dict]) -> dict:
    """The setting (batch, warmup, beta2) with the lowest loss at its best LR, averaged over the curves every
    setting has (relative to the best setting of each curve)."""
    if len(settings) == 1:
        return settings[0]
    keys = {(c["size"], c["budget"]) for c in curves}
    scores = {}
    for i, setting in enumerate(settings):
        mine = {(c["size"], c["budget"]): c["loss"] for c in curves if c["setting"] == setting}
        scores[i] = mine
    common = [k for k in keys if all(k in s for s in scores.values())]
    require(common, "tune: no (size, budget) has a curve for every setting; let the sweep finish")
    relative = {i: np.mean([s[k] / min(t[k] for t in scores.values()) for k in common]) for i, s in scores.items()}
    return settings[min(relative, key=relative.get)]


def ladder_tokens_per_param(plan: Plan) -> float:
    """The tokens per parameter the recipe's LR is set for: the geometric middle of the ladder's budgets (a WSD-S
    run uses one LR for all of them)."""
    ratios = [tokens / r.counts.by_convention(plan.params_for) for r in plan.rungs for tokens in r.budgets.values()]
    return float(np.exp(np.mean(np.log(ratios))))


def current_recipe(plan: Plan, rule: LRRule, curves: list[dict]) -> list[dict]:
    """Each ladder rung's LR against the rule's optimum, and the loss that costs by the nearest tuned size's
    curvature (a parabola in log LR)."""
    out = []
    largest = max((c["n"] for c in curves), default=0.0)
    for rung in plan.rungs:
        n = rung.counts.by_convention(plan.params_for)
        m = float(np.exp(np.mean([np.log(t / n) for t in rung.budgets.values()])))
        lr_opt, lo, hi = (float(v) for v in rule.predict(n, m))
        curvature, size = nearest_curvature(curves, n)
        out.append({"rung": rung.name, "n": float(n), "lr": rung.recipe.lr, "lr_opt": lr_opt, "lo": lo, "hi": hi,
                    "ratio": rung.recipe.lr / lr_opt, "inside": bool(lo <= rung.recipe.lr <= hi),
                    "loss_cost": lr_cost(curvature, rung.recipe.lr, lr_opt), "curvature_from": size,
                    "extrapolated": bool(n > largest * 1.01)})
    return out
