"""Socket.IO event handlers through Flask-SocketIO's test client.

The queue is our own test redis-server and the worker is a real
PredictWorker with a real model; only Socket.IO's Redis message queue is
replaced by an in-process manager, because the test client refuses message
queues. The Redis path (worker -> channel -> whichever web process holds the
browser) is covered by tests/integration/test_sockets.py.
"""
from __future__ import annotations

import base64
import dataclasses
import io
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
import socketio as python_socketio
from PIL import Image

from shared.messaging import protocol as p
from shared.messaging.batch_queue import BatchQueue
from shared.messaging.predict_queue import PredictQueue
from shared.model.store import ModelRegistry
from swagdigits.embedded_redis import free_port
from testkit.drawings import digit_png
from web import create_app
from web.deadlines import ReplyDeadlines
from web.services import Services
from web.sockets import socketio
from workers.predict_worker import PredictWorker

DELIVERY_WAIT_S = 5.0


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


@pytest.fixture
def sock_config(config):
    return dataclasses.replace(config, predict_timeout=0.4, queue_limit=3, max_upload_bytes=100_000)


def make_app(cfg, conn):
    app = create_app(cfg, services=Services.connect(cfg, conn=conn), socket_manager=python_socketio.Manager())
    app.testing = True
    return app


@pytest.fixture
def app(sock_config, redis_conn):
    return make_app(sock_config, redis_conn)


class Browser:
    """A test client that collects what it is sent, so a test can wait for one event."""

    def __init__(self, app):
        self.client = socketio.test_client(app)
        assert self.client.is_connected()
        received = self.client.get_received()
        sessions = [m["args"][0] for m in received if m["name"] == p.EVENT_SESSION]
        self.session: dict | None = sessions[0] if sessions else None
        self.seen: list[dict] = [m for m in received if m["name"] != p.EVENT_SESSION]

    @property
    def sid(self) -> str:
        return socketio.server.manager.sid_from_eio_sid(self.client.eio_sid, "/")

    def poll(self) -> list[dict]:
        self.seen += self.client.get_received()
        return self.seen

    def events(self, name: str) -> list:
        return [m["args"][0] for m in self.poll() if m["name"] == name]

    def wait(self, name: str, timeout: float = DELIVERY_WAIT_S) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.events(name)
            if got:
                return got[0]
            time.sleep(0.01)
        raise AssertionError(f"no {name!r} event within {timeout}s; got {self.seen}")

    def predict(self, payload) -> dict:
        return self.client.emit(p.EVENT_PREDICT, payload, callback=True)


@pytest.fixture
def browser(app):
    b = Browser(app)
    yield b
    b.client.disconnect()


class ServerPusher:
    """shared.messaging.push.Pusher's interface, emitting through this process's Socket.IO server."""

    def emit(self, event, data, room=None):
        socketio.server.emit(event, data, to=room, namespace="/")


@pytest.fixture
def worker(sock_config, redis_conn):
    w = PredictWorker(sock_config, redis_conn, ModelRegistry(sock_config.model_dir),
                      ServerPusher(), name="w-sockets")
    w.lifecycle.load_at_start()
    return w


def test_a_drawing_is_queued_tagged_with_the_senders_room(browser, redis_conn):
    ack = browser.predict({"image": data_url(digit_png(3)), "seq": 7})
    assert ack["seq"] == 7 and len(ack["job_id"]) == 32
    [job] = PredictQueue(redis_conn).claim("test", 10, block_ms=10)
    assert (job.job_id, job.room, job.wants_reply) == (ack["job_id"], browser.sid, False)


def test_the_workers_answer_reaches_the_sender_and_no_one_else(app, browser, worker):
    other = Browser(app)
    ack = browser.predict({"image": data_url(digit_png(3)), "seq": 1})
    assert worker.run_once(block_ms=100) == 1
    result = browser.wait(p.EVENT_PREDICTION)
    assert result["job_id"] == ack["job_id"] and result["digit"] == 3
    assert result["model_version"] == worker.holder.version
    assert len(result["probabilities"]) == 10 and "predict_ms" in result["timings"]
    # Delivery is synchronous in-process: had the other one been sent anything, it would be there.
    assert other.poll() == []
    other.client.disconnect()


def gif() -> bytes:
    out = io.BytesIO()
    Image.new("L", (8, 8)).save(out, format="GIF")
    return out.getvalue()


@pytest.mark.parametrize("payload, status", [
    ("just a string", 400),
    ({"seq": 3}, 400),
    ({"image": 42, "seq": 3}, 400),
    ({"image": "data:image/png;base64,@@@@", "seq": 3}, 400),
    ({"image": data_url(gif()), "seq": 3}, 415),
    ({"image": data_url(b"\x89PNG" + b"\0" * 200_000), "seq": 3}, 413),
])
def test_bad_drawings_come_back_as_an_error_event_and_nothing_is_queued(browser, redis_conn, payload, status):
    ack = browser.predict(payload)
    assert ack["status"] == status and "job_id" not in ack
    error = browser.wait(p.EVENT_PREDICTION_ERROR)
    assert error["status"] == status and error["error"]
    assert error["seq"] == (3 if isinstance(payload, dict) else None)
    assert PredictQueue(redis_conn).depth() == 0


def test_a_full_queue_is_an_error_event_not_a_silent_drop(browser, redis_conn, sock_config):
    queue = PredictQueue(redis_conn)
    for _ in range(sock_config.queue_limit):
        queue.submit(digit_png(1), sock_config.queue_limit)
    browser.predict({"image": data_url(digit_png(2)), "seq": 9})
    error = browser.wait(p.EVENT_PREDICTION_ERROR)
    assert (error["status"], error["seq"]) == (503, 9)


def test_no_worker_answering_in_time_is_reported_as_a_timeout(browser):
    ack = browser.predict({"image": data_url(digit_png(2)), "seq": 4})
    error = browser.wait(p.EVENT_PREDICTION_ERROR, timeout=DELIVERY_WAIT_S)
    assert (error["status"], error["job_id"], error["seq"]) == (504, ack["job_id"], 4)
    assert "no worker answered" in error["error"]


def test_a_redis_outage_is_an_error_event(sock_config, redis_conn):
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    b = Browser(make_app(sock_config, dead))
    ack = b.predict({"image": data_url(digit_png(2)), "seq": 1})
    assert ack["status"] == 503
    assert b.wait(p.EVENT_PREDICTION_ERROR)["status"] == 503


def test_message_size_limit_follows_the_upload_limit(app, sock_config):
    limit = socketio.server.eio.max_http_buffer_size
    assert sock_config.max_upload_bytes * 4 / 3 < limit < sock_config.max_upload_bytes * 1.5


def test_deadlines_report_only_jobs_without_a_result(redis_conn):
    sent = []
    deadlines = ReplyDeadlines(PredictQueue(redis_conn), lambda e, d, r: sent.append((e, d, r)), timeout_s=1)
    queue = PredictQueue(redis_conn)
    done, waiting = queue.submit(digit_png(1), 10), queue.submit(digit_png(2), 10)
    redis_conn.hset(p.JOB_KEY.format(done), "state", p.FINISHED)
    assert deadlines.check([(0, done, "room-a", 1), (0, waiting, "room-b", 2)]) == 1
    [(event, data, room)] = sent
    assert (event, data["job_id"], data["seq"], room) == (p.EVENT_PREDICTION_ERROR, waiting, 2, "room-b")


def _rooms(browser) -> list[str]:
    return socketio.server.rooms(browser.sid, namespace="/")


def test_subscribing_to_an_unknown_batch_joins_no_room(browser):
    ack = browser.client.emit(p.EVENT_SUBSCRIBE_BATCH, {"batch_id": "a" * 32}, callback=True)
    assert ack == {"error": "no such batch"}
    assert p.BATCH_ROOM.format("a" * 32) not in _rooms(browser)


def test_a_batch_id_with_a_trailing_newline_is_not_a_batch_id(browser, redis_conn):
    batch_id, _ = BatchQueue(redis_conn).submit([digit_png(1)])
    ack = browser.client.emit(p.EVENT_SUBSCRIBE_BATCH, {"batch_id": batch_id + "\n"}, callback=True)
    assert ack == {"error": "batch_id must be a batch id"}
    assert not [room for room in _rooms(browser) if room.startswith(p.BATCH_ROOM.format(""))]
    good = browser.client.emit(p.EVENT_SUBSCRIBE_BATCH, {"batch_id": batch_id}, callback=True)
    assert good["total"] == 1 and p.BATCH_ROOM.format(batch_id) in _rooms(browser)


def _http_predict(app, sid: str, headers: dict):
    return app.test_client().post(f"/api/predict?wait=0&sid={sid}", headers=headers,
                                  json={"image": data_url(digit_png(5))})


def test_each_socket_gets_its_own_secret_on_connect(app, browser):
    other = Browser(app)
    assert browser.session["sid"] == browser.sid and other.session["sid"] == other.sid
    assert len(browser.session["secret"]) == 32 and browser.session["secret"] != other.session["secret"]
    other.client.disconnect()


def test_http_answers_go_to_a_socket_only_with_its_secret(app, browser, redis_conn, sock_config):
    """Owner's secret: queued for that socket. Missing, wrong, or another socket's: 403, nothing queued."""
    other = Browser(app)
    for headers in ({}, {"X-Socket-Secret": "0" * 32}, {"X-Socket-Secret": other.session["secret"]}):
        res = _http_predict(app, browser.sid, headers)
        assert res.status_code == 403 and res.json["status"] == 403, headers
        assert "X-Socket-Secret" in res.json["error"]
    assert PredictQueue(redis_conn).depth() == 0
    res = _http_predict(app, browser.sid, {"X-Socket-Secret": browser.session["secret"]})
    assert res.status_code == 202, res.json
    [job] = PredictQueue(redis_conn).claim("test", 10, block_ms=10)
    assert (job.job_id, job.room) == (res.json["job_id"], browser.sid)
    # Any web process checks it: another app on the same Redis accepts this secret too.
    sid, secret = browser.sid, browser.session["secret"]
    other.client.disconnect()
    elsewhere = make_app(sock_config, redis_conn)
    assert _http_predict(elsewhere, sid, {"X-Socket-Secret": secret}).status_code == 202


def test_without_redis_a_socket_still_connects_but_gets_no_secret(sock_config):
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    b = Browser(make_app(sock_config, dead))
    assert b.client.is_connected() and b.session is None


def test_socket_predictions_spend_the_addresss_rate_limit_and_the_excess_is_a_429_event(
        sock_config, redis_conn, frozen_rate_clock):
    cfg = dataclasses.replace(sock_config, rate_limit_predict=2, queue_limit=100)
    b = Browser(make_app(cfg, redis_conn))
    acks = [b.predict({"image": data_url(digit_png(d)), "seq": d}) for d in (1, 2, 3)]
    assert ["job_id" in ack for ack in acks] == [True, True, False]
    assert acks[2]["status"] == 429 and "too many predict requests" in acks[2]["error"]
    error = b.wait(p.EVENT_PREDICTION_ERROR)
    assert (error["status"], error["seq"]) == (429, 3)
    assert PredictQueue(redis_conn).depth() == 2, "the refused drawing is not queued"
    # The next window gives the address its allowance back.
    frozen_rate_clock.now += cfg.rate_limit_window
    assert "job_id" in b.predict({"image": data_url(digit_png(4)), "seq": 4})
    b.client.disconnect()
