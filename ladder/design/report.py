"""What `ladder design` prints and writes: the frontier table, the chosen ladder as a ladder YAML, a plot, a report."""

from __future__ import annotations

from pathlib import Path

import yaml

from ladder.design.prior import LawPrior
from ladder.design.search import Candidate, DesignOptions
from ladder.io import atomic_write_text
from ladder.plan import target_entry
from ladder.report import format_table

HEADER = ["ladder", "rungs", "GPU-h", "% target FLOPs", "error (q)", "median |err|", "interval width", "e-folds out"]


LAW_WORDS = {"chinchilla": "law: chinchilla, fitted to each run's final losses",
             "curve": "law: curve, fitted to every evaluation of every run (law=curve)"}


REACH_WORDS = {"chinchilla": "N and D", "curve": "N and schedule area (lr_area_tokens)"}


def noise_words(result: dict) -> str:
    noise = f"{result['prior']['noise_sd']:.2%}"
    if result.get("law") == "curve":
        return (f"each evaluation of each run with noise ({noise}, of which a run's evaluations share "
                f"{result['prior']['run_share']:.0%} of the variance)")
    return (f"each rung's loss with run-to-run noise ({noise}; budgets of one WSD-S run correlated "
            f"{result['branch_correlation']:.2f})")


def candidate_row(c: Candidate) -> list[str]:
    s = c.score
    return [c.name, str(len(c.plan.rungs)), f"{c.gpu_hours:.3g}", f"{100 * c.cost_fraction:.3g}%",
            f"{s['error']:.2%}", f"{s['median_error']:.2%}", f"{s['width']:.1%}", f"{s['distance_efolds']:.2f}"]


def candidate_dict(c: Candidate) -> dict:
    return {"name": c.name, "recipe": c.recipe, "sizes": c.sizes, "budgets": c.budgets, "seeds": c.seeds,
            "rungs": len(c.plan.rungs), "gpu_hours": c.gpu_hours, "cost_fraction": c.cost_fraction,
            "largest_params": c.largest_params, **c.score}


def ladder_yaml(chosen: Candidate, name: str, cfg, options: DesignOptions, prior: LawPrior, level: float,
                command: str = "") -> str:
    """A conf/ladder file: `ladder plan ladder=PATH` and `ladder sweep ladder=PATH` take it as is."""
    lad = cfg.ladder
    body = {"ladder": {"name": name, "vocab_size": int(lad.vocab_size), "seq_len": int(lad.seq_len),
                       "tie_embeddings": bool(lad.tie_embeddings), "sizes": chosen.sizes,
                       "params_convention": str(lad.params_convention),
                       "budgets": list(chosen.budgets), "seeds": list(chosen.seeds),
                       "shape_rule": dict(lad.get("shape_rule") or {})},
            "target": target_entry(cfg.target)}
    defaults = {"defaults": [{"override /recipe": chosen.recipe}]}
    s = chosen.score
    head = ["# @package _global_",
            f"# Written by `ladder design`: the cheapest candidate whose {level:.0%} quantile of |error| of the loss "
            f"forecast at the target",
            f"# meets design.error={options.error:g}: expected {s['error']:.2%} (90% upper bound "
            f"{s['error_upper']:.2%}), median {s['median_error']:.2%}, interval width {s['width']:.1%};",
            f"# {chosen.gpu_hours:.3g} GPU-h, {chosen.cost_fraction:.3%} of the target's FLOPs. Prior: {prior.source}, "
            f"noise {prior.noise_sd:.2%}, extrapolation {prior.kappa:.2%}/e-fold.",
            f"# From: ladder design {command}".rstrip(),
            f"# Costed with hardware.gpu={cfg.hardware.gpu} hardware.mfu={cfg.hardware.mfu} "
            f"flops_convention={cfg.flops_convention}; those and any recipe.* overrides above are not part of a "
            f"ladder file: give them to ladder plan and ladder sweep too."]
    return "\n".join(head) + "\n" + yaml.safe_dump(defaults, sort_keys=False) + yaml.safe_dump(body, sort_keys=False)


def format_design(result: dict) -> str:
    """The frontier table, then the choice (or why there is none) and the check in fresh simulations."""
    lines = [f"design for {result['target']}: goal |error| <= {result['goal']:.2%} at {result['level']:.0%} "
             f"(loss forecast vs one run at the target); {result['n_candidates']} candidate ladders x "
             f"{result['sims']} simulations in {result['seconds']:.1f} s",
             f"{LAW_WORDS[result.get('law', 'chinchilla')]}; "
             f"prior: {result['prior']['source']}; noise {result['prior']['noise_sd']:.2%}, extrapolation "
             f"{result['prior']['kappa']:.2%} per e-fold; GPU-hours on {result['hardware']}", "",
             "frontier (no cheaper ladder has a smaller expected error):",
             format_table(HEADER, result["frontier_rows"])]
    chosen = result.get("chosen")
    if chosen:
        check = result["check"]
        lines += ["", f"chosen: {chosen['name']}: {chosen['gpu_hours']:.3g} GPU-h ({chosen['cost_fraction']:.3%} of "
                      f"the target's FLOPs), expected error {chosen['error']:.2%} (90% upper bound "
                      f"{chosen['error_upper']:.2%})",
                  f"  in {check['sims']} fresh simulations: error {check['error']:.2%}, median {check['median_error']:.2%},"
                  f" interval width {check['width']:.1%}, coverage {check['coverage']:.0%}",
                  f"  wrote {result['ladder_yaml']}: ladder plan ladder={result['ladder_yaml']}"]
    else:
        lines += ["", result["infeasible"]]
    return "\n".join(lines)


def write_report(out: Path, result: dict, candidates: list[Candidate], frontier: list[Candidate],
                 chosen: Candidate | None, goal: float) -> list[Path]:
    """report.md and frontier.png under `out`."""
    plot = plot_frontier(out / "frontier.png", candidates, frontier, chosen, goal, result["level"])
    lines = ["# Ladder design", "", "```", format_design(result), "```", "", "![cost against expected error](frontier.png)",
             "", "## How the error is expected",
             f"Each candidate is simulated {result['sims']} times: a true law drawn from the prior, "
             f"{noise_words(result)}, fitted as `ladder fit` fits it, and the forecast scored against "
             f"one run at the target, whose loss departs from the law by {result['prior']['kappa']:.2%} per e-fold "
             f"beyond the candidate's largest {REACH_WORDS[result.get('law', 'chinchilla')]}. `error (q)` is the "
             f"{result['level']:.0%} quantile of |error|; "
             f"the interval width is that of the predictive interval `ladder fit` would report.", "",
             "## Every candidate", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(candidate_row_cells) + " |"
              for candidate_row_cells in (candidate_row(c) for c in sorted(candidates, key=lambda c: c.gpu_hours))]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return [out / "report.md", plot]


def plot_frontier(path: Path, candidates, frontier, chosen, goal: float, level: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ladder.fit.plots import plain_log_axis, save

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([c.gpu_hours for c in candidates], [100 * c.score["error"] for c in candidates], s=14, color="0.7",
               label="candidate ladders")
    ax.plot([c.gpu_hours for c in frontier], [100 * c.score["error"] for c in frontier], "o-", color="C0", ms=4,
            label="frontier")
    ax.axhline(100 * goal, color="C3", ls="--", lw=1, label=f"goal ({goal:.1%})")
    if chosen is not None:
        ax.scatter([chosen.gpu_hours], [100 * chosen.score["error"]], marker="*", s=180, color="C1", zorder=5,
                   label=f"chosen: {chosen.name}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_axis(ax)
    ax.set_xlabel("ladder cost (GPU-hours)")
    ax.set_ylabel(f"expected {level:.0%} quantile of the loss forecast's |error| (%)")
    ax.legend(fontsize=7)
    return save(fig, path)
