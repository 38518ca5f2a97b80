"""The operator commands of README's table, run as an operator runs them: ``python -m swagdigits ...``
in a child process, against a private redis-server and a copy of a trained model store."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from shared.messaging import protocol as p
from shared.model.store import PRODUCTION, RETIRED, ModelRegistry
from tests.integration.conftest import Proc


@pytest.fixture
def cli_env(config) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWAGDIGITS_", "REDIS_URL"))}
    # The linear family trains in seconds: these tests are about the commands, not the model.
    return {**env, **config.as_env(), "SWAGDIGITS_MODEL_FAMILY": "linear", "SWAGDIGITS_LOG_LEVEL": "WARNING"}


def swagdigits(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "swagdigits", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _second_model(model_dir) -> str:
    registry = ModelRegistry(model_dir)
    current = registry.load_production()
    return registry.publish(registry.load_trained(current.version), {**current.metadata, "source": "copy"})


def _messages(pubsub, deadline_s: float = 10.0) -> list[tuple[str, bytes]]:
    """Everything published on the subscribed channels until nothing more arrives."""
    got, deadline = [], time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1.0)
        if message is None:
            if got:
                break
            continue
        got.append((message["channel"].decode(), message["data"]))
    return got


def test_model_list_show_promote_and_rollback(cli_env, model_dir, redis_conn):
    registry = ModelRegistry(model_dir)
    first, second = registry.production_id(), _second_model(model_dir)

    listed = swagdigits(cli_env, "model", "list")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split()[2] for line in listed.stdout.splitlines()[1:]}
    assert rows == {first: PRODUCTION, second: "-"}, listed.stdout

    shown = swagdigits(cli_env, "model", "show", second)
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert info["model"]["model_id"] == second and info["extra"]["source"] == "copy"
    assert swagdigits(cli_env, "model", "show", "no-such-model").returncode == 1

    pubsub = redis_conn.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(p.MODEL_EVENTS_CHANNEL, p.SOCKETIO_CHANNEL)
    promoted = swagdigits(cli_env, "model", "promote", second)
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.strip() == f"model {second} is production (was {first})"
    assert registry.production_id() == second
    messages = _messages(pubsub)
    [worker_event] = [json.loads(data) for channel, data in messages if channel == p.MODEL_EVENTS_CHANNEL]
    assert (worker_event["model_version"], worker_event["previous"]) == (second, first)
    assert any(p.EVENT_MODEL_CHANGED.encode() in data and second.encode() in data
               for channel, data in messages if channel == p.SOCKETIO_CHANNEL), "browsers are told too"

    rolled = swagdigits(cli_env, "model", "rollback")
    assert rolled.returncode == 0, rolled.stderr
    assert rolled.stdout.strip() == f"rolled back: model {first} is production (was {second})"
    states = {m.model_id: m.states for m in ModelRegistry(model_dir).list()}
    assert states == {first: (PRODUCTION,), second: (RETIRED,)}
    [event] = [json.loads(d) for c, d in _messages(pubsub) if c == p.MODEL_EVENTS_CHANNEL]
    assert event["model_version"] == first

    unknown = swagdigits(cli_env, "model", "promote", "no-such-model")
    assert unknown.returncode == 1 and "no model no-such-model" in unknown.stderr
    assert ModelRegistry(model_dir).production_id() == first


def test_rollback_with_nothing_retired_fails_and_changes_nothing(cli_env, model_dir):
    production = ModelRegistry(model_dir).production_id()
    res = swagdigits(cli_env, "model", "rollback")
    assert res.returncode == 1 and "no retired model" in res.stderr
    assert ModelRegistry(model_dir).production_id() == production


def test_train_no_promote_publishes_without_touching_production(cli_env, model_dir):
    registry = ModelRegistry(model_dir)
    production = registry.production_id()
    res = swagdigits(cli_env, "train", "--no-promote")
    assert res.returncode == 0, res.stderr
    assert "now production" not in res.stdout
    new = {m.model_id: m for m in registry.list()}.keys() - {production}
    assert len(new) == 1, res.stdout
    [new_id] = new
    assert res.stdout.startswith(f"model {new_id}: held-out accuracy")
    assert registry.production_id() == production
    assert {m.model_id: m.states for m in registry.list()}[new_id] == ()
    # Without the flag, the next one goes live.
    res = swagdigits(cli_env, "train")
    assert res.returncode == 0 and res.stdout.rstrip().endswith("now production")
    assert registry.production_id() not in (production, new_id)


def test_retrain_in_process_prints_the_verdict_and_the_store_follows_it(cli_env, model_dir, help_store):
    registry = ModelRegistry(model_dir)
    before = {m.model_id for m in registry.list()}
    production = registry.production_id()
    res = swagdigits(cli_env, "retrain", "--in-process", timeout=600)
    assert res.returncode == 0, res.stderr
    verdict = json.loads(res.stdout)
    assert verdict["outcome"] in ("promoted", "rejected"), verdict
    after = {m.model_id: m.states for m in registry.list()}
    assert after.keys() - before == {verdict["model_id"]}
    expected = verdict["model_id"] if verdict["outcome"] == "promoted" else production
    assert registry.production_id() == expected
    assert help_store.pending() == 0


def test_retrain_wait_times_out_with_status_1_when_no_retrain_worker_runs(cli_env, redis_conn):
    res = swagdigits(cli_env, "retrain", "--wait", "--timeout", "2")
    assert res.returncode == 1
    job_id = res.stdout.split()[2]
    assert res.stdout.startswith(f"retrain job {job_id} queued")
    assert f"retrain job {job_id} still queued after 2s" in res.stderr


def test_retrain_wait_prints_the_retrain_workers_verdict(cli_env, model_dir, help_store, tmp_path):
    worker = Proc(["worker", "retrain"], cli_env, tmp_path / "retrain-worker.log")
    try:
        res = swagdigits(cli_env, "retrain", "--wait", "--timeout", "500", timeout=600)
        assert res.returncode == 0, res.stderr + worker.log()[-3000:]
        header, _, body = res.stdout.partition("\n")
        assert header.startswith("retrain job ") and header.endswith(" queued")
        verdict = json.loads(body)
        assert verdict["outcome"] in ("promoted", "rejected")
        assert verdict["model_id"] in {m.model_id for m in ModelRegistry(model_dir).list()}
    finally:
        worker.stop()
