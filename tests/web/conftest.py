"""Web unit tests: the Flask test client over fakeredis, no worker, no server.

No app built here talks to a real Redis: Socket.IO's Redis message queue is
replaced by an in-process manager that records what the app publishes, so an
event such as ``model_changed`` can be checked and never reaches a Redis the
tests did not start (the machine's own, on 127.0.0.1:6379).
"""
import fakeredis
import pytest
import socketio as python_socketio

from shared.config import Config
import web.sockets
from web import create_app
from web.services import Services


class RecordingManager(python_socketio.Manager):
    """In-process Socket.IO manager that keeps every event the app emits."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.emitted: list[tuple[str, object, object]] = []

    def emit(self, event, data, namespace, room=None, **kwargs):
        self.emitted.append((event, data, room))
        return super().emit(event, data, namespace, room=room, **kwargs)


@pytest.fixture(autouse=True)
def socket_manager(monkeypatch) -> RecordingManager:
    manager = RecordingManager()
    monkeypatch.setattr(web.sockets, "RedisQueue", lambda *args, **kwargs: manager)
    return manager


@pytest.fixture
def fake_conn():
    return fakeredis.FakeRedis()


@pytest.fixture
def web_config(tmp_path):
    return Config.from_env({}, data_dir=tmp_path, model_dir=tmp_path / "models",
                           help_dir=tmp_path / "help_data", predict_timeout=0.2, queue_limit=3,
                           max_upload_bytes=200_000, max_image_pixels=1_000_000, max_image_side=2000,
                           batch_max_images=20, batch_max_bytes=2_000_000, batch_chunk_size=4)


@pytest.fixture
def app(web_config, fake_conn):
    app = create_app(web_config, services=Services.connect(web_config, conn=fake_conn))
    app.testing = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def frozen_rate_clock(monkeypatch):
    """Rate-limit windows read this clock: set to the middle of a window, so no boundary
    falls between a test's requests and splits its count. ``clock.now += s`` moves it."""
    import types

    from web import rate_limit

    clock = types.SimpleNamespace(now=1_000_000_000.0 + 0.5)
    clock.time = lambda: clock.now
    monkeypatch.setattr(rate_limit, "time", clock)
    return clock
