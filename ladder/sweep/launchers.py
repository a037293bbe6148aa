"""Hydra's submitit launchers, plus `submit_only`: Hydra waits for every job before it returns (hydra #2479);
with submit_only=true these return as soon as the jobs are queued, so a sweep can be launched and left."""

from __future__ import annotations

from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus


class _Submitted(Exception):
    pass


class SubmitOnly:
    """Mixed into Hydra's submitit launchers (hydra_plugins/ladder_launchers)."""

    def __init__(self, submit_only: bool = False, **params) -> None:
        super().__init__(**params)
        self.submit_only = submit_only

    def launch(self, job_overrides, initial_job_idx):
        import submitit

        submitted: list = []
        original = submitit.AutoExecutor.map_array

        def map_array_then_stop(executor, fn, *iterables):
            submitted.extend(original(executor, fn, *iterables))
            record_jobs(Path(str(self.config.hydra.sweep.dir)), job_overrides, submitted)  # before any waiting
            if self.submit_only:
                raise _Submitted
            return submitted

        submitit.AutoExecutor.map_array = map_array_then_stop
        try:
            returns = super().launch(job_overrides, initial_job_idx)
        except _Submitted:
            returns = [JobReturn(overrides=list(o), status=JobStatus.COMPLETED, _return_value=job.job_id)
                       for o, job in zip(job_overrides, submitted)]
        finally:
            submitit.AutoExecutor.map_array = original
        return returns


def record_jobs(sweep_dir: Path, job_overrides, jobs) -> None:
    """rung -> scheduler job id, for `ladder status` (appended across sweeps of the same ladder)."""
    ids = {}
    for overrides, job in zip(job_overrides, jobs):
        rung = next((o.split("=", 1)[1] for o in overrides if o.startswith("rung=")), None)
        data = next((o.split("=", 1)[1] for o in overrides if o.startswith("+prepare_of=")), None)
        if rung or data:
            ids[rung or f"prepare:{data}"] = str(job.job_id)
    from ladder.rundir import JobRecords
    JobRecords.beside(sweep_dir).record(ids)
    for rung, job_id in ids.items():
        print(f"submitted {rung}: job {job_id}", flush=True)
