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
        self._guard(lambda: self.run.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=step))

    def summary(self, summary: dict) -> None:
        self._guard(lambda: self.run.summary.update({"ladder/summary": summary}))

    def finish(self) -> None:
        self._guard(lambda: self.run.finish())
        self.run = None
