"""Send-only Socket.IO client: lets a worker emit to a browser through Redis.

Workers never import the web tier; they publish on the same Redis channel the
web processes' Flask-SocketIO message queue listens on, and whichever web
process holds the browser's connection delivers the event.
"""
from __future__ import annotations

import socketio

from shared.messaging import protocol as p


class Pusher:
    def __init__(self, redis_url: str):
        self._manager = socketio.RedisManager(redis_url, channel=p.SOCKETIO_CHANNEL, write_only=True)

    def emit(self, event: str, data: dict, room: str | None = None) -> None:
        self._manager.emit(event, data, room=room, namespace="/")
