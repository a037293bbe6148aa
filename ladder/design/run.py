"""`ladder design` end to end: prior -> candidates -> simulated errors -> frontier -> choice, checked afresh -> files."""

from __future__ import annotations

import re
import time
from pathlib import Path

from ladder.design.prior import load_prior
from ladder.design.report import candidate_dict, candidate_row, format_design, ladder_yaml, write_report
from ladder.design.search import (DesignOptions, candidate_ladders, choose, frontier, score_candidates,
                                  target_end_schedule)
from ladder.fit.calibrate import IntervalOptions
from ladder.io import atomic_write_json, atomic_write_text
from ladder.report import human


def run_design(cfgs: dict, options: DesignOptions, level: float, out: Path | None = None,
               interval: IntervalOptions | None = None, command: str = "", target_cfg=None) -> dict:
    """design.json's content; writes it, report.md, frontier.png and (when the goal is met) ladder/NAME.yaml under
    `out`. `cfgs` maps each recipe to compare to the config composed with it; `interval` is the interval group
    `ladder fit` would use; `command` is recorded in the YAML; `target_cfg` is the config whose `recipe` group the
    target run trains under, whichever recipe the ladder's rungs use (a curve-law prior forecasts the target's end
    under it; default: the first of `cfgs`)."""
    started = time.time()
    prior = load_prior(options.prior).with_errors(options.noise, options.kappa)
    curves = prior.law == "curve"  # every evaluation of every run, fitted by the curve law
    candidates = candidate_ladders(cfgs, options, every_evaluation=curves)
    target_cfg = target_cfg if target_cfg is not None else next(iter(cfgs.values()))
    target_end = target_end_schedule(target_cfg, candidates[0].plan) if curves else None
    score_candidates(candidates, prior, options, level, interval, target_end=target_end)
    front = frontier(candidates)
    chosen, affordable = choose(candidates, options)
    target = candidates[0].plan.target
    first = next(iter(cfgs.values()))
    name = options.name or re.sub(r"[^a-z0-9_.-]+", "-", f"design-{target.name}".lower())
    out = Path(out) if out else Path("designs") / name
    result = {
        "target": f"{target.name} ({human(target.counts.by_convention(options.params))} {options.params.name} params, "
                  f"{human(target.tokens)} tokens, {target.flops:.3g} FLOPs)",
        "goal": options.error, "level": level, "n_candidates": len(candidates), "sims": options.sims,
        "law": prior.law,
        "prior": {"source": prior.source, **prior.readable(), "noise_sd": prior.noise_sd, "kappa": prior.kappa,
                  **({"run_share": prior.run_share} if prior.run_share is not None else {})},
        # a curve-law prior's evaluations share the noise its fit measured (run_share), not design.branch_correlation
        "branch_correlation": None if curves else options.branch_correlation,
        "params_convention": options.params.name,
        "hardware": f"{first.hardware.gpu} at {float(first.hardware.mfu):.0%} MFU",
        "max_gpu_hours": options.max_gpu_hours, "max_params": options.max_params,
        "candidates": [candidate_dict(c) for c in sorted(candidates, key=lambda c: c.gpu_hours)],
        "frontier": [candidate_dict(c) for c in front], "frontier_rows": [candidate_row(c) for c in front]}
    if chosen is not None:
        # A fresh set of simulations, apart from the ones the choice was made on: does it still meet the goal?
        result["chosen"] = candidate_dict(chosen)
        result["check"] = score_candidates([chosen], prior, options, level, interval, seed=options.seed + 1,
                                           sims=options.check_sims, target_end=target_end)[0]
        result["ladder_yaml"] = str(out / "ladder" / f"{name}.yaml")
        atomic_write_text(out / "ladder" / f"{name}.yaml",
                          ladder_yaml(chosen, name, cfgs[chosen.recipe], options, prior, level, command))
    elif not affordable:
        cheapest = min(candidates, key=lambda c: c.gpu_hours)
        result["infeasible"] = (f"design.max_gpu_hours={options.max_gpu_hours:g}: no candidate ladder costs so "
                                f"little; the cheapest is {cheapest.name} at {cheapest.gpu_hours:.3g} GPU-h; raise "
                                f"design.max_gpu_hours or lower design.largest")
        result["best"] = candidate_dict(cheapest)
    else:
        best = min(affordable, key=lambda c: c.score["error_upper"])
        within = (f"within design.max_gpu_hours={options.max_gpu_hours:g}" if options.max_gpu_hours
                  else "among the candidates")
        result["infeasible"] = (f"design.error={options.error:g}: no ladder {within} reaches it; the best "
                                f"achievable is {best.score['error']:.2%} (90% upper bound "
                                f"{best.score['error_upper']:.2%}: {best.name}, {best.gpu_hours:.3g} GPU-h); relax "
                                f"design.error, raise design.max_gpu_hours or design.max_params, or give a prior with "
                                f"less extrapolation error (design.prior=fit.json)")
        result["best"] = candidate_dict(best)
    result["seconds"] = time.time() - started
    result["files"] = [str(p) for p in write_report(out, result, candidates, front, chosen, options.error)]
    result["files"].append(str(out / "design.json"))
    atomic_write_json(out / "design.json", result)
    return result


__all__ = ["format_design", "run_design"]
