"""Every setting the service reads from the environment, in one place.

Each process (web, predict worker, retrain worker, CLI) builds one ``Config``
with ``Config.from_env()`` and passes it down; nothing else reads
``os.environ``. The README's configuration table mirrors ``SETTINGS``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path


LOOPBACK_BIND = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
LOOPBACK_HOST_NAMES = ("localhost", "127.0.0.1", "[::1]")


def _is_host_name(name: str) -> bool:
    """A host name or address as a Host header gives it, without a port: ``[::1]``, not ``a.example:80``."""
    if "/" in name:
        return False
    if name.startswith("["):
        return name.endswith("]") and name.count("]") == 1
    return ":" not in name


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


@dataclass(frozen=True)
class Setting:
    env: str
    default: str
    kind: type
    help: str


SETTINGS: dict[str, Setting] = {
    "redis_url": Setting("REDIS_URL", "redis://127.0.0.1:6379/0", str,
                         "Redis server for queues, results and Socket.IO messages. "
                         "`swagdigits up` starts a private one when this is unset."),
    "redis_timeout": Setting("SWAGDIGITS_REDIS_TIMEOUT", "0.5", float,
                             "Seconds the web tier waits for Redis to connect or answer one command "
                             "before answering 503 (a Redis that hangs is noticed this fast); a "
                             "request waiting for its answer waits SWAGDIGITS_PREDICT_TIMEOUT plus this."),
    # Redis holds queues, results and counters in memory: without a cap a flood of them
    # could take the host's memory (issue 17, finding 4). noeviction: a full Redis refuses
    # writes (503 from the web tier) instead of silently dropping queued jobs or results.
    "redis_maxmemory": Setting("SWAGDIGITS_REDIS_MAXMEMORY", "512mb", str,
                               "Memory cap of the Redis `swagdigits up` starts (redis-server's "
                               "maxmemory, policy noeviction: when full, writes are refused and "
                               "the web tier answers 503); docker-compose.yaml sets the same."),
    "data_dir": Setting("SWAGDIGITS_DATA_DIR", ".", Path,
                        "Base folder for models/, help_data/, secrets/ and the embedded Redis."),
    "model_dir": Setting("SWAGDIGITS_MODEL_DIR", "", Path,
                         "ModelStore file-system root (default: DATA_DIR/models)."),
    "help_dir": Setting("SWAGDIGITS_HELP_DIR", "", Path,
                        "Where labelled help images are kept (default: DATA_DIR/help_data)."),
    # Keys clients must never learn (the help holdout split, client hashes): shared.server_secrets.
    "secret_key": Setting("SWAGDIGITS_SECRET_KEY", "", str,
                          "The server's secret (at least 32 characters), from which the help data's "
                          "holdout split and client-address hashes are keyed; the same in every "
                          "process. Empty: a random one is made once into SWAGDIGITS_SECRETS_DIR."),
    "secrets_dir": Setting("SWAGDIGITS_SECRETS_DIR", "", Path,
                           "Where the generated server secret is kept (file `server-key`, mode "
                           "0600; default: DATA_DIR/secrets). Every web process, the retrain "
                           "worker and the CLI must share it; back it up with the help data."),
    "host": Setting("SWAGDIGITS_HOST", "127.0.0.1", str, "Address the web tier listens on."),
    "port": Setting("SWAGDIGITS_PORT", "5000", int, "Port the web tier listens on."),
    # `swagdigits up` puts a buffering front on SWAGDIGITS_HOST:SWAGDIGITS_PORT (slow clients
    # would otherwise hold gunicorn's threads, issue 15) and runs gunicorn behind it here.
    "web_bind": Setting("SWAGDIGITS_WEB_BIND", "", str,
                        "host:port gunicorn listens on when something else owns SWAGDIGITS_HOST:"
                        "SWAGDIGITS_PORT (`swagdigits up` sets a loopback port behind its buffering "
                        "front); empty: SWAGDIGITS_HOST:SWAGDIGITS_PORT."),
    "web_threads": Setting("SWAGDIGITS_WEB_THREADS", "64", int,
                           "Threads of the web process (each waiting request or socket holds one)."),
    # Each open Socket.IO session holds a web thread (a WebSocket for its whole life, a
    # long-polling session for each of its waiting GETs): without caps, 64 idle sockets
    # from one address used every thread and /healthz stopped answering (issue 17).
    "sockets_per_client": Setting("SWAGDIGITS_SOCKETS_PER_CLIENT", "20", int,
                                  "Open Socket.IO connections one client address may hold in one web "
                                  "process (a new one over it is refused with 429); 0: no cap."),
    # Behind a reverse proxy every request comes from the proxy's address: per-address rate
    # limits, help quotas and socket caps would count all clients as one. Trusting
    # X-Forwarded-For from exactly this many proxies restores the client's address; any more
    # and a client could claim any address it likes.
    "proxy_hops": Setting("SWAGDIGITS_PROXY_HOPS", "0", int,
                          "Reverse proxies in front of the web tier whose X-Forwarded-For is trusted "
                          "(the client address is taken from it); 0: none, the peer address counts. "
                          "docker-compose.yaml sets 1 for its nginx."),
    "http_threads": Setting("SWAGDIGITS_HTTP_THREADS", "16", int,
                            "Web threads Socket.IO may never take: at most SWAGDIGITS_WEB_THREADS "
                            "minus this many connections are open at once (503 above), so HTTP "
                            "requests (/healthz, predictions) always find a thread."),
    "metrics_host": Setting("SWAGDIGITS_METRICS_HOST", "127.0.0.1", str,
                            "Address a worker serves /metrics on (0.0.0.0 where Prometheus runs elsewhere, "
                            "as in docker-compose.yaml)."),
    "metrics_port": Setting("SWAGDIGITS_METRICS_PORT", "0", int,
                            "Port a worker serves /metrics on (0: pick a free one)."),
    "metrics_multiproc_dir": Setting("PROMETHEUS_MULTIPROC_DIR", "", str,
                                     "Only when one web tier runs several processes: an empty folder "
                                     "where prometheus_client keeps every process's metrics so "
                                     "/metrics adds them up. Unset: per-process metrics."),
    "predict_timeout": Setting("SWAGDIGITS_PREDICT_TIMEOUT", "5.0", float,
                               "Seconds POST /api/predict waits for a worker before answering 504."),
    "result_ttl": Setting("SWAGDIGITS_RESULT_TTL", "300", int,
                          "Seconds a finished job's result stays readable at /api/jobs/<id>."),
    "queue_limit": Setting("SWAGDIGITS_QUEUE_LIMIT", "1000", int,
                           "Waiting predictions above which new ones get 503 + Retry-After."),
    "max_batch": Setting("SWAGDIGITS_MAX_BATCH", "64", int,
                         "Most waiting drawings a predict worker takes and predicts in one call."),
    "max_upload_bytes": Setting("SWAGDIGITS_MAX_UPLOAD_BYTES", str(4 * 1024 * 1024), int,
                                "Largest request body accepted, in bytes (413 above)."),
    # The page's canvas is 280x280; 1024x1024 admits it at 3x (a high-density screen's
    # 840x840) with room to spare, and bounds what one image costs a worker to decode.
    "max_image_pixels": Setting("SWAGDIGITS_MAX_IMAGE_PIXELS", str(1024 * 1024), int,
                                "Largest width x height of an image accepted (413 above): "
                                "the drawing canvas (280x280) at up to 3x, with room to spare."),
    "max_image_side": Setting("SWAGDIGITS_MAX_IMAGE_SIDE", "2048", int,
                              "Largest width or height of an image accepted, in pixels "
                              "(lets a long strip through; the pixel cap still holds)."),
    "model_family": Setting("SWAGDIGITS_MODEL_FAMILY", "svc", str,
                            "Model family new models are trained as (`swagdigits train`, a worker's "
                            "first model, retraining); one of `shared/model/families/`."),
    "worker_heartbeat": Setting("SWAGDIGITS_WORKER_HEARTBEAT", "5", int,
                                "Seconds between a worker's liveness beats; /readyz wants one "
                                "seen within three of them."),
    "admin_token": Setting("SWAGDIGITS_ADMIN_TOKEN", "", str,
                           "Bearer token for operator routes; empty turns them off."),
    "log_level": Setting("SWAGDIGITS_LOG_LEVEL", "INFO", str, "Python logging level."),
    # What one client sends (malformed packets, requests refused again and again) must not
    # decide how fast the log grows (issue 17).
    "log_lines_per_client": Setting("SWAGDIGITS_LOG_LINES_PER_CLIENT", "10", int,
                                    "Warning lines one client address may cause per minute in one web "
                                    "process; the next is one line saying the rest are suppressed; "
                                    "0: no limit."),
    "retrain_threshold": Setting("SWAGDIGITS_RETRAIN_THRESHOLD", "100", int,
                                 "New help images (not yet in a model) that trigger a retrain; "
                                 "0 turns the automatic trigger off."),
    "gate_max_guard_loss": Setting("SWAGDIGITS_GATE_MAX_GUARD_LOSS", "0.01", float,
                                   "A retrained candidate losing more accuracy than this on the guard set "
                                   "(shipped styles the help data does not come from) is rejected."),
    "gate_max_class_loss": Setting("SWAGDIGITS_GATE_MAX_CLASS_LOSS", "0.05", float,
                                   "... or reading any one digit of the guard set right this much less often."),
    "promotion_tolerance": Setting("SWAGDIGITS_PROMOTION_TOLERANCE", "0.005", float,
                                   "How much lower a candidate's evaluation accuracy may be than "
                                   "production's and still be promoted."),
    "help_holdout_share": Setting("SWAGDIGITS_HELP_HOLDOUT_SHARE", "0.1", float,
                                  "Share of help images (fixed by their SHA-256 keyed by the server secret) "
                                  "never trained on, "
                                  "kept to evaluate candidates."),
    "help_weight": Setting("SWAGDIGITS_HELP_WEIGHT", "1.0", float,
                           "How much one help image counts in training, relative to one shipped "
                           "digit (a correction teaches as much as any training digit; the guard-set "
                           "gate, not a small weight, keeps other styles from being forgotten)."),
    # One address must not be able to teach the model on its own (issue 17, finding 2):
    # 100 pen-stroke 7s labelled 1 from one address made 41% of unseen 7s read as 1.
    "help_client_max": Setting("SWAGDIGITS_HELP_CLIENT_MAX", "500", int,
                               "Most help images one client address contributes to one retraining "
                               "(its earliest; the rest are left out of that retraining, logged and "
                               "counted); operator imports are not capped; 0: no cap."),
    "help_contradiction_below": Setting("SWAGDIGITS_HELP_CONTRADICTION_BELOW", "0.05", float,
                                        "A help image whose label production gives less than this "
                                        "probability contradicts a confident answer ..."),
    "help_corroborating_clients": Setting("SWAGDIGITS_HELP_CORROBORATING_CLIENTS", "3", int,
                                          "... and is trained on only when at least this many client "
                                          "addresses sent such contradictions for the same (label, "
                                          "answer) pair; 1: always."),
    "retrain_nice": Setting("SWAGDIGITS_RETRAIN_NICE", "10", int,
                            "Niceness the retrain worker adds to itself so training never starves "
                            "prediction."),
    "batch_max_images": Setting("SWAGDIGITS_BATCH_MAX_IMAGES", "10000", int,
                                "Most images one POST /api/batches may hold (413 above)."),
    "batch_max_bytes": Setting("SWAGDIGITS_BATCH_MAX_BYTES", str(48 * 1024 * 1024), int,
                               "Largest batch request body, in bytes (413 above)."),
    "batch_bodies": Setting("SWAGDIGITS_BATCH_BODIES", "2", int,
                            "Batch bodies (up to SWAGDIGITS_BATCH_MAX_BYTES each) one web process "
                            "reads at once; one more gets 503 + Retry-After, so a few large "
                            "batches cannot take the web tier's memory."),
    "batch_chunk_size": Setting("SWAGDIGITS_BATCH_CHUNK_SIZE", "32", int,
                                "Images a worker predicts in one call when working through a batch."),
    "batch_ttl": Setting("SWAGDIGITS_BATCH_TTL", "86400", int,
                         "Seconds a batch's results stay readable after it was submitted."),
    # An Open Inference Protocol request of several images rides the batch path but waits
    # for its answer; bounded so a stuck batch cannot hold a web thread for ever.
    "infer_timeout": Setting("SWAGDIGITS_INFER_TIMEOUT", "30.0", float,
                             "Seconds POST /v2/models/digits/infer waits for a batch of several "
                             "images to finish before answering 504 (one image waits "
                             "SWAGDIGITS_PREDICT_TIMEOUT)."),
    "rate_limit_predict": Setting("SWAGDIGITS_RATE_LIMIT_PREDICT", "600", int,
                                  "Predictions (HTTP, Socket.IO, and one per image of a batch) one "
                                  "client address may make per rate-limit window (429 above; a batch "
                                  "larger than this is a 413); 0: no limit."),
    "rate_limit_help": Setting("SWAGDIGITS_RATE_LIMIT_HELP", "60", int,
                               "Help images one client address may send per rate-limit window "
                               "(429 above); 0: no limit."),
    # Help images are kept for good and every retraining reads them all: bound the disk
    # they take in all, and how many one address may add a day (issue 17, finding 6).
    "help_max_bytes": Setting("SWAGDIGITS_HELP_MAX_BYTES", str(1024 ** 3), int,
                              "Disk the help data may take in all (normalised PNGs and their "
                              "metadata); a new help image past it gets 507; 0: no limit."),
    "help_client_quota": Setting("SWAGDIGITS_HELP_CLIENT_QUOTA", "1000", int,
                                 "Help images one client address may add per day (UTC), beyond "
                                 "the rate limit (429 + Retry-After above); 0: no limit."),
    "rate_limit_window": Setting("SWAGDIGITS_RATE_LIMIT_WINDOW", "60", int,
                                 "Length of the rate-limit window, in seconds."),
    "allowed_origins": Setting("SWAGDIGITS_ALLOWED_ORIGINS", "", str,
                               "Comma-separated origins (https://host:port) whose pages may open "
                               "Socket.IO connections and send writes (POST); empty: the page's "
                               "own origin only."),
    # DNS rebinding (issue 17): a page whose name is re-pointed at this server is "same
    # origin" to it, Host and Origin both naming the attacker's host; only a list of the
    # names this service answers to tells it apart.
    "allowed_hosts": Setting("SWAGDIGITS_ALLOWED_HOSTS", "", str,
                             "Comma-separated host names (no port) the web tier answers to; any "
                             "other Host header gets 400 (IP literals always pass: health checks "
                             "and probes). Empty: `localhost,127.0.0.1,[::1]` when "
                             "SWAGDIGITS_HOST is a loopback address, otherwise any host (set it "
                             "for every public deployment)."),
    "unsure_below": Setting("SWAGDIGITS_UNSURE_BELOW", "0.6", float,
                            "The drawing page says it is not sure, and offers its two best "
                            "guesses as one-tap answers, when the top probability is below this; "
                            "0: never, 1: always."),
    "drift_window": Setting("SWAGDIGITS_DRIFT_WINDOW", "1000", int,
                            "Answers per predict worker that the drift gauges compare with the "
                            "serving model's evaluation set (a rolling window, restarted with "
                            "each model)."),
    "shadow_max_cpu": Setting("SWAGDIGITS_SHADOW_MAX_CPU", "0.5", float,
                              "A predict worker skips shadow scoring while the shadow models' CPU "
                              "time exceeds this many times production's (0: never shadow)."),
    "shadow_gate_drawings": Setting("SWAGDIGITS_SHADOW_GATE_DRAWINGS", "0", int,
                                    "A retrained candidate that passed the gate is first run in shadow "
                                    "until it has scored this many live drawings, and promoted only if it "
                                    "read no fewer of the ones users labelled right than production "
                                    "(0: no shadow trial)."),
    "canary_share": Setting("SWAGDIGITS_CANARY_SHARE", "0", float,
                            "Share of live drawings a retrained candidate that passed the gate answers "
                            "as a canary instead of being promoted at once (0: promote at once)."),
    "canary_min_answers": Setting("SWAGDIGITS_CANARY_MIN_ANSWERS", "200", int,
                                  "Canary answers needed before its correction rate is judged."),
    "canary_margin": Setting("SWAGDIGITS_CANARY_MARGIN", "0.05", float,
                             "A canary is rolled back when users correct it this much more often "
                             "(correction rate, absolute) than production over the same period."),
}


def is_set(name: str, environ: dict[str, str] | None = None) -> bool:
    """Whether the environment gives setting ``name`` itself (rather than leaving the default)."""
    environ = os.environ if environ is None else environ
    return bool(environ.get(SETTINGS[name].env))


@dataclass(frozen=True)
class Config:
    redis_url: str
    redis_timeout: float
    redis_maxmemory: str
    data_dir: Path
    model_dir: Path
    help_dir: Path
    secret_key: str
    secrets_dir: Path
    host: str
    port: int
    web_bind: str
    web_threads: int
    sockets_per_client: int
    proxy_hops: int
    http_threads: int
    metrics_host: str
    metrics_port: int
    metrics_multiproc_dir: str
    predict_timeout: float
    result_ttl: int
    queue_limit: int
    max_batch: int
    max_upload_bytes: int
    max_image_pixels: int
    max_image_side: int
    model_family: str
    worker_heartbeat: int
    admin_token: str
    log_level: str
    log_lines_per_client: int
    retrain_threshold: int
    gate_max_guard_loss: float
    gate_max_class_loss: float
    promotion_tolerance: float
    help_holdout_share: float
    help_client_max: int
    help_contradiction_below: float
    help_corroborating_clients: int
    retrain_nice: int
    help_weight: float
    batch_max_images: int
    batch_max_bytes: int
    batch_bodies: int
    batch_chunk_size: int
    batch_ttl: int
    infer_timeout: float
    rate_limit_predict: int
    rate_limit_help: int
    help_max_bytes: int
    help_client_quota: int
    rate_limit_window: int
    allowed_origins: str
    allowed_hosts: str
    unsure_below: float
    drift_window: int
    shadow_max_cpu: float
    shadow_gate_drawings: int
    canary_share: float
    canary_min_answers: int
    canary_margin: float

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "Config":
        """Read every setting, converting and checking it, so a typo fails at start."""
        environ = os.environ if environ is None else environ
        values = {}
        for name, setting in SETTINGS.items():
            raw = environ.get(setting.env, setting.default)
            try:
                values[name] = setting.kind(raw)
            except ValueError as exc:
                raise ConfigError(f"{setting.env}={raw!r} is not a valid {setting.kind.__name__}") from exc
        values.update(overrides)
        # model_dir, help_dir and secrets_dir follow data_dir unless set themselves.
        data_dir = Path(values["data_dir"])
        for name, sub in (("model_dir", "models"), ("help_dir", "help_data"), ("secrets_dir", "secrets")):
            if name not in overrides and not environ.get(SETTINGS[name].env):
                values[name] = data_dir / sub
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        for name in ("port", "web_threads", "result_ttl", "queue_limit", "max_batch",
                     "max_upload_bytes", "max_image_pixels", "max_image_side", "worker_heartbeat",
                     "batch_max_images", "batch_max_bytes", "batch_bodies", "batch_chunk_size", "batch_ttl",
                     "rate_limit_window", "drift_window"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{SETTINGS[name].env} must be positive")
        for name in ("predict_timeout", "redis_timeout", "infer_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{SETTINGS[name].env} must be positive")
        self.check_memory()
        if self.secret_key and len(self.secret_key) < 32:
            raise ConfigError(f"{SETTINGS['secret_key'].env} must be at least 32 characters "
                              "(or unset: a random key is made and kept in SWAGDIGITS_SECRETS_DIR)")
        if self.proxy_hops < 0:
            raise ConfigError(f"{SETTINGS['proxy_hops'].env} must be 0 or more")
        if self.log_lines_per_client < 0:
            raise ConfigError(f"{SETTINGS['log_lines_per_client'].env} must be 0 or more")
        if self.sockets_per_client < 0:
            raise ConfigError(f"{SETTINGS['sockets_per_client'].env} must be 0 or more")
        if not 0 < self.http_threads < self.web_threads:
            raise ConfigError(f"{SETTINGS['http_threads'].env} must be at least 1 and less than "
                              f"{SETTINGS['web_threads'].env}")
        if self.retrain_threshold < 0:
            raise ConfigError(f"{SETTINGS['retrain_threshold'].env} must be 0 or more")
        for name in ("gate_max_guard_loss", "gate_max_class_loss"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{SETTINGS[name].env} must be in [0, 1)")
        if not 0.0 <= self.promotion_tolerance < 1.0:
            raise ConfigError(f"{SETTINGS['promotion_tolerance'].env} must be in [0, 1)")
        if not 0.0 <= self.help_holdout_share < 1.0:
            raise ConfigError(f"{SETTINGS['help_holdout_share'].env} must be in [0, 1)")
        for name in ("rate_limit_predict", "rate_limit_help", "help_max_bytes", "help_client_quota"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{SETTINGS[name].env} must be 0 or more")
        if self.help_client_max < 0:
            raise ConfigError(f"{SETTINGS['help_client_max'].env} must be 0 or more")
        if not 0.0 <= self.help_contradiction_below <= 1.0:
            raise ConfigError(f"{SETTINGS['help_contradiction_below'].env} must be in [0, 1]")
        if self.help_corroborating_clients < 1:
            raise ConfigError(f"{SETTINGS['help_corroborating_clients'].env} must be 1 or more")
        if not 0.0 < self.help_weight <= 10.0:
            raise ConfigError(f"{SETTINGS['help_weight'].env} must be in (0, 10]")
        if not 0 <= self.retrain_nice <= 19:
            raise ConfigError(f"{SETTINGS['retrain_nice'].env} must be in 0..19")
        if not 0.0 <= self.canary_share <= 1.0:
            raise ConfigError(f"{SETTINGS['canary_share'].env} must be in [0, 1]")
        if self.canary_min_answers < 1:
            raise ConfigError(f"{SETTINGS['canary_min_answers'].env} must be 1 or more")
        if not 0.0 <= self.canary_margin < 1.0:
            raise ConfigError(f"{SETTINGS['canary_margin'].env} must be in [0, 1)")
        if self.shadow_max_cpu < 0:
            raise ConfigError(f"{SETTINGS['shadow_max_cpu'].env} must be 0 or more")
        if self.shadow_gate_drawings < 0:
            raise ConfigError(f"{SETTINGS['shadow_gate_drawings'].env} must be 0 or more")
        if self.shadow_gate_drawings > 0 and self.shadow_max_cpu == 0:
            raise ConfigError(f"{SETTINGS['shadow_gate_drawings'].env} needs shadow scoring, which "
                              f"{SETTINGS['shadow_max_cpu'].env}=0 turns off: a trial would never end")
        for name in self.allowed_hosts.split(","):
            if not _is_host_name(name.strip()):
                raise ConfigError(f"{SETTINGS['allowed_hosts'].env} lists host names without a port "
                                  f"or scheme, not {name.strip()!r}")
        if not 0.0 <= self.unsure_below <= 1.0:
            raise ConfigError(f"{SETTINGS['unsure_below'].env} must be in [0, 1]")

    def check_memory(self) -> None:
        if not re.fullmatch(r"[0-9]+(b|kb|mb|gb)?", self.redis_maxmemory.strip().lower()):
            raise ConfigError(f"{SETTINGS['redis_maxmemory'].env} must be a size such as 512mb")

    def socket_limit(self) -> int:
        """How many Socket.IO connections one web process holds at most: its threads minus HTTP's."""
        return self.web_threads - self.http_threads

    def origins(self) -> list[str]:
        """``SWAGDIGITS_ALLOWED_ORIGINS`` as a list (empty: the page's own origin only)."""
        return [o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()]

    def host_names(self) -> tuple[str, ...]:
        """The Host names the web tier answers to, lower case; empty: any (see ``allowed_hosts``)."""
        given = tuple(h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip())
        if given:
            return given
        return LOOPBACK_HOST_NAMES if self.host.strip().lower() in LOOPBACK_BIND else ()

    def as_env(self) -> dict[str, str]:
        """The environment that makes a child process build this same Config.

        Empty values whose default is empty are left out: a set-but-empty
        PROMETHEUS_MULTIPROC_DIR would switch prometheus_client into
        multiprocess mode with no folder.
        """
        return {SETTINGS[f.name].env: str(getattr(self, f.name)) for f in fields(self)
                if not (getattr(self, f.name) == "" and SETTINGS[f.name].default == "")}
