"""shared.metrics: what each process records, and how multiprocess exposition adds up."""
import os
import subprocess
import sys
import time

import pytest
from prometheus_client import CollectorRegistry

from shared import metrics


def value(registry, name, **labels):
    got = registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def collected(collector) -> dict:
    """Every sample a collector yields, keyed by (name, labels)."""
    registry = CollectorRegistry()
    registry.register(collector)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in registry.collect() for s in family.samples}


def test_a_batch_counts_digits_latencies_confidence_and_failures():
    registry = CollectorRegistry()
    m = metrics.PredictMetrics.build(registry)
    assert value(registry, "swagdigits_predictions_total", digit="3") == 0  # exists before any prediction
    now = time.time()
    m.observe_batch(claimed_at=now, compute_s=0.004, done_at=now + 0.005, enqueued_at=[now - 0.0015, now - 0.0008],
                    digits=[3, 7], confidences=[0.97, 0.55], failures={"bad_image": 1, "worker_died": 0})
    assert value(registry, "swagdigits_predictions_total", digit="3") == 1
    assert value(registry, "swagdigits_predictions_total", digit="7") == 1
    assert value(registry, "swagdigits_prediction_queue_wait_seconds_count") == 2
    # waits of 1 and 2 ms land in their own millisecond buckets
    assert value(registry, "swagdigits_prediction_queue_wait_seconds_bucket", le="0.001") == 1
    assert value(registry, "swagdigits_prediction_queue_wait_seconds_bucket", le="0.002") == 2
    assert value(registry, "swagdigits_prediction_end_to_end_seconds_bucket", le="0.0075") == 2
    assert value(registry, "swagdigits_prediction_compute_seconds_count") == 1
    assert value(registry, "swagdigits_prediction_batch_size_sum") == 2
    assert value(registry, "swagdigits_prediction_confidence_ratio_bucket", le="0.6") == 1
    assert value(registry, "swagdigits_last_predicted_digit") == 7
    assert value(registry, "swagdigits_last_prediction_timestamp_seconds") == pytest.approx(now + 0.005)
    assert value(registry, "swagdigits_prediction_jobs_failed_total", reason="bad_image") == 1


def test_the_model_info_series_follows_the_live_version_and_swaps_are_counted():
    registry = CollectorRegistry()
    m = metrics.PredictMetrics.build(registry)
    m.serving("v1", swapped=False)
    m.serving("v2", swapped=True)
    assert value(registry, "swagdigits_model_info", version="v2") == 1
    assert registry.get_sample_value("swagdigits_model_info", {"version": "v1"}) is None
    assert value(registry, "swagdigits_model_swaps_total") == 1


def test_retrain_runs_are_counted_by_outcome_and_unknown_outcomes_refused():
    registry = CollectorRegistry()
    m = metrics.RetrainMetrics.build(registry)
    m.record("rejected", 12.5, candidate_acc=0.91, production_acc=0.93, help_images=40)
    assert value(registry, "swagdigits_retrain_runs_total", outcome="rejected") == 1
    assert value(registry, "swagdigits_retrain_runs_total", outcome="promoted") == 0
    assert value(registry, "swagdigits_retrain_candidate_accuracy_ratio") == 0.91
    assert value(registry, "swagdigits_retrain_production_accuracy_ratio") == 0.93
    assert value(registry, "swagdigits_retrain_help_images") == 40
    with pytest.raises(ValueError):
        m.record("exploded", 1.0)


_CHILD = """
from shared import metrics
metrics.record_help_image()
metrics.web().observe_request('/api/predict', 'POST', 200, 0.01)
"""


def test_in_multiprocess_mode_the_exposition_adds_every_process_up(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", _CHILD], env=env, check=True, cwd=os.getcwd())
    registry = metrics.registry_for_exposition(str(tmp_path))
    text = metrics.render(registry).decode()
    assert "swagdigits_help_images_received_total 2.0" in text
    assert 'swagdigits_http_requests_total{method="POST",route="/api/predict",status="200"} 2.0' in text


def test_batch_results_count_by_digit_and_bad_images_as_failures():
    registry = CollectorRegistry()
    m = metrics.PredictMetrics.build(registry)
    probs = [0.0] * 10
    probs[4] = 0.8
    m.observe_batch_results([{"digit": 4, "probabilities": probs}, {"error": "not a PNG"}])
    assert value(registry, "swagdigits_predictions_total", digit="4") == 1
    assert value(registry, "swagdigits_prediction_jobs_failed_total", reason="bad_image") == 1
    assert value(registry, "swagdigits_prediction_confidence_ratio_count") == 1
    assert value(registry, "swagdigits_prediction_end_to_end_seconds_count") == 0
