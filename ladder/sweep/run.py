"""`ladder sweep`: every rung that is not done, as a Hydra multirun through the chosen launcher.

Finished rungs are skipped, queued or running ones left alone, partial ones resume (train does that). Rungs are
grouped by the resources the plan gives them (GPUs, time, CPUs), one multirun per group.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from ladder.errors import require
from ladder.plan import Plan, Rung, make_plan, with_corpus
from ladder.rundir import JobRecords, RunBusy, sweep_dir
from ladder.train.options import check_train_options
from ladder.sweep.status import SLURM_WAITING, format_status, rung_status, scheduler_states

SUBMITIT = {"slurm", "local", "submitit_slurm", "submitit_local"}


def launcher_of(overrides: list[str]) -> str:
    for o in overrides:
        if o.startswith("hydra/launcher="):
            return o.split("=", 1)[1]
    return "basic"


def resources(rung: Rung, plan: Plan, cfg, launcher: str) -> dict:
    """What one rung asks of the scheduler. GPU rungs: enough GPUs (a power of two, at most a node's) to finish in
    about `sweep.target_hours`, and a time limit of 1.5x the estimate plus 15 minutes. CPU rungs: `sweep.cpus`."""
    scfg = cfg.sweep
    if str(cfg.train.device) == "cpu" or launcher in ("local", "submitit_local"):
        from ladder.hardware import owned_cpus
        cpus = int(scfg.cpus) if scfg.cpus else max(1, owned_cpus() // max(1, int(scfg.parallel)))
        return {"gpus_per_node": 0, "tasks_per_node": 1, "cpus_per_task": cpus,
                "timeout_min": int(scfg.cpu_timeout_min)}
    gpu_hours = plan.gpu_hours(rung.spec, rung.tokens)
    gpus = 1
    while gpus < int(scfg.max_gpus_per_node) and gpu_hours / gpus > float(scfg.target_hours):
        gpus *= 2
    timeout = int(math.ceil(gpu_hours / gpus * 60 * 1.5)) + 15
    return {"gpus_per_node": gpus, "tasks_per_node": gpus, "cpus_per_task": int(scfg.cpus_per_gpu),
            "timeout_min": min(timeout, int(scfg.max_timeout_min))}


def check_slurm(cfg, overrides: list[str], wanted: dict, cpus_from: str = "sweep.cpus or sweep.cpus_per_gpu") -> None:
    """Refuse, before submitting, what the partition cannot give."""
    require(shutil.which("sinfo") is not None, "hydra/launcher=slurm: sinfo not found; run on a Slurm login node "
                                               "(or bring one up: sudo bash scripts/slurm_local.sh)")
    partition = next((o.split("=", 1)[1] for o in overrides if o.startswith("hydra.launcher.partition=")), None)
    args = ["sinfo", "-h", "-o", "%c %G"] + (["-p", partition] if partition else [])
    out = subprocess.run(args, capture_output=True, text=True).stdout.split("\n")
    require(any(line.strip() for line in out), f"hydra.launcher.partition={partition}: no such partition "
                                               f"(see sinfo)")
    cpus = max(int(line.split()[0].rstrip("+")) for line in out if line.strip())
    gpus = max((int(g.split(":")[-1].split("(")[0]) for line in out if line.strip() for g in line.split()[1].split(",")
                if g.startswith("gpu")), default=0)
    where = f"partition {partition}" if partition else "the default partition"
    require(wanted["gpus_per_node"] <= gpus, f"hydra.launcher.gpus_per_node={wanted['gpus_per_node']}: {where} has "
                                             f"{gpus} GPUs per node; lower it or set sweep.max_gpus_per_node")
    need = wanted["cpus_per_task"] * wanted["tasks_per_node"]
    require(need <= cpus, f"hydra.launcher.cpus_per_task={wanted['cpus_per_task']}: {where} has {cpus} CPUs per "
                          f"node; lower {cpus_from}")


def sweep_task(cfg) -> int:
    """One rung inside a Hydra job. Raises when the rung did not finish, so the scheduler records a failure."""
    from ladder.config import configure_logging
    from ladder.train.loop import EXIT_INTERRUPTED, train_rung
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "RANK" not in os.environ:
        import submitit
        submitit.helpers.TorchDistributedEnvironment().export()  # srun tasks -> torch.distributed ranks
    configure_logging("train")
    plan = make_plan(cfg)  # the job is a process of its own: its plan, made once
    try:
        code = train_rung(cfg, plan, plan.rung(cfg.rung))
    except RunBusy as busy:  # another sweep (or `ladder train`) trains it: that process's rung, no failure of ours
        print(f"{cfg.rung}: left to the process training it ({busy})", flush=True)
        return 0
    if code == EXIT_INTERRUPTED:
        raise RuntimeError(f"rung {cfg.rung} interrupted; checkpointed, requeue or re-run the sweep to resume")
    if code != 0:
        raise RuntimeError(f"rung {cfg.rung} failed (exit {code}); see its summary.json")
    return code


def prepare_task(cfg) -> None:
    """`ladder prepare` inside a scheduler job: every CPU the job owns tokenizes (data.workers=auto)."""
    from omegaconf import OmegaConf

    from ladder.data import prepare
    prepare(OmegaConf.to_container(cfg.data, resolve=True), needed_tokens=make_plan(cfg).data_tokens)


def submit_prepare(cfg, overrides: list[str], plan: Plan) -> str | None:
    """The Slurm job that prepares this ladder's data (submitted, or the one already queued or running); None when
    the data is prepared. Rungs submitted after it depend on it."""
    from omegaconf import OmegaConf

    from ladder.data.prepare import prepared, resolve
    data = OmegaConf.to_container(cfg.data, resolve=True)
    if prepared(data, plan.data_tokens):
        return None
    key = f"prepare:{resolve(data, plan.data_tokens)[2].name}"
    records = JobRecords.of(cfg.runs_dir, plan.ladder)
    known = records.read().get(key)
    if known and scheduler_states([known]).get(known) in (*SLURM_WAITING, "RUNNING"):
        print(f"data: prepare job {known} is already queued or running; the rungs start after it")
        return known
    require(launcher_of(overrides) == "slurm", f"hydra/launcher={launcher_of(overrides)}: the prepare job needs "
                                               f"hydra/launcher=slurm (ladder's, which records its job id)")
    wanted = {"gpus_per_node": 0, "tasks_per_node": 1, "cpus_per_task": int(cfg.sweep.prepare_cpus),
              "timeout_min": int(cfg.sweep.prepare_timeout_min)}
    check_slurm(cfg, overrides, wanted, cpus_from="sweep.prepare_cpus")
    extra = [f"hydra.launcher.{k}={v}" for k, v in wanted.items()]  # its own, never the rungs' GPUs or time
    mine = {"submit_only", "rungs", "rung", "runs_dir", *(f"hydra.launcher.{k}" for k in wanted)}
    passthrough = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in mine]
    argv = ["ladder prepare", "--multirun", *passthrough, *extra, "hydra.launcher.submit_only=true",
            f"+prepare_of={key.split(':', 1)[1]}", f"runs_dir={Path(cfg.runs_dir).resolve()}",
            f"hydra.sweep.dir={sweep_dir(Path(cfg.runs_dir).resolve(), plan.ladder) / time.strftime('%Y%m%d-%H%M%S-prepare')}",
            "hydra.job.chdir=false"]
    require(_hydra_multirun(argv, prepare_task), "data: submitting the prepare job failed (see the error above)")
    return str(records.read()[key])


def run_sweep(cfg, overrides: list[str]) -> int:
    from omegaconf import OmegaConf

    check_train_options(cfg.train)  # before any job is launched
    poll_s = cfg.sweep.get("poll_s")
    require(poll_s is None or (isinstance(poll_s, (int, float)) and not isinstance(poll_s, bool) and poll_s > 0),
            f"sweep.poll_s={poll_s!r}: seconds between looks at the rungs, a positive number such as 5")
    if poll_s is None:  # each look asks squeue and sacct on Slurm: not every few seconds of a day-long sweep
        poll_s = 60 if launcher_of(overrides) in ("slurm", "submitit_slurm") else 5
    plan = with_corpus(make_plan(cfg), OmegaConf.to_container(cfg.data, resolve=True))
    for note in plan.notes:  # a rung that would repeat its data, a shape that misses its size: said before launch
        print(f"warning: {note}", file=sys.stderr)
    launcher = launcher_of(overrides)
    submit_only = bool(cfg.submit_only)
    require(not submit_only or launcher in ("slurm", "local"),
            f"submit_only=true: needs hydra/launcher=slurm or local (hydra/launcher={launcher} waits by design)")
    wanted = list(cfg.rungs) if cfg.rungs else [r.name for r in plan.rungs]
    for name in wanted:
        plan.rung(str(name))  # a one-line error for a rung not in the ladder
    rows = {r["name"]: r for r in rung_status(plan, cfg.runs_dir)}
    changed = [str(n) for n in wanted if rows[str(n)]["state"] == "changed"]
    require(not changed or cfg.train.get("overwrite"), f"rungs {', '.join(changed)} finished with another "
            f"configuration (recipe, shape, budgets or seed); use another runs_dir, or train.overwrite=true to "
            f"retrain them")
    todo = [plan.rung(str(n)) for n in wanted if rows[str(n)]["state"] not in ("done", "queued", "running")]
    skipped = [n for n in wanted if rows[str(n)]["state"] in ("done", "queued", "running")]
    if skipped:
        print(f"skipping {len(skipped)} rung(s) already done, queued or running: {', '.join(map(str, skipped))}")
    if not todo:
        print(format_status(rung_status(plan, cfg.runs_dir)))
        return 0
    groups: dict[tuple, list[Rung]] = {}
    for rung in todo:
        groups.setdefault(tuple(sorted(resources(rung, plan, cfg, launcher).items())), []).append(rung)
    if launcher in ("local", "submitit_local") and not submit_only:
        groups = _waves(groups, int(cfg.sweep.parallel))
    if launcher in ("slurm", "submitit_slurm"):
        for key in groups:
            check_slurm(cfg, overrides, {k: v for k, v in key if k != "wave"})

    after = None  # no rung tokenizes: the data is prepared once, first (on Slurm, as a job the rungs wait for)
    if launcher in ("slurm", "submitit_slurm"):
        after = submit_prepare(cfg, overrides, plan)
    else:
        from ladder.data import prepare
        prepare(OmegaConf.to_container(cfg.data, resolve=True), needed_tokens=plan.data_tokens)
    runs_dir = str(Path(cfg.runs_dir).resolve())
    passthrough = [o for o in overrides if not o.split("=", 1)[0].lstrip("+~") in ("submit_only", "rungs",
                                                                                    "runs_dir")]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    failed = False
    with sweep_progress(plan, cfg.runs_dir, enabled=not submit_only, every_s=float(poll_s)):
        for i, (key, rungs) in enumerate(groups.items()):
            res = {k: v for k, v in key if k != "wave"}
            extra = []
            if launcher in SUBMITIT:
                extra = [f"hydra.launcher.{k}={v}" for k, v in res.items()
                         if not any(o.startswith(f"hydra.launcher.{k}=") for o in overrides)]
                if str(cfg.train.threads) == "auto" and launcher in ("local", "submitit_local"):
                    extra.append(f"train.threads={res['cpus_per_task']}")  # submitit's local jobs are not pinned
            if submit_only:
                extra.append("hydra.launcher.submit_only=true")
            if after:  # start once the prepare job succeeds; dropped, not left pending, if it fails
                extra += [f"+hydra.launcher.additional_parameters.dependency=afterok:{after}",
                          "+hydra.launcher.additional_parameters.kill_on_invalid_dep=yes"]
            argv = ["ladder sweep", "--multirun", f"rung={','.join(r.name for r in rungs)}", f"runs_dir={runs_dir}",
                    *passthrough, *extra,
                    f"hydra.sweep.dir={sweep_dir(runs_dir, plan.ladder) / f'{stamp}-{i}'}",
                    "hydra.sweep.subdir=${rung}", "hydra.job.chdir=false"]
            failed |= not _hydra_multirun(argv)
    if submit_only and failed:
        print("sweep: submission failed (see the error above); nothing more was queued", file=sys.stderr)
    elif submit_only:
        print(f"submitted; follow with: ladder status ladder={plan.ladder} runs_dir={cfg.runs_dir}")
    else:
        print(format_status(rung_status(plan, cfg.runs_dir)))
    return 1 if failed else 0


@contextmanager
def sweep_progress(plan: Plan, runs_dir, enabled: bool = True, every_s: float = 5.0):
    """While the sweep waits for its rungs, redrawn from their summaries every few seconds: a line as each rung
    starts, finishes or fails (in a log as on a terminal), and on a terminal a bar over the ladder's FLOPs with
    rungs done / running / queued and an ETA."""
    from ladder.progress import bar

    if not enabled:
        yield
        return
    shown = bar(plan.ladder_flops, f"sweep {plan.ladder}", unit="FLOPs", unit_scale=True)
    stop = threading.Event()
    flops = {r.name: r.flops for r in plan.rungs}
    try:
        seen = {r["name"]: r["state"] for r in rung_status(plan, runs_dir)}
    except Exception:  # a summary mid-rewrite: every rung is said once the watcher reads it whole
        seen = {}

    def redraw():
        rows = rung_status(plan, runs_dir)
        for row in rows:
            if row["state"] != seen.get(row["name"]):
                seen[row["name"]] = row["state"]
                print(rung_line(plan.ladder, row), flush=True)
        counts = {state: sum(r["state"] == state for r in rows) for state in ("done", "running", "queued")}
        shown.set(sum(flops[r["name"]] * min(1.0, r["tokens_done"] / r["tokens_budget"]) for r in rows),
                  ", ".join(f"{n} {state}" for state, n in counts.items()) + f" of {len(rows)} rungs")

    def poll():
        while not stop.wait(every_s):
            try:
                redraw()
            except Exception:  # a summary mid-rewrite: the next poll reads it whole
                continue

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        try:
            redraw()  # the last changes, before the final table
        except Exception:
            pass
        shown.close()


def rung_line(ladder: str, row: dict) -> str:
    """One line of a sweep's log for a rung that changed state."""
    from ladder.progress import stamp

    what = row["state"]
    if row["state"] == "done" and row["val_loss"] is not None:
        what += f": validation loss {row['val_loss']:.4f} at {row['last_budget']}"
    elif row["state"] in ("queued", "running") and row["slurm_job_id"]:
        what += f" (slurm job {row['slurm_job_id']})"
    if row.get("reason") and row["state"] in ("failed", "interrupted", "changed"):
        what += f": {row['reason']}"
    return f"{stamp()} sweep {ladder}: {row['name']} {what}"


def _waves(groups: dict[tuple, list[Rung]], parallel: int) -> dict[tuple, list[Rung]]:
    """submitit's local executor starts every job of a multirun at once; `sweep.parallel` at a time means one
    multirun per wave of that many rungs, the longest first so a wave's rungs end together."""
    waves = {}
    for key, rungs in groups.items():
        ordered = sorted(rungs, key=lambda r: r.flops, reverse=True)
        for i in range(0, len(ordered), max(1, parallel)):
            waves[(*key, ("wave", i))] = ordered[i:i + max(1, parallel)]
    return waves


def _hydra_multirun(argv: list[str], task=sweep_task) -> bool:
    import hydra

    from ladder.config import CONF_DIR
    saved = sys.argv
    sys.argv = argv
    try:
        hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(task)()
        return True
    except SystemExit as exit_:  # Hydra reports a failed job and exits 1 once the sweep is over
        if exit_.code not in (0, None):
            return False
        return True
    finally:
        sys.argv = saved
