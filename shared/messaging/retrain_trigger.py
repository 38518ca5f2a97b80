"""Asking for a retraining, however often, yields at most one running and one waiting.

Triggers come from many places at once (every web process's POST /helpdata
when the pending count reaches the threshold, POST /api/retrain, the CLI).
Retraining reads *all* help data when it starts, so a second waiting job
would train on the same data as the first: requests made while one job waits
simply join it.

Two Redis keys keep this true across processes:

- ``RETRAIN_WAITING_KEY`` names the one job queued and not yet training. A
  trigger sets it with ``SET NX`` before enqueueing, so only one trigger wins;
  the others answer with the same job id.
- ``RETRAIN_RUNNING_KEY`` names the job training now. A job takes it (waiting
  if another job still trains), and only then gives up the waiting slot, so a
  trigger that arrives during training queues exactly one follow-up. It is
  a lease of ``LEASE_S`` renewed while the job trains, so a worker killed
  outright blocks the next retraining for at most that long.

The job is enqueued by dotted name, so the web tier never imports training code.

Jobs are JSON (``SERIALIZER``), never RQ's default pickle: a pickle read from
Redis runs whatever code it names, so anyone able to write to Redis would
run code in the retrain worker, or in any process that fetches a job (RQ
reads a job's ``meta`` with its serializer on every fetch). Every queue and
job object comes from ``retrain_queue`` and ``fetch_job`` so none forgets it.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timezone

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from shared import metrics
from shared.messaging import protocol as p

log = logging.getLogger(__name__)

JOB_TIMEOUT_S = 30 * 60       # RQ kills a retraining that runs longer than this
RESULT_TTL_S = 7 * 24 * 3600  # job results (the candidate's verdict) stay readable this long
WAITING_TTL_S = 24 * 3600     # a waiting marker whose job vanished expires by itself
# The running slot is a lease: the job renews it every LEASE_S / 3 while it
# trains, so a retrain worker killed outright (SIGKILL of the whole worker,
# nobody left to mark the job failed) frees it within LEASE_S.
LEASE_S = 15
ENQUEUE_GRACE_S = 30          # a marker this young may name a job still being enqueued

SERIALIZER = JSONSerializer

_DONE = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}

# Delete a key only if it still holds our value (a later job may own it by now).
_COMPARE_AND_DELETE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_COMPARE_AND_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


@dataclass(frozen=True)
class Requested:
    job_id: str
    queued: bool   # False: the request joined a retraining already waiting


def retrain_queue(conn: redis.Redis) -> Queue:
    """The RQ queue retrain jobs go through, reading and writing JSON."""
    return Queue(p.RETRAIN_QUEUE, connection=conn, serializer=SERIALIZER)


def fetch_job(conn: redis.Redis, job_id: str) -> Job:
    """A retrain job by id, read as JSON (raises ``NoSuchJobError`` when unknown)."""
    return Job.fetch(job_id, connection=conn, serializer=SERIALIZER)


def should_trigger(pending: int, threshold: int) -> bool:
    """Trigger when pending help reaches the threshold (and each further threshold).

    Each stored image increments ``pending`` by exactly one, atomically, so
    exactly one request sees each multiple: a burst of uploads asks once.
    """
    return threshold > 0 and pending >= threshold and pending % threshold == 0


def request_retrain(conn: redis.Redis, reason: str) -> Requested:
    """Queue a retraining unless one is already waiting; return the job that will run."""
    metrics.record_retrain_request()
    for _ in range(5):
        waiting = conn.get(p.RETRAIN_WAITING_KEY)
        if waiting:
            waiting = waiting.decode()
            if not _finished(conn, waiting):
                log.info("retrain requested (%s): joins waiting job %s", reason, waiting)
                return Requested(waiting, False)
            _compare_and_delete(conn, p.RETRAIN_WAITING_KEY, waiting)  # its job is gone
            continue
        job_id = uuid.uuid4().hex
        if not conn.set(p.RETRAIN_WAITING_KEY, job_id, nx=True, ex=WAITING_TTL_S):
            continue  # another trigger won the race: join it on the next turn
        try:
            retrain_queue(conn).enqueue_call(
                p.RETRAIN_JOB_FUNC, kwargs={"reason": reason}, job_id=job_id,
                timeout=JOB_TIMEOUT_S, result_ttl=RESULT_TTL_S, failure_ttl=RESULT_TTL_S,
                description=f"retrain ({reason})")
        except BaseException:
            _compare_and_delete(conn, p.RETRAIN_WAITING_KEY, job_id)
            raise
        log.info("retrain requested (%s): queued job %s", reason, job_id)
        return Requested(job_id, True)
    raise RuntimeError("could not queue a retraining: the waiting slot kept changing")


def queue_stats(conn: redis.Redis) -> tuple[int, float]:
    """Retrain jobs waiting in RQ and the age in seconds of the oldest (0 when none)."""
    queue = retrain_queue(conn)
    depth = queue.count
    head = queue.get_job_ids(0, 1)
    job = queue.fetch_job(head[0]) if head else None
    if job is None or job.enqueued_at is None:
        return depth, 0.0
    enqueued = job.enqueued_at
    if enqueued.tzinfo is None:  # RQ stores UTC
        enqueued = enqueued.replace(tzinfo=timezone.utc)
    return depth, max(0.0, time.time() - enqueued.timestamp())


def status(conn: redis.Redis) -> dict:
    waiting, running = conn.mget(p.RETRAIN_WAITING_KEY, p.RETRAIN_RUNNING_KEY)
    return {"waiting": waiting.decode() if waiting else None,
            "running": running.decode() if running else None}


@contextlib.contextmanager
def running_slot(conn: redis.Redis, job_id: str, poll_s: float = 0.5):
    """Held by a retrain job while it trains: waits for the previous one, frees the waiting slot."""
    while not conn.set(p.RETRAIN_RUNNING_KEY, job_id, nx=True, ex=LEASE_S):
        holder = conn.get(p.RETRAIN_RUNNING_KEY)
        if holder and _ended(conn, holder.decode()):
            # Its work horse was killed (kill -9, OOM) before the finally below ran:
            # RQ marked it failed, so the slot is free; don't wait out the TTL.
            log.warning("retrain job %s ended without freeing the running slot; taking it over",
                        holder.decode())
            _compare_and_delete(conn, p.RETRAIN_RUNNING_KEY, holder.decode())
            continue
        time.sleep(poll_s)
    _compare_and_delete(conn, p.RETRAIN_WAITING_KEY, job_id)
    done = threading.Event()
    renewer = threading.Thread(target=_renew_lease, args=(conn, job_id, done), name="retrain-lease",
                               daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join()
        _compare_and_delete(conn, p.RETRAIN_RUNNING_KEY, job_id)


def _renew_lease(conn: redis.Redis, job_id: str, done: threading.Event) -> None:
    while not done.wait(LEASE_S / 3):
        try:
            conn.eval(_COMPARE_AND_RENEW, 1, p.RETRAIN_RUNNING_KEY, job_id, LEASE_S)
        except redis.RedisError as exc:  # Redis away for a moment: the next renewal may still make it
            log.warning("could not renew the retrain lease: %s", exc)


def _ended(conn: redis.Redis, job_id: str) -> bool:
    """RQ knows ``job_id`` and says it is over (an unknown id may be an in-process run)."""
    try:
        return fetch_job(conn, job_id).get_status(refresh=True) in _DONE
    except NoSuchJobError:
        return False


def _finished(conn: redis.Redis, job_id: str) -> bool:
    try:
        return fetch_job(conn, job_id).get_status(refresh=True) in _DONE
    except NoSuchJobError:
        # Not in RQ: gone, unless the trigger that set the marker is enqueueing it right now.
        return conn.ttl(p.RETRAIN_WAITING_KEY) < WAITING_TTL_S - ENQUEUE_GRACE_S


def _compare_and_delete(conn: redis.Redis, key: str, value: str) -> None:
    conn.eval(_COMPARE_AND_DELETE, 1, key, value)
