"""Names and payloads every process agrees on: Redis keys, queues, Socket.IO events.

Change a name here and both sides change together; nothing else spells these
strings.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

PREFIX = "swagdigits"

# Interactive drawings and batch chunks travel on Redis streams read by the
# predict workers' consumer group (see shared.messaging.predict_queue for why not plain RQ).
PREDICT_STREAM = f"{PREFIX}:stream:predict"
BATCH_STREAM = f"{PREFIX}:stream:batch"
PREDICT_GROUP = "predict-workers"
STREAMS = {"predict": PREDICT_STREAM, "batch": BATCH_STREAM}   # by the label metrics show

# Retraining is rare and slow, so it uses RQ: this is the RQ queue name.
RETRAIN_QUEUE = "retrain"
RETRAIN_JOB_FUNC = "workers.retrain_job.run_retrain"   # enqueued by name: the web never imports it
RETRAIN_WAITING_KEY = PREFIX + ":retrain:waiting"      # string: id of the one retrain job not yet running
RETRAIN_RUNNING_KEY = PREFIX + ":retrain:running"      # string (TTL): id of the retrain job training now
HELP_TOTAL_KEY = PREFIX + ":help:total"                # int: help images stored (all web processes)
HELP_TRAINED_KEY = PREFIX + ":help:trained"            # int: help images the last retrain saw
HELP_BYTES_KEY = PREFIX + ":help:bytes"                # int (TTL): bytes of help data on disk

BATCH_KEY = PREFIX + ":batch:{}"      # hash: state, total, done, created_at, expires_at
BATCH_RESULTS_KEY = PREFIX + ":batch:{}:results"  # hash: input index -> result or error JSON
BATCH_ROOM = "batch:{}"               # Socket.IO room of a batch's progress subscribers
JOB_KEY = PREFIX + ":job:{}"          # hash: state, enqueued_at, result | error
REPLY_KEY = PREFIX + ":reply:{}"      # list: the result, pushed for a waiting HTTP request
WORKERS_KEY = PREFIX + ":workers"     # sorted set: worker name -> last heartbeat (unix s)
WORKER_KEY = PREFIX + ":worker:{}"    # hash: pid, role, model_version, metrics_port
BOOTSTRAP_LOCK = PREFIX + ":lock:bootstrap-model"
RATE_KEY = PREFIX + ":rate:{}:{}:{}"  # int (TTL): requests of kind, client hash, window number
SOCKET_SECRET_KEY = PREFIX + ":socket:key"  # string: HMAC key of the per-socket secrets (web.socket_secrets)
MODEL_EVENTS_CHANNEL = f"{PREFIX}:events:model"
SHADOW_KEY = PREFIX + ":shadow"                # hash: model version -> share of drawings it scores in shadow
SHADOW_STATS_KEY = PREFIX + ":shadow:{}:stats"  # hash: seen, agree, confidence sums, corrected, *_right
SHADOW_ANSWERS_KEY = PREFIX + ":shadow:job:{}"  # hash (TTL): shadow version -> digit it read for a job
SHADOW_TRIALS_KEY = PREFIX + ":shadow:trials"   # hash: version -> JSON trial a promotion waits on
CANARY_KEY = PREFIX + ":canary"                # hash: version, share, production, since (one canary at a time)
CANARY_STATS_KEY = PREFIX + ":canary:{}:stats"  # hash: {canary,production}_{answers,corrections}
# Redis pub/sub channel Flask-SocketIO's message queue and shared.messaging.push agree on.
SOCKETIO_CHANNEL = f"{PREFIX}:socketio"

REPLY_TTL_S = 30

# Socket.IO events (server -> browser unless noted).
EVENT_SESSION = "session"               # server -> browser on connect: {sid, secret} (web.socket_secrets)
EVENT_PREDICT = "predict"               # browser -> server: {"image", "seq"?}
EVENT_PREDICTION = "prediction"         # {job_id, digit, probabilities, model_version, timings}
EVENT_PREDICTION_ERROR = "prediction_error"  # {job_id?, error, status}
EVENT_MODEL_CHANGED = "model_changed"   # {model_version}
EVENT_BATCH_PROGRESS = "batch_progress"  # {batch_id, state, done, total}
EVENT_SUBSCRIBE_BATCH = "subscribe_batch"  # browser -> server: {"batch_id"}

# Job states as GET /api/jobs/<id> reports them.
QUEUED, STARTED, FINISHED, FAILED = "queued", "started", "finished", "failed"
RUNNING = "running"  # a batch some of whose chunks are done


@dataclass(frozen=True)
class PredictionResult:
    job_id: str
    digit: int
    probabilities: list[float]
    model_version: str
    timings: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(frozen=True)
class PredictionError:
    job_id: str
    error: str
    status: int = 422

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def parse_reply(raw: bytes | str) -> dict:
    """A worker's reply as a dict; it holds ``error`` when the job failed."""
    return json.loads(raw)
