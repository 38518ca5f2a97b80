"""Writing files so a reader never sees half of one: write a temp file, fsync, then move it in."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step."""
    tmp = _synced_temp(Path(path), data)
    try:
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise


def create_exclusive(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` in one step, only if it does not exist yet.

    The temp file is hard-linked into place: ``link`` fails if the name
    exists, so of several writers exactly one wins. Returns whether we did.
    """
    tmp = _synced_temp(Path(path), data)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        _discard(tmp)


def _synced_temp(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        _discard(tmp)
        raise
    return tmp


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
