"""The one place a worker keeps its live model.

The model is loaded explicitly at start (never at import) and replaced whole
by ``swap``: a job reads ``holder.current`` once and uses that object for its
whole batch, so every answer names the version that actually computed it,
even if a swap lands meanwhile.
"""
from __future__ import annotations

import threading

from shared.model.base import Model


class NoModelLoaded(RuntimeError):
    pass


class ModelHolder:
    def __init__(self) -> None:
        self._current: Model | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> Model:
        model = self._current
        if model is None:
            raise NoModelLoaded("the worker has not loaded a model yet")
        return model

    @property
    def version(self) -> str | None:
        model = self._current
        return None if model is None else model.version

    def swap(self, model: Model) -> Model | None:
        """Put ``model`` live; return the one it replaced."""
        with self._lock:
            previous, self._current = self._current, model
        return previous
