"""`ladder status`: one row per rung, from its summary.json and, for submitted rungs, the scheduler's word."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from ladder.plan import Plan, rung_identity
from ladder.rundir import JobRecords, RunDir, lease_alive

SLURM_WAITING = {"PENDING", "REQUEUED", "CONFIGURING", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED"}
SLURM_FAILED = {"FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}


def scheduler_states(job_ids: list[str]) -> dict[str, str]:
    """Slurm's state of each job (squeue for live jobs, sacct for finished ones); empty without Slurm."""
    if not job_ids or shutil.which("squeue") is None:
        return {}
    states = {}
    # -r: one line per array task ("59_3"), not "59_[2-3]", so ids match the ones recorded at submission
    live = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T", "-j", ",".join(job_ids)], capture_output=True,
                          text=True)
    for line in live.stdout.split("\n"):
        if line.strip():
            job, state = line.split()[:2]
            states[job] = state
    if shutil.which("sacct"):
        done = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)],
                              capture_output=True, text=True)
        for line in done.stdout.split("\n"):
            if "|" in line:
                job, state = line.split("|")[:2]
                states.setdefault(job, state.split()[0])
    return states


def rung_status(plan: Plan, runs_dir: str | Path) -> list[dict]:
    jobs = JobRecords.of(runs_dir, plan.ladder).read()
    slurm = scheduler_states([jobs[r.name] for r in plan.rungs if r.name in jobs])
    rows = []
    for rung in plan.rungs:
        summary = RunDir.of(runs_dir, plan.ladder, rung.name).summary() or {}
        job = jobs.get(rung.name) or summary.get("slurm_job_id")
        job_state = slurm.get(str(job)) if job else None
        status, reason = summary.get("status"), summary.get("reason")
        if status == "done" and summary.get("rung_identity") not in (None, rung_identity(rung)):
            state, reason = "changed", "finished with another configuration of this rung"
        elif status == "done":
            state = "done"
        elif status == "failed":
            state = "failed"
        elif job_state in SLURM_WAITING:
            state = "queued"
        elif job_state in SLURM_FAILED and status != "done":
            state, reason = "failed", f"slurm job {job} {job_state}" + (f"; {reason}" if reason else "")
        elif job_state == "RUNNING" or (status == "running" and lease_alive(summary) is not False):
            state = "running"
        elif status == "running":  # its process is gone (killed, Ctrl-C, a crash before it could say so)
            state, reason = "interrupted", f"stale lease: {_holder(summary)} is gone; resumable"
        elif status == "interrupted":
            state = "interrupted"
        else:
            state = "pending"
        budgets = summary.get("budgets") or {}
        finished = [(label, b) for label, b in budgets.items() if b.get("loss") is not None]
        steps_tokens = summary.get("steps_done", 0) * rung.recipe.batch_tokens
        last = finished[-1] if finished else None
        rows.append({"name": rung.name, "state": state, "reason": reason,
                     "budgets_done": len(finished), "budgets_total": len(rung.budgets),
                     "last_budget": last[0] if last else None, "val_loss": last[1]["loss"] if last else None,
                     "tokens_done": max([steps_tokens, *(b["tokens"] for _, b in finished)]),
                     "tokens_budget": rung.tokens, "train_loss": summary.get("last_loss"),
                     "tokens_per_s": summary.get("tokens_per_s"), "mfu": summary.get("mfu"),
                     "eta_s": _eta(summary) if state == "running" else None,
                     "slurm_job_id": job, "slurm_state": job_state, "wandb_id": summary.get("wandb_id")})
    return rows


def data_status(data: dict, plan: Plan, runs_dir: str | Path) -> dict:
    """Whether the ladder's data is prepared, and the Slurm job preparing it if one was submitted."""
    from ladder.data.prepare import resolve

    directory = resolve(data, plan.data_tokens)[2]
    job = JobRecords.of(runs_dir, plan.ladder).read().get(f"prepare:{directory.name}")
    return {"name": data["name"], "directory": str(directory), "prepared": (directory / "manifest.json").exists(),
            "prepare_job": job, "prepare_state": scheduler_states([job]).get(job) if job else None}


def format_data_status(row: dict) -> str:
    if row["prepared"]:
        return f"data {row['name']}: prepared ({row['directory']})"
    job = f"; prepare job {row['prepare_job']} {row['prepare_state'] or ''}".rstrip() if row["prepare_job"] else ""
    return f"data {row['name']}: not prepared{job or '; ladder prepare (or ladder sweep) prepares it'}"


def _eta(summary: dict) -> float | None:
    """The rung's ETA as its trainer last wrote it, less the time since (its heartbeat)."""
    eta, held = summary.get("eta_s"), summary.get("lease") or {}
    if eta is None:
        return None
    return max(0.0, float(eta) - max(0.0, time.time() - float(held.get("heartbeat") or time.time())))


def _holder(summary: dict) -> str:
    held = summary.get("lease") or {}
    return f"pid {held.get('pid')} on {held.get('host')}"


def format_status(rows: list[dict]) -> str:
    from ladder.progress import duration
    from ladder.report import format_table, human
    header = ["rung", "state", "budgets", "val loss", "tokens", "tokens/s", "MFU", "ETA", "slurm job", "W&B run"]
    body = [[r["name"], r["state"] + (f" ({r['reason']})" if r["state"] in ("failed", "interrupted", "changed")
                                      and r["reason"] else ""),
             f"{r['budgets_done']}/{r['budgets_total']}",
             "" if r["val_loss"] is None else f"{r['val_loss']:.4f} ({r['last_budget']})",
             f"{human(r['tokens_done'])}/{human(r['tokens_budget'])}",
             "" if r["tokens_per_s"] is None else f"{r['tokens_per_s']:,.0f}",
             "" if r.get("mfu") is None else f"{r['mfu']:.1%}",
             "" if r.get("eta_s") is None else duration(r["eta_s"]),
             str(r["slurm_job_id"] or ""), str(r["wandb_id"] or "")] for r in rows]
    counts = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    running = [r["eta_s"] for r in rows if r.get("eta_s") is not None]
    eta = f"; the running rungs finish in {duration(max(running))}" if running else ""
    return format_table(header, body) + "\n" + ", ".join(f"{n} {s}" for s, n in counts.items()) + eta
