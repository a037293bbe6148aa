"""What `ladder tune` prints and writes: the optima table, the rule beside the published ones, the current recipe's
distance from it; recipe/NAME.yaml, report.md and two plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from ladder.io import atomic_write_text
from ladder.report import format_table, human
from ladder.tune.optimum import PUBLISHED_RULES, LRRule, quantile


def recipe_yaml(result: dict, recipe: dict, name: str, command: str) -> str:
    """A complete recipe (conf/recipe form) with the tuned LR rule and the best setting; `ladder plan` and
    `ladder sweep` take it as `recipe=PATH`."""
    body = {k: v for k, v in recipe.items() if k != "defaults"}
    body["name"] = name
    body["lr"] = result["recipe_lr"]
    for key, value in result["best_setting"].items():
        if key == "batch_multipliers":
            body["batch"] = {**body["batch"], "base_sequences": float(f"{body['batch']['base_sequences'] * value:.4g}")}
        elif key == "warmup_multipliers":
            body["warmup_tokens_per_param"] = float(f"{body['warmup_tokens_per_param'] * value:.4g}")
        elif key == "beta2":
            body["beta2"] = value
    rule = result["rule"]
    interval = rule["intervals"]["size_exponent"]
    head = [f"# Written by `ladder tune`: {result['cost']['runs']} runs of {result['ladder']}'s recipe "
            f"{result['recipe']} at sizes {', '.join(result['sizes'])}",
            f"# ({result['cost']['gpu_hours']:.3g} GPU-h estimated, {result['cost']['train_wall_s']:.0f} s of "
            f"training here). LR_opt ~ N^{rule['coef'][1]:.3f} ({rule['level']:.0%} interval "
            f"[{interval[0]:.3f}, {interval[1]:.3f}])"
            + (f" x (tokens/param)^{rule['coef'][2]:.3f}" if rule["form"] == "N,D" else "") + ",",
            f"# set at {result['tokens_per_param']:.3g} tokens per {result['params_for']} parameter (the middle of "
            f"the ladder's budgets).",
            f"# From: ladder tune {command}".rstrip()]
    return "\n".join(head) + "\n" + yaml.safe_dump(body, sort_keys=False)


def _interval(curve: dict, level: float) -> tuple[float, float]:
    """A curve's optimum interval: t with its residual degrees of freedom, normal when one run's noise set it."""
    z = quantile(level, int(curve.get("dof") or 0)) * curve["log_lr_se"]
    return curve["lr"] * np.exp(-z), curve["lr"] * np.exp(z)


def format_tune(result: dict) -> str:
    rule = LRRule.from_dict(result["rule"])
    level = rule.level
    rows = [[c["size"], c["budget"], _setting(c["setting"]), human(c["n"]), f"{c['lr']:.3g}",
             "[{:.3g}, {:.3g}]".format(*_interval(c, level)),
             f"{c['loss']:.4f}", "at edge" if c["at_edge"] else str(c["points"])] for c in result["curves"]]
    intervals = rule.coef_interval()
    lines = [format_table(["size", "budget", "setting", "N", "LR opt", f"{level:.0%}", "loss", "points"], rows), "",
             f"rule: LR_opt = {np.exp(rule.coef[0]):.3g} (N/{human(rule.n_ref)})^{rule.coef[1]:.3f}"
             + (f" (m/{rule.m_ref:.3g})^{rule.coef[2]:.3f}, m = tokens per parameter" if rule.form == "N,D" else "")
             + f"; size exponent {rule.level:.0%} [{intervals['size_exponent'][0]:.3f}, "
               f"{intervals['size_exponent'][1]:.3f}] (N: {result['params_for']} parameters)",
             f"recipe: lr = {result['recipe_lr']['base']:.4g} (N/{human(result['recipe_lr']['ref_params'])})^"
             f"{result['recipe_lr']['exponent']:.4g} at {result['tokens_per_param']:.3g} tokens per parameter"
             + (f"; best setting {_setting(result['best_setting'])}" if result["best_setting"] else "")]
    if result["rule"].get("note"):
        lines.append(f"note: {result['rule']['note']}")
    if result["edges"]:
        lines.append(f"left out (optimum beyond the grid): {', '.join(result['edges'])}")
    current = [[c["rung"], human(c["n"]), f"{c['lr']:.3g}", f"{c['lr_opt']:.3g}", f"[{c['lo']:.3g}, {c['hi']:.3g}]",
                f"{c['ratio']:.2f}x", f"{c['loss_cost']:+.2%}" + (" (extrap.)" if c["extrapolated"] else "")]
               for c in result["current"]]
    lines += ["", f"the ladder's current recipe ({result['recipe']}) against the rule:",
              format_table(["rung", "N", "LR now", "LR opt", f"{level:.0%}", "now/opt", "loss cost"], current)]
    return "\n".join(lines)


def _setting(setting: dict) -> str:
    names = {"batch_multipliers": "batch", "warmup_multipliers": "warmup", "beta2": "beta2"}
    return ", ".join(f"{names[k]} {'x' if k != 'beta2' else ''}{v:g}" for k, v in setting.items()) or "-"


def write_report(result: dict, out: Path) -> list[str]:
    plots = [plot_curves(result, out / "plots" / "lr_curves.png"), plot_rule(result, out / "plots" / "lr_rule.png")]
    text = ["# ladder tune: " + result["ladder"], "", "```", format_tune(result), "```", "",
            *[f"![{p.stem}](plots/{p.name})" for p in plots], "",
            f"Cost: {result['cost']['runs']} runs, {result['cost']['flops']:.3g} FLOPs, "
            f"{result['cost']['gpu_hours']:.3g} GPU-h estimated, {result['cost']['tune_wall_s']:.0f} s wall here."]
    atomic_write_text(out / "report.md", "\n".join(text) + "\n")
    return [str(out / "report.md"), *map(str, plots)]


def plot_curves(result: dict, path: Path) -> Path:
    """Loss against LR, one panel per budget, one colour per size; the parabola used and its minimum."""
    import matplotlib.pyplot as plt

    from ladder.fit.plots import plain_log_axis, save

    budgets = list(dict.fromkeys(c["budget"] for c in result["curves"]))
    level = result["rule"]["level"]
    fig, axes = plt.subplots(1, len(budgets), figsize=(4.2 * len(budgets), 3.6), squeeze=False, sharey=False)
    sizes = list(dict.fromkeys(c["size"] for c in result["curves"]))
    colours = dict(zip(sizes, plt.cm.viridis(np.linspace(0, 0.85, len(sizes)))))
    for ax, budget in zip(axes[0], budgets):
        for c in (c for c in result["curves"] if c["budget"] == budget and c["setting"] == result["best_setting"]):
            lrs, losses = np.array([p for p in c["curve"] if p[1] is not None], float).T
            order = np.argsort(lrs)
            ax.plot(lrs[order], losses[order], "o-", color=colours[c["size"]], lw=1, ms=4,
                    label=f"{c['size']} (N={human(c['n'])})")
            if not c["at_edge"]:
                ax.plot([c["lr"]], [c["loss"]], "*", color=colours[c["size"]], ms=12, mec="k", mew=0.5)
                lo, hi = _interval(c, level)
                ax.plot([lo, hi], [c["loss"]] * 2, color=colours[c["size"]], lw=3, alpha=0.5)
        ax.plot([], [], "*", color="grey", ms=10, label=f"optimum (parabola) and {level:.0%}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_axis(ax)
        ax.set_title(f"budget {budget}")
        ax.set_xlabel("peak learning rate")
        ax.set_ylabel("validation loss (nats/token)")
    axes[0][0].legend(fontsize=7)
    return save(fig, path)


def plot_rule(result: dict, path: Path) -> Path:
    """LR_opt against N: the optima, the fitted rule with its band, the ladder's current LRs, published rules."""
    import matplotlib.pyplot as plt

    from ladder.fit.plots import plain_log_axis, save

    rule = LRRule.from_dict(result["rule"])
    m = result["tokens_per_param"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    chosen = [c for c in result["curves"] if c["setting"] == result["best_setting"] and not c["at_edge"]]
    for budget in dict.fromkeys(c["budget"] for c in chosen):
        mine = [c for c in chosen if c["budget"] == budget]
        n = np.array([c["n"] for c in mine])
        lr = np.array([c["lr"] for c in mine])
        lo, hi = np.array([_interval(c, rule.level) for c in mine]).T
        ax.errorbar(n, lr, yerr=[lr - lo, hi - lr], fmt="o", ms=4,
                    capsize=2, label=f"optimum at {budget}")
    current = result["current"]
    n_all = np.array([c["n"] for c in current] + [c["n"] for c in chosen])
    grid = np.geomspace(n_all.min() / 1.5, n_all.max() * 1.5, 50)
    value, lo, hi = rule.predict(grid, m)
    ax.plot(grid, value, "k-", label=f"fitted rule at {m:.3g} tokens/param")
    ax.fill_between(grid, lo, hi, color="k", alpha=0.12, label=f"{rule.level:.0%} interval")
    ax.plot([c["n"] for c in current], [c["lr"] for c in current], "s--", color="tab:red", ms=4, lw=1,
            label=f"current recipe ({result['recipe']}), ladder rungs")
    for key, (label, law) in PUBLISHED_RULES.items():
        ax.plot(grid, law(grid, grid * m), ":", lw=1.2, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_axis(ax)
    ax.set_xlabel(f"parameters N ({result['params_for']} count; published rules in their own counts)")
    ax.set_ylabel("optimal peak learning rate")
    ax.legend(fontsize=7)
    return save(fig, path)
