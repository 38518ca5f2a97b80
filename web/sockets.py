"""Socket.IO: browsers connect here; workers' answers arrive through the Redis message queue."""
from __future__ import annotations

from flask import Flask
from flask_socketio import SocketIO

from shared import protocol as p

# Threading mode with simple-websocket, served by gunicorn's threaded worker:
# the mode Flask-SocketIO recommends now that eventlet is unmaintained.
ASYNC_MODE = "threading"

socketio = SocketIO()


def init_app(app: Flask) -> None:
    config = app.extensions["swagdigits"].config
    socketio.init_app(app, async_mode=ASYNC_MODE, message_queue=config.redis_url,
                      channel=p.SOCKETIO_CHANNEL)
