"""Labelled help images: stored once each, atomically, and counted across web processes.

When the model gets a drawing wrong the user sends the right label; that
drawing becomes training data. Layout under ``help_dir``::

    <label>/<id>.png     the image as the caller gives it: the web tier and
                         ``swagdigits import`` give a normalised PNG
                         (``shared.images.normalise``), never the client's
                         bytes (written last: its presence means the entry
                         is complete)
    <label>/<id>.json    metadata: time, label, prediction and model version,
                         image SHA-256, hash of the client address keyed by
                         the server secret (``shared.server_secrets``)
    .claims/<id>         one per distinct image: created with an atomic
                         link, so among concurrent senders of the same image,
                         in any number of web processes, exactly one stores it

``id`` is the first 32 hex digits of the image's SHA-256, so the same image is
kept once whatever label it is sent with (the first label wins).

Counting: ``shared.messaging.help_counts`` keeps in Redis how many images
were stored and how many the last retraining saw, shared by every web
process; ``pending`` is the difference. The files stay the truth: a missing
total is rebuilt from them.

Holdout: ``holdout(share)`` says which images are never trained on, kept to
evaluate candidates, from each image's SHA-256 keyed by the server secret, so
a sender cannot pick them (``is_holdout``).

Quota: with ``max_bytes`` (``SWAGDIGITS_HELP_MAX_BYTES``) a new image that
would take the help data (images and metadata) past it is refused with
``HelpStoreFull`` (an ``OSError`` with ``ENOSPC``, which the web tier answers
507), before anything is written. The figure is checked, not reserved, so
concurrent senders may pass it by a few images.

Light on purpose (hashlib, json, os): the web tier imports it and must never
load scikit-learn or numpy for it.
"""
from __future__ import annotations

import errno
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from shared.messaging.help_counts import HelpCounts
from shared.atomic import create_exclusive, write_atomic
from shared.server_secrets import CLIENT_HASH, HOLDOUT, ServerSecrets

if TYPE_CHECKING:
    from shared.config import Config

log = logging.getLogger(__name__)

LABELS = range(10)
_CLAIMS = ".claims"
_META_BYTES = 512   # a metadata file's size, near enough, for the quota check


class HelpStoreFull(OSError):
    """Storing one more image would pass the help data's quota (``SWAGDIGITS_HELP_MAX_BYTES``)."""

    def __init__(self, max_bytes: int):
        super().__init__(errno.ENOSPC, f"help data has reached its quota of {max_bytes} bytes "
                                       f"(SWAGDIGITS_HELP_MAX_BYTES)")
        self.max_bytes = max_bytes


@dataclass(frozen=True)
class Added:
    id: str
    label: int
    created: bool      # False: this image was already stored (maybe under another label)
    pending: int


@dataclass(frozen=True)
class HelpEntry:
    id: str
    label: int
    sha256: str
    png: Path
    client: str | None = None    # keyed hash of the sender's address (None: not recorded)
    trusted: bool = False        # stored by an operator (``swagdigits import``), not a web client
    received_at: str = ""


def image_id(sha256_hex: str) -> str:
    return sha256_hex[:32]


def is_holdout(sha256_hex: str, share: float, key: bytes) -> bool:
    """Whether an image is kept out of training for evaluation; fixed for ever by its hash and ``key``.

    HMAC-SHA256 of the image's SHA-256 under the server's secret
    (``shared.server_secrets``): the sender knows its bytes, not the key, so it
    cannot choose which of its images are trained on and which judge the result.
    """
    mac = hmac.new(key, sha256_hex.encode(), hashlib.sha256).digest()
    return int.from_bytes(mac[:8], "big") < share * 2 ** 64


@dataclass(frozen=True)
class Holdout:
    """``is_holdout`` with this deployment's share and key, as one callable on an image's SHA-256."""
    share: float
    key: bytes

    def __call__(self, sha256_hex: str) -> bool:
        return is_holdout(sha256_hex, self.share, self.key)


class HelpStore:
    def __init__(self, root: Path | str, conn: redis.Redis | None = None, max_bytes: int = 0, *,
                 secrets: ServerSecrets):
        self.root = Path(root)
        self.max_bytes = max_bytes   # 0: no quota
        self.secrets = secrets       # keys the client hashes and the holdout split
        self.counts = HelpCounts(conn, self.count, self.bytes_on_disk) if conn is not None else None

    @classmethod
    def from_config(cls, config: "Config", conn: redis.Redis | None = None) -> "HelpStore":
        return cls(config.help_dir, conn, max_bytes=config.help_max_bytes,
                   secrets=ServerSecrets.from_config(config))

    def holdout(self, share: float) -> Holdout:
        """Which images are held back from training: ``share`` of them, keyed by the server secret."""
        return Holdout(share, self.secrets.key(HOLDOUT))

    # -- writing -----------------------------------------------------------
    def add(self, image: bytes, label: int, *, predicted: int | None = None,
            model_version: str | None = None, job_id: str | None = None,
            client: str = "", trusted: bool = False) -> Added:
        """Store a validated image under ``label`` unless the same image is already stored."""
        if label not in LABELS or isinstance(label, bool):
            raise ValueError(f"label must be 0-9, not {label!r}")
        sha = hashlib.sha256(image).hexdigest()
        entry_id = image_id(sha)
        if self.max_bytes and self.stored_bytes() + len(image) + _META_BYTES > self.max_bytes:
            raise HelpStoreFull(self.max_bytes)
        if self.counts is not None:
            self.counts.ensure_total()   # before our file exists, so it is counted once
        claimed = self._claim(entry_id, label)
        if claimed is not None and claimed != label:
            return Added(entry_id, claimed, False, self.pending())
        png = self.root / str(label) / f"{entry_id}.png"
        if claimed is not None and png.exists():
            return Added(entry_id, label, False, self.pending())
        # Ours (or a crashed sender's claim): write metadata, then the image last.
        record = {"id": entry_id, "label": label, "sha256": sha,
                  "received_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                  "predicted": predicted, "model_version": model_version, "job_id": job_id,
                  "client": self._client_hash(client), "bytes": len(image)}
        if trusted:
            record["trusted"] = True
        meta = json.dumps(record, indent=1).encode()
        write_atomic(png.with_suffix(".json"), meta)
        write_atomic(png, image)
        if self.counts is not None:
            self.counts.add_bytes(len(meta) + len(image))
        if claimed is not None:  # repaired an entry a crash left half-done: counted already
            return Added(entry_id, label, False, self.pending())
        pending = self.counts.added() if self.counts is not None else 0
        log.info("stored help image %s as %d (predicted %s by %s)", entry_id, label, predicted, model_version)
        return Added(entry_id, label, True, pending)

    def mark_trained(self, seen: int) -> None:
        """A retraining used ``seen`` help images (all stored before it started)."""
        if self.counts is not None:
            self.counts.mark_trained(seen)

    # -- reading -----------------------------------------------------------
    def pending(self) -> int:
        """Help images stored but not yet seen by a retraining."""
        return self.counts.pending() if self.counts is not None else self.count()

    def entries(self, skip: frozenset[str] | set[str] = frozenset()) -> list[HelpEntry]:
        """Every complete entry (its PNG exists), in a stable order; none whose id is in ``skip``.

        ``skip`` lets a caller that already knows most entries read only the new
        ones' metadata (the help featuriser lists the store every second).
        """
        found = []
        for label in LABELS:
            folder = self.root / str(label)
            if not folder.is_dir():
                continue
            for png in sorted(folder.glob("*.png")):
                if png.stem in skip:
                    continue
                try:
                    meta = json.loads(png.with_suffix(".json").read_text())
                except (OSError, ValueError):
                    log.warning("help image %s has no readable metadata; skipped", png)
                    continue
                found.append(HelpEntry(png.stem, label, meta["sha256"], png, meta.get("client"),
                                       meta.get("trusted") is True, meta.get("received_at", "")))
        return found

    def stored_bytes(self) -> int:
        """Disk the help images and their metadata take (Redis' figure when there is one)."""
        return self.counts.stored_bytes() if self.counts is not None else self.bytes_on_disk()

    def bytes_on_disk(self) -> int:
        total = 0
        for label in LABELS:
            folder = self.root / str(label)
            if folder.is_dir():
                for path in folder.iterdir():
                    try:
                        total += path.stat().st_size
                    except OSError:   # removed meanwhile
                        pass
        return total

    def count(self) -> int:
        return sum(1 for label in LABELS if (self.root / str(label)).is_dir()
                   for _ in (self.root / str(label)).glob("*.png"))

    # -- helpers -----------------------------------------------------------
    def _claim(self, entry_id: str, label: int) -> int | None:
        """Claim ``entry_id`` for ``label``; None if we got it, else the label it already has."""
        claims = self.root / _CLAIMS
        target = claims / entry_id
        if create_exclusive(target, str(label).encode()):
            return None
        try:
            return int(target.read_text().strip())
        except (OSError, ValueError):
            return label  # unreadable claim: treat as ours and (re)write the entry

    def _client_hash(self, client: str) -> str | None:
        """A keyed hash: tells repeat senders apart without keeping their address."""
        if not client:
            return None
        return hmac.new(self.secrets.key(CLIENT_HASH), client.encode(), hashlib.sha256).hexdigest()[:32]
