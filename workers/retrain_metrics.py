"""An RQ worker that records every retrain run's outcome in the retrain worker's own /metrics.

RQ runs each job in a forked work horse, so metrics the job itself set would
vanish with the fork. The parent records them instead, after the horse ends,
from what RQ stored in Redis: the job's return value (a
``workers.retrain_result.RetrainResult``) or its failure. That
also counts a horse killed by the OOM killer or a timeout as ``failed``.
"""
from __future__ import annotations

import logging
import time

from rq import Worker
from rq.job import JobStatus

from shared import metrics
from workers.retrain_result import RetrainResult

log = logging.getLogger("swagdigits.retrain_worker")


class MeteredWorker(Worker):
    def execute_job(self, job, queue):
        started = time.monotonic()
        try:
            return super().execute_job(job, queue)
        finally:
            record_job(job, time.monotonic() - started)


def record_job(job, seconds: float) -> str | None:
    """Count one finished retrain job; return the outcome recorded (None: not a retrain run)."""
    try:
        status = job.get_status(refresh=True)
        if status == JobStatus.FINISHED:
            result = RetrainResult.from_dict(job.return_value(refresh=True))
            if result is None:
                return None
            metrics.record_retrain(result.outcome, seconds, result.candidate_accuracy,
                                   result.production_accuracy, result.help_images)
            return result.outcome
        if status in (JobStatus.FAILED, JobStatus.STOPPED):
            metrics.record_retrain("failed", seconds)
            return "failed"
    except Exception:  # metrics must never take the worker down
        log.exception("could not record metrics for job %s", job.id)
    return None
