"""The server's secret key: the one owner of keys clients must never know.

Two things are keyed by it, each with its own key derived from it
(HMAC-SHA256 of the purpose's name):

- the help data's holdout split (``shared.help_store.is_holdout``): which
  help images are held back to evaluate candidates. Keyed by the image's
  SHA-256 alone, a sender (who knows its bytes, and the normalisation is
  public code) could choose which of its images are trained on and which
  judge the result (issue 17);
- client hashes: the help store's hash of a sender's address (what the
  retraining's per-client caps group by) and the rate limiter's counter
  keys. Without a secret, a hash of an IPv4 address is reversed by trying
  all 2^32.

Where the key lives. ``SWAGDIGITS_SECRET_KEY``, when the operator gives one
(Kubernetes: a Secret; several hosts: the same value everywhere). Otherwise
a random key is made on first use and kept in ``SWAGDIGITS_SECRETS_DIR``
(default ``DATA_DIR/secrets``), file ``server-key``, mode 0600 in a 0700
folder, created atomically (``shared.atomic.create_exclusive``: of processes
racing to make it, exactly one wins and all read its key). A file rather
than Redis: the key must live exactly as long as the help data whose split it
fixes, and in this service files are the truth while Redis is rebuildable
(an external Redis may keep nothing across a restart, and whoever can reach
compose's password-less Redis could read it). Not in the help-data folder:
help data is what gets copied, backed up and shared, and a key beside it
would let anyone holding a copy reverse its client hashes. Every process
that hashes clients or splits help data (web, retrain worker, CLI) must see
the same folder: compose mounts one volume there.

The help store's former salt, ``help_data/.client-salt``, is no longer read:
entries stored before keep their old hash, so for one retraining a sender's
older and newer images count as two clients; the file may be deleted.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from shared.atomic import create_exclusive

if TYPE_CHECKING:
    from shared.config import Config

KEY_FILE = "server-key"
HOLDOUT = "help-holdout"        # which help images are held back for evaluation
CLIENT_HASH = "client-hash"     # hashes of client addresses (help metadata, rate-limit keys)
MIN_GIVEN_CHARS = 32


class ServerSecrets:
    def __init__(self, secrets_dir: Path | str, given: str = ""):
        self.secrets_dir = Path(secrets_dir)
        self.given = given
        self._master: bytes | None = None

    @classmethod
    def from_config(cls, config: "Config") -> "ServerSecrets":
        return cls(config.secrets_dir, config.secret_key)

    def key(self, purpose: str) -> bytes:
        """The 32-byte key for ``purpose`` (HOLDOUT, CLIENT_HASH), the same in every process."""
        return hmac.new(self._master_key(), purpose.encode(), hashlib.sha256).digest()

    def _master_key(self) -> bytes:
        if self._master is None:
            self._master = self.given.encode() if self.given else self._stored_key()
        return self._master

    def _stored_key(self) -> bytes:
        """The key in ``secrets_dir/server-key``, made there first if there is none."""
        path = self.secrets_dir / KEY_FILE
        if not path.exists():
            self.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            create_exclusive(path, secrets.token_hex(32).encode())   # mkstemp: mode 0600
        key = path.read_bytes().strip()
        if len(key) < MIN_GIVEN_CHARS:
            raise OSError(f"{path} holds no usable key: remove it to make a new one (which "
                          f"changes the help data's holdout split) or restore it")
        return key
