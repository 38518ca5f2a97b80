"""The web tier's /metrics reads queue state from a real Redis at scrape time, and survives an outage."""
import time

import redis
from prometheus_client import CollectorRegistry
from redis.backoff import NoBackoff
from redis.retry import Retry
from shared.messaging import retrain_trigger

from shared.help_store import HelpStore
from shared.server_secrets import ServerSecrets
from shared.messaging import heartbeat
from shared.messaging import protocol as p
from shared.messaging.predict_queue import PredictQueue
from swagdigits.embedded_redis import free_port
from web.metrics import QueueStateCollector


def collected(collector) -> dict:
    """Every sample a collector yields, keyed by (name, labels)."""
    registry = CollectorRegistry()
    registry.register(collector)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples}


def test_queue_state_is_read_from_redis_when_scraped(redis_conn, tmp_path):
    queue = PredictQueue(redis_conn)
    for _ in range(3):
        queue.submit(b"png", limit=10)
    retrain_trigger.retrain_queue(redis_conn).enqueue(p.RETRAIN_JOB_FUNC)
    heartbeat.beat(redis_conn, "w1", {"role": "predict"}, 5)
    heartbeat.beat(redis_conn, "r1", {"role": "retrain"}, 5)
    redis_conn.set(p.HELP_TOTAL_KEY, 20)
    redis_conn.set(p.HELP_TRAINED_KEY, 3)
    time.sleep(0.05)
    got = collected(QueueStateCollector(redis_conn, heartbeat_s=5, help_store=HelpStore(tmp_path, redis_conn, secrets=ServerSecrets(tmp_path / "secrets"))))
    assert got[("swagdigits_redis_up", ())] == 1
    assert got[("swagdigits_queue_depth", (("queue", "predict"),))] == 3
    assert got[("swagdigits_queue_depth", (("queue", "batch"),))] == 0
    assert got[("swagdigits_queue_depth", (("queue", "retrain"),))] == 1
    assert 0.04 < got[("swagdigits_queue_oldest_job_age_seconds", (("queue", "predict"),))] < 5
    assert 0 < got[("swagdigits_queue_oldest_job_age_seconds", (("queue", "retrain"),))] < 5
    assert got[("swagdigits_jobs_enqueued_total", (("queue", "predict"),))] == 3
    assert got[("swagdigits_predict_workers_live", ())] == 1
    assert got[("swagdigits_help_images_pending", ())] == 17


def test_a_redis_outage_is_a_metric_not_a_failed_scrape():
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    got = collected(QueueStateCollector(dead, heartbeat_s=5))
    assert got == {("swagdigits_redis_up", ()): 0}
