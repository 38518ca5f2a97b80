"""Stand-ins for the parts a test wants to observe rather than run."""


class RecordingPusher:
    """Takes the place of ``shared.messaging.push.Pusher`` and remembers every event emitted."""

    def __init__(self):
        self.events = []

    def emit(self, event, data, room=None):
        self.events.append((event, data, room))
