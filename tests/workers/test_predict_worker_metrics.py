"""The predict worker's own /metrics: real redis-server, real model, real HTTP scrape."""
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from shared.messaging.predict_queue import PredictQueue
from shared.model.store import ModelRegistry
from testkit.drawings import digit_png
from workers.predict_worker import PredictWorker


def scrape(port) -> dict:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture(scope="module")
def metrics_port():
    from shared import metrics
    return metrics.serve(0, addr="127.0.0.1")


@pytest.fixture
def worker(config, redis_conn):
    w = PredictWorker(config, redis_conn, ModelRegistry(config.model_dir), None, name="w-metrics")
    w.lifecycle.load_at_start()
    return w


def test_a_batch_shows_up_in_the_scrape(worker, redis_conn, metrics_port):
    before = scrape(metrics_port)
    queue = PredictQueue(redis_conn)
    queue.submit(digit_png(7), limit=10)
    queue.submit(digit_png(5)[:200], limit=10)  # corrupt: fails alone
    assert worker.run_once(block_ms=100) == 2
    after = scrape(metrics_port)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("swagdigits_predictions_total", digit="7") == 1
    assert delta("swagdigits_prediction_jobs_failed_total", reason="bad_image") == 1
    assert delta("swagdigits_prediction_end_to_end_seconds_count") == 2
    assert delta("swagdigits_prediction_queue_wait_seconds_count") == 2
    assert delta("swagdigits_prediction_confidence_ratio_count") == 1
    assert after[("swagdigits_last_predicted_digit", ())] == 7
    assert after[("swagdigits_model_info", (("version", worker.holder.version),))] == 1


def test_the_drift_gauges_compare_the_last_answers_with_the_serving_models_reference(worker, metrics_port):
    reference = worker.holder.current.metadata["reference"]
    assert sum(reference["confidence_hist"]) == reference["n"] > 0
    queue = PredictQueue(worker.conn)
    for _ in range(6):
        queue.submit(digit_png(1), limit=10)
    worker.run_once(block_ms=100)
    after = scrape(metrics_port)
    assert after[("swagdigits_drift_window_answers", ())] == 6
    # six 1s against a reference of about 10% per digit: a large shift
    assert after[("swagdigits_prediction_drift_psi", ())] > 1.0
    assert 0 <= after[("swagdigits_low_confidence_share", ())] <= 1
    assert 0 <= after[("swagdigits_low_confidence_reference_share", ())] < 0.5

    worker.metrics.serving("next-version", swapped=True, reference=reference)   # a new model: a new window
    assert scrape(metrics_port)[("swagdigits_drift_window_answers", ())] == 0


def test_a_refused_model_is_counted_and_the_old_one_keeps_its_info(worker, metrics_port, monkeypatch):
    from shared.model.store import ModelStoreError

    before = scrape(metrics_port)
    monkeypatch.setattr(worker.registry, "production_id", lambda: "other-version")
    monkeypatch.setattr(worker.registry, "load", lambda _id: (_ for _ in ()).throw(ModelStoreError("bad sha")))
    assert worker.lifecycle.refresh() is False
    after = scrape(metrics_port)
    assert after[("swagdigits_model_swap_failures_total", ())] - before.get(
        ("swagdigits_model_swap_failures_total", ()), 0) == 1
    assert after[("swagdigits_model_info", (("version", worker.holder.version),))] == 1


def test_a_worker_serves_its_metrics_on_loopback_unless_told_otherwise(worker):
    import psutil

    port = worker.serve_metrics()
    listening = [c.laddr for c in psutil.Process().net_connections(kind="tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening
    assert "swagdigits_predictions_total" in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
