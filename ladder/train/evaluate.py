"""`ladder eval rung=NAME [budget=LABEL] eval=[...]`: score a finished rung's budget weights with the selected evals,
for rungs trained before a task was added. Results merge into summary.json (the budget's `eval` mapping, which
`ladder collect` reads), are appended to metrics.jsonl and update the rung's W&B summary.
"""

from __future__ import annotations

import time

from omegaconf import OmegaConf

from ladder.data import TokenData, on_cluster, open_data
from ladder.errors import LadderError, require
from ladder.model.build import build_model
from ladder.plan import Plan
from ladder.report import format_table
from ladder.train.checkpoint import Checkpoints, load_verified
from ladder.distributed import Dist
from ladder.device import autocast_for, pick_device
from ladder.evals.suite import make_suite
from ladder.rundir import MetricsLog, RunDir
from ladder.train.wandb_log import WandbLogger


def budget_weights(run: RunDir, label: str, result: dict) -> dict:
    """The model at the end of a budget: its saved weights, or (a single-budget schedule) the final checkpoint."""
    path = run.budget_model(label)
    if path.exists():
        return load_verified(path)["model"]
    if "fork_step" not in result:  # no cooldown branch: the run's last checkpoint is this budget's model
        state = Checkpoints(run.checkpoints).load_latest()
        if state is not None and state["progress"]["step"] == result.get("step"):
            return state["model"]
    raise LadderError(f"{path}: no saved weights for budget {label} (trained with train.save_budget_models=false "
                      f"or before ladder kept them); retrain the rung to evaluate it")


def finished_rung(cfg, plan: Plan):
    """(rung, run directory, summary, finished budget labels) of `rung=NAME` in `plan`, refused in one line when it
    has not been trained."""
    rung = plan.rung(cfg.rung)
    run = RunDir.of(cfg.runs_dir, plan.ladder, rung.name)
    summary = run.summary()
    require(summary is not None, f"{run.path}: no summary.json; train the rung first (ladder train rung={rung.name})")
    finished = [label for label, r in summary["budgets"].items() if r.get("loss") is not None]
    return rung, run, summary, finished


def eval_rung(cfg, plan: Plan) -> int:
    rung, run, summary, finished = finished_rung(cfg, plan)
    with run.lock():  # never beside a trainer of the rung: both rewrite its summary.json
        return evaluate_budgets(cfg, plan, rung, run, run.summary(), finished)


def evaluate_budgets(cfg, plan, rung, run: RunDir, summary: dict, finished: list[str]) -> int:
    labels = [str(cfg.budget)] if cfg.get("budget") else finished
    for label in labels:
        require(label in finished, f"budget={label}: not a finished budget of {rung.name}; use one of "
                                   f"{', '.join(finished) or '(none yet)'}")
    data = TokenData(open_data(OmegaConf.to_container(cfg.data, resolve=True), plan.data_tokens,
                               may_prepare=not on_cluster()), verify=cfg.data.verify)
    require(data.fingerprint == summary.get("data_fingerprint"),
            f"data: differs from the data {rung.name} was trained on (fingerprint {data.fingerprint[:12]} != "
            f"{str(summary.get('data_fingerprint'))[:12]}); pass the same data.* overrides as its training")
    suite = make_suite(cfg, data, rung.spec.seq_len)
    require(suite, "eval: nothing selected; choose tasks or corpora, e.g. eval=[hellaswag,arc_easy] (conf/eval/)")
    device = pick_device(str(cfg.train.device))
    autocast = autocast_for(device, str(cfg.train.dtype))
    model = build_model(rung.spec, seed=rung.seed).to(device).eval()
    batch = rung.recipe.micro_batch_sequences
    metrics = MetricsLog(run.metrics_path)
    rows = []
    try:
        for label in labels:
            model.load_state_dict(budget_weights(run, label, summary["budgets"][label]))
            started = time.time()
            results = suite.run(model, batch, device, autocast, Dist())
            result = summary["budgets"][label]
            result["eval"] = {**(result.get("eval") or {}), **results}
            metrics.write({"budget": label, "step": result.get("step"), "tokens": result["tokens"],
                           "flops": result["flops"], **{f"eval/{k}": v for k, v in results.items()},
                           "eval_s": round(time.time() - started, 3), "source": "ladder eval"})
            run.write_summary(summary)  # after each budget: an interrupted eval keeps what it finished
            rows += [[label, name, f"{value:.4g}"] for name, value in results.items()]
    finally:
        metrics.close()
    if summary.get("wandb_id"):
        logger = WandbLogger(str(cfg.logger.wandb), summary["wandb_id"], str(cfg.logger.project), cfg.logger.entity,
                             plan.ladder, rung.name, {}, str(run.path))
        logger.summary(summary)
        logger.finish()
    print(format_table(["budget", "metric", "value"], rows))
    print(f"\nwrote {run.summary_path} and {run.metrics_path}")
    return 0
