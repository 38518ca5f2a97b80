"""Telling a browser that no worker answered its drawing in time.

A drawing sent over Socket.IO has no HTTP request waiting on it, so nothing
would ever notice a missing answer (no worker running, all of them stuck).
One thread per web process keeps a heap of deadlines; when one passes it
reads the job's state with a single pipelined round trip for everything due
and, for a job still queued or started, emits ``prediction_error`` (504) to
the room that asked. Cheaper than a sleeping thread per drawing, and the
page can show the failure in words instead of spinning forever.
"""
from __future__ import annotations

import heapq
import logging
import threading
import time
from typing import Callable

from shared.messaging import protocol as p
from shared.messaging.predict_queue import PredictQueue

log = logging.getLogger(__name__)

Emit = Callable[[str, dict, str], None]   # (event, data, room)


class ReplyDeadlines:
    def __init__(self, queue: PredictQueue, emit: Emit, timeout_s: float):
        self.queue = queue
        self.emit = emit
        self.timeout_s = timeout_s
        self._heap: list[tuple[float, str, str, object]] = []
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, job_id: str, room: str, seq: object = None) -> None:
        """Report job ``job_id`` to ``room`` as timed out unless it finishes within the timeout."""
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + self.timeout_s, job_id, room, seq))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="reply-deadlines", daemon=True)
                self._thread.start()
            self._cv.notify()

    def pending(self) -> int:
        with self._cv:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._heap:
                    self._cv.wait()
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                now = time.monotonic()
                due = []
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap))
            try:
                self.check(due)
            except Exception:  # a Redis outage must not kill the thread
                log.exception("could not check %d reply deadlines", len(due))

    def check(self, due: list[tuple[float, str, str, object]]) -> int:
        """Emit a timeout for every job in ``due`` that has no result yet; return how many."""
        late = 0
        for (_, job_id, room, seq), state in zip(due, self.queue.states([job_id for _, job_id, _, _ in due])):
            if state in (p.FINISHED, p.FAILED):
                continue
            late += 1
            self.emit(p.EVENT_PREDICTION_ERROR,
                      {"job_id": job_id, "seq": seq, "status": 504,
                       "error": f"no worker answered within {self.timeout_s:g}s; please try again"},
                      room)
        if late:
            log.warning("%d drawing(s) got no answer within %gs", late, self.timeout_s)
        return late
