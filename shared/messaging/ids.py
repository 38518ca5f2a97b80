"""Ids of jobs and batches: made here, and checked here before any Redis lookup uses one."""
from __future__ import annotations

import re
import uuid

_ID = re.compile(r"[0-9a-f]{32}")


def new_id() -> str:
    return uuid.uuid4().hex


def is_id(value) -> bool:
    """Whether ``value`` has the shape of an id ``new_id`` makes (a whole match: no trailing newline)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None
