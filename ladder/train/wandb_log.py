"""W&B logging that can never stop training: offline by itself without a key or a network, every failure a warning.

The run id comes from the rung's identity hash, so every restart of a rung continues the same W&B run.
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
        except Exception as error:  # noqa: BLE001 - W&B must never stop a rung
            log.warning("W&B disabled for this run: %s", str(error).splitlines()[0] if str(error) else error)
            self.run = None

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
        """The whole summary (for `ladder collect from_wandb=`), each budget's results as flat keys, and a table of
        the budgets, so the run's W&B page reads like its summary.json."""
        def update():
            import wandb
            rows = [[label, r.get("tokens"), r.get("flops"), r.get("loss"), r.get("step")]
                    for label, r in summary["budgets"].items()]
            flat = {f"budget/{label}/{key}": value for label, r in summary["budgets"].items()
                    for key, value in [("loss", r.get("loss")), ("tokens", r.get("tokens")),
                                       *(r.get("eval") or {}).items()] if isinstance(value, (int, float))}
            self.run.summary.update({"ladder/summary": summary, **flat})
            self.run.log({"budgets": wandb.Table(columns=["budget", "tokens", "flops", "loss", "step"], data=rows)})
        self._guard(update)

    def finish(self) -> None:
        self._guard(lambda: self.run.finish())
        self.run = None


def wandb_keys(record: dict) -> dict:
    """A metrics record as W&B keys: a cooldown branch's under branch/<budget>/, a budget's result under
    budget/<budget>/, so the main run's loss chart never mixes with them."""
    numbers = {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    for kind in ("branch", "budget"):
        if kind in record:
            return {f"{kind}/{record[kind]}/{k}": v for k, v in numbers.items() if k != "step"}
    return numbers
