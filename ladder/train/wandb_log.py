"""W&B logging that can never stop training: offline by itself without a key or a network, every failure a warning.

The run id comes from the rung's identity hash, so every restart of a rung continues the same W&B run. Charts plot
against tokens (`define_metric`; `step` is logged too): `train/*` for the main run, `val/loss` and `eval/*` for its
evaluations, `branch/<budget>/*` for a cooldown branch, `budget/<budget>/*` for a budget's result. The summary's
`loss` is the last budget's validation loss.
"""

from __future__ import annotations

import logging
import os

from ladder.net import reachable

log = logging.getLogger("ladder.train")
MODES = ("auto", "online", "offline", "disabled")


def _has_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = os.path.expanduser("~/.netrc")
    return os.path.exists(netrc) and "api.wandb.ai" in open(netrc).read()


def resolve_mode(requested: str) -> str:
    """logger.wandb=disabled always wins; otherwise WANDB_MODE=offline|disabled overrides the config."""
    if requested == "disabled":
        return "disabled"
    env = os.environ.get("WANDB_MODE")
    if env in ("offline", "disabled", "dryrun"):
        return "offline" if env == "dryrun" else env
    if requested != "auto":
        return requested
    return "online" if _has_key() and reachable("api.wandb.ai") else "offline"


class WandbLogger:
    def __init__(self, mode: str, run_id: str, project: str, entity: str | None, group: str, name: str,
                 config: dict, directory: str):
        self.run, self.mode = None, resolve_mode(mode)
        if self.mode == "disabled":
            return
        try:
            import wandb
            self.run = wandb.init(id=run_id, resume="allow", project=project, entity=entity, group=group, name=name,
                                  config=config, dir=directory, mode=self.mode,
                                  settings=wandb.Settings(init_timeout=60, silent=True, console="off"))
            self.run.define_metric("tokens")
            self.run.define_metric("step")
            for series in SERIES:
                self.run.define_metric(f"{series}/*", step_metric="tokens")
        except Exception as error:  # noqa: BLE001 - W&B must never stop a rung
            log.warning("W&B disabled for this run: %s", str(error).splitlines()[0] if str(error) else error)
            self.run = None

    @classmethod
    def of_rung(cls, cfg, ladder: str, rung, identity: str, directory) -> "WandbLogger":
        """A rung's run: its id from the rung's identity (so a restart continues it), grouped by ladder, named by
        rung, configured with the rung's own settings."""
        from ladder.plan import plan_to_dict_for

        lcfg = cfg.logger
        return cls(str(lcfg.wandb), f"{ladder}-{rung.name}-{identity[:8]}"[:64], str(lcfg.project), lcfg.entity,
                   ladder, rung.name, wandb_config(cfg, plan_to_dict_for(rung), rung.counts.to_dict()),
                   str(directory))

    @property
    def id(self) -> str | None:
        return self.run.id if self.run is not None else None

    def _guard(self, action, *args):
        if self.run is None:
            return
        try:
            action(*args)
        except Exception as error:  # noqa: BLE001
            log.warning("W&B failed (%s); continuing without it", str(error).splitlines()[0] if str(error) else error)
            self.run = None

    def log(self, record: dict, step: int) -> None:
        self._guard(lambda: self.run.log(wandb_keys(record), step=step))

    def summary(self, summary: dict) -> None:
        """The whole summary (for `ladder collect from_wandb=`), each budget's results under the names its series
        has, `loss` the last finished budget's, and a table of the budgets: the run's page reads like summary.json."""
        def update():
            import wandb
            rows = [[label, r.get("tokens"), r.get("flops"), r.get("loss"), r.get("step")]
                    for label, r in summary["budgets"].items()]
            results = {}
            for label, r in summary["budgets"].items():
                if r.get("loss") is not None:
                    results.update(wandb_keys({"budget": label, "tokens": r.get("tokens"), "val_loss": r["loss"],
                                               **{f"eval/{k}": v for k, v in (r.get("eval") or {}).items()}}))
            finished = [r["loss"] for r in summary["budgets"].values() if r.get("loss") is not None]
            results.pop("tokens", None)
            self.run.summary.update({"ladder/summary": summary, **results,
                                     **({"loss": finished[-1]} if finished else {})})
            self.run.log({"budgets": wandb.Table(columns=["budget", "tokens", "flops", "loss", "step"], data=rows)})
        self._guard(update)

    def finish(self) -> None:
        self._guard(lambda: self.run.finish())
        self.run = None


SERIES = ("train", "val", "eval", "branch", "budget")
AXES = ("step", "tokens")


def wandb_keys(record: dict) -> dict:
    """A metrics record as W&B keys, one name per value: a main-run step's under train/, an evaluation's as
    val/loss and eval/<entry>/<metric>, a cooldown branch's under branch/<budget>/, a budget's result under
    budget/<budget>/ (val_loss and its evals); step and tokens, the charts' axes, as they are."""
    numbers = {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    axes = {k: numbers.pop(k) for k in AXES if k in numbers}
    if "budget" in record:
        prefix = f"budget/{record['budget']}/"
        return {**axes, **{prefix + k.removeprefix("eval/"): v for k, v in numbers.items()}}
    if "branch" in record:
        return {**axes, **{f"branch/{record['branch']}/{k}": v for k, v in numbers.items()}}
    if "val_loss" in numbers:
        return {**axes, "val/loss": numbers.pop("val_loss"),
                **{k if k.startswith("eval/") else f"val/{k}": v for k, v in numbers.items()}}
    return {**axes, **{f"train/{k}": v for k, v in numbers.items()}}


def wandb_config(cfg, resolved_rung: dict, counts: dict) -> dict:
    """What a rung's W&B run is configured with: its own settings (the resolved rung: shape, recipe, budgets,
    seed; its parameter counts; the data, train, eval and FLOPs settings), not the fit, design or demo sections."""
    from omegaconf import OmegaConf

    def plain(key):
        return OmegaConf.to_container(cfg[key], resolve=True) if cfg.get(key) is not None else None
    return {"ladder": str(cfg.ladder.name), "rung": resolved_rung, "params": counts,
            "flops_convention": str(cfg.flops_convention), "data": plain("data"), "train": plain("train"),
            "eval": sorted(plain("eval") or {}), "runs_dir": str(cfg.runs_dir)}
