"""Keeping a threaded process's memory flat.

glibc gives each thread that allocates concurrently its own malloc arena (up
to 8 per core), and pages touched in an arena are rarely returned: a web
process with dozens of request threads grows by tens of megabytes that way.
Two arenas are plenty for processes whose threads mostly wait on I/O.
"""
from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Call before starting threads; a no-op where glibc is not the allocator."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        log.debug("mallopt unavailable; malloc arenas not limited")
