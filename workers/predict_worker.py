"""Predict worker: holds the production model and answers drawings from the queue.

One process, no fork per job: it claims everything waiting (up to
``max_batch``), predicts it with one ``predict_proba`` call, stores and pushes
the answers in one round trip, then pushes each to its browser over Socket.IO.
This module is the scheduling loop; which model is live (start-up, bootstrap
training, swaps on promotion) is ``workers.model_lifecycle``'s business.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time

import redis
from threadpoolctl import threadpool_limits

from shared import metrics
from shared.config import Config
from shared.images.upload import ImageLimits, ImageRejected
from shared.memory import limit_malloc_arenas
from shared.messaging import heartbeat
from shared.messaging import protocol as p
from shared.messaging.batch_queue import BatchQueue, Chunk
from shared.messaging.connection import connect
from shared.messaging.predict_queue import Job, PredictQueue
from shared.messaging.push import Pusher
from shared.messaging.streams import read_groups
from shared.model.drift import DriftWindow
from shared.model.inference import Featurized, featurize_and_predict, predict_featurized
from shared.model.store import ModelRegistry
from workers.model_holder import ModelHolder
from workers.model_lifecycle import ModelLifecycle
from workers.canary_router import CanaryRouter
from workers.shadow_gate import ShadowGate
from workers.shadow_scorer import ShadowScorer

log = logging.getLogger("swagdigits.predict_worker")

BLOCK_MS = 1000             # longest a claim blocks, so shutdown is noticed within a second
RECLAIM_EVERY_S = 5.0       # how often a worker looks for jobs a dead worker left behind
MAX_DELIVERIES = 2          # a job is tried at most this often before it is reported failed
CHUNK_SLICE = 4             # batch images preprocessed between two looks for waiting drawings
KEEP_CLAIM_S = 1.0          # a chunk still being worked on has its claim renewed this often (s)


class PredictWorker:
    def __init__(self, config: Config, conn: redis.Redis, registry: ModelRegistry,
                 pusher: Pusher | None = None, name: str | None = None):
        self.config = config
        self.conn = conn
        self.registry = registry
        self.pusher = pusher
        self.name = name or f"predict-{socket.gethostname()}-{os.getpid()}"
        self.queue = PredictQueue(conn, result_ttl=config.result_ttl)
        self.batches = BatchQueue(conn, config.batch_chunk_size, config.batch_ttl)
        self.limits = ImageLimits.from_config(config)
        self.holder = ModelHolder()
        self.metrics = metrics.predict()
        self.metrics.watch_drift(DriftWindow(config.drift_window, config.unsure_below))
        self.shadow_gate = ShadowGate(registry, conn, config, self.metrics, pusher)
        self.shadow = ShadowScorer(registry, conn, self.metrics, config.shadow_max_cpu, config.result_ttl,
                                   on_scored=self.shadow_gate.scored)
        self.canary = CanaryRouter(registry, conn)
        self.lifecycle = ModelLifecycle(registry, conn, self.holder, self.metrics, self.name,
                                        family=config.model_family, on_swap=self._beat,
                                        on_event=self.follow_trials)
        self.metrics_port: int | None = None
        self.stopping = threading.Event()
        self._next_beat = 0.0
        self._next_reclaim = 0.0
        # A drawing a silent worker has held for half the web tier's wait is abandoned
        # (its worker died): retry it while the HTTP client still waits. Batch chunks
        # take longer and nobody waits on them, so they get the whole timeout.
        self._stale_ms = int(config.predict_timeout * 500)
        self._chunk_stale_ms = int(config.predict_timeout * 1000)
        self._reclaim_every = min(RECLAIM_EVERY_S, max(0.25, config.predict_timeout / 4))

    def serve_metrics(self) -> int:
        """Expose /metrics on ``config.metrics_port`` (0: a free port), logged and announced in the heartbeat."""
        self.metrics_port = metrics.serve(self.config.metrics_port, self.config.metrics_host)
        log.info("metrics on http://%s:%d/metrics", self.config.metrics_host, self.metrics_port)
        return self.metrics_port

    # -- main loop ---------------------------------------------------------
    def run(self) -> None:
        self.queue.group.ensure()
        self.batches.group.ensure()
        self._beat()
        log.info("worker %s ready, reading %s", self.name, self.queue.stream)
        while not self.stopping.is_set():
            try:
                self.run_once(BLOCK_MS)
            except (redis.ConnectionError, redis.TimeoutError) as exc:  # outage: wait, never spin or die
                log.warning("Redis unavailable (%s); retrying in 1s", exc)
                self.stopping.wait(1.0)
        try:
            heartbeat.leave(self.conn, self.name)
        except redis.RedisError:
            pass  # Redis is gone too; the beat expires by itself
        log.info("worker %s stopped", self.name)

    def run_once(self, block_ms: int) -> int:
        """Do the most urgent work waiting, blocking up to ``block_ms`` for some; return images done.

        Interactive drawings always come first; a batch chunk is taken only
        when none wait, and the chunk itself checks for drawings as it goes.
        """
        now = time.time()
        if now >= self._next_beat:
            self._beat()
        if now >= self._next_reclaim:
            self._next_reclaim = now + self._reclaim_every
            stale_jobs = self.queue.reclaim_stale(self.name, self._stale_ms, count=self.config.max_batch)
            stale_chunks = self.batches.reclaim_stale(self.name, self._chunk_stale_ms)
            if stale_jobs or stale_chunks:
                return self._work(stale_jobs, stale_chunks)
        jobs = self.queue.claim(self.name, self.config.max_batch, block_ms=None)
        if jobs:
            return self._work(jobs, [])
        chunk = self.batches.claim(self.name)
        if chunk:
            return self._work([], [chunk])
        if self.shadow.drain_one():   # idle: shadow work, then look for drawings again before blocking
            return 0
        entries = read_groups([self.queue.group, self.batches.group], self.name, 1, block_ms)
        jobs = self.queue.parse(entries.get(self.queue.stream, []))
        self.queue.mark_started(jobs)
        return self._work(jobs, self.batches.parse(entries.get(self.batches.stream, [])))

    def _work(self, jobs: list[Job], chunks: list[Chunk]) -> int:
        if jobs:
            self.process(jobs)
        for chunk in chunks:
            self.process_chunk(chunk)
        return len(jobs) + sum(len(c.indexes) for c in chunks)

    def process_chunk(self, chunk: Chunk) -> None:
        """Predict a batch chunk, answering waiting drawings between its slices."""
        model = self.holder.current
        if chunk.deliveries > MAX_DELIVERIES:
            log.error("batch %s chunk failed %d times; giving up", chunk.batch_id, chunk.deliveries - 1)
            results = [{"error": "the worker handling this image died"} for _ in chunk.indexes]
        else:
            featurized = Featurized(model.pipeline)
            kept_at = time.monotonic()
            for start in range(0, len(chunk.images), CHUNK_SLICE):
                featurized.add(chunk.images[start:start + CHUNK_SLICE], self.limits)
                waiting = self.queue.claim(self.name, self.config.max_batch, block_ms=None)
                if waiting:
                    self.process(waiting)
                if time.monotonic() - kept_at >= KEEP_CLAIM_S:   # slow, not dead: nobody else computes it too
                    self.batches.keep(self.name, chunk)
                    kept_at = time.monotonic()
            results = [{"error": o.message} if isinstance(o, ImageRejected) else
                       {"digit": o.digit, "probabilities": o.probabilities, "model_version": model.version}
                       for o in predict_featurized(model, featurized)]
            self.metrics.observe_batch_results(results)
        progress = self.batches.record(chunk, results)
        if self.pusher is not None:
            self.pusher.emit(p.EVENT_BATCH_PROGRESS, progress.__dict__, room=p.BATCH_ROOM.format(chunk.batch_id))

    def process(self, jobs: list[Job]) -> None:
        claimed_at = time.time()
        retry_jobs = [j for j in jobs if j.deliveries <= MAX_DELIVERIES]
        given_up = [j for j in jobs if j.deliveries > MAX_DELIVERIES]
        model = self.holder.current
        t0 = time.perf_counter()
        images = [j.image for j in retry_jobs]
        featurized, outcomes, timings = featurize_and_predict(model, images, self.limits)
        served, by_canary, canary_version = self.canary.route(featurized, outcomes)
        compute_s = time.perf_counter() - t0
        done = []
        digits, confidences, bad = [], [], 0
        for i, (job, outcome) in enumerate(zip(retry_jobs, served)):
            if isinstance(outcome, ImageRejected):
                bad += 1
                done.append((job, p.PredictionError(job.job_id, outcome.message, outcome.status)))
                continue
            done.append((job, p.PredictionResult(
                job_id=job.job_id, digit=outcome.digit, probabilities=outcome.probabilities,
                model_version=canary_version if i in by_canary else model.version,
                timings={"queue_wait_ms": round((claimed_at - job.enqueued_at) * 1000, 3),
                         **timings, "batch_size": len(retry_jobs)})))
            digits.append(outcome.digit)
            confidences.append(outcome.probabilities[outcome.digit])
        for job in given_up:
            log.error("job %s failed %d times; giving up", job.job_id, job.deliveries - 1)
            done.append((job, p.PredictionError(job.job_id, "the worker handling this drawing died", 500)))
        self.queue.complete(done)
        self.metrics.observe_batch(claimed_at, compute_s, time.time(), [j.enqueued_at for j in retry_jobs],
                                   digits, confidences, {"bad_image": bad, "worker_died": len(given_up)})
        self._push(done)
        # Answers are out; shadow models look at the same drawings when the worker is idle.
        self.shadow.offer([j.job_id for j in retry_jobs], featurized, outcomes, images, self.limits, compute_s)

    def follow_trials(self) -> None:
        """A model event: re-read which versions run in shadow and which one is the canary."""
        self.shadow.refresh()
        self.canary.refresh(self.holder.current if self.holder.version else None)

    def _push(self, done) -> None:
        if self.pusher is None:
            return
        for job, outcome in done:
            if job.room:
                event = p.EVENT_PREDICTION_ERROR if isinstance(outcome, p.PredictionError) else p.EVENT_PREDICTION
                self.pusher.emit(event, json.loads(outcome.to_json()), room=job.room)

    def _beat(self) -> None:
        self._next_beat = time.time() + self.config.worker_heartbeat
        heartbeat.beat(self.conn, self.name, {"role": "predict", "pid": os.getpid(),
                                              "model_version": self.holder.version or "",
                                              "metrics_port": self.metrics_port or ""},
                       self.config.worker_heartbeat)


def main(config: Config | None = None) -> int:
    limit_malloc_arenas()
    # One BLAS thread: the kernel matmuls are small, and extra BLAS threads only
    # fight the web tier and the other workers for the same cores.
    threadpool_limits(limits=1)
    config = config or Config.from_env()
    conn = connect(config.redis_url)
    worker = PredictWorker(config, conn, ModelRegistry(config.model_dir), Pusher(config.redis_url))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stopping.set())
    worker.serve_metrics()
    worker.lifecycle.load_at_start()
    worker.lifecycle.follow_promotions(worker.stopping)
    worker.run()
    return 0
