"""On-disk caches of training features, so a retraining only computes what is new.

A retraining used to spend most of its non-fitting time recomputing features
it had computed before: the shipped digits, their distorted copies and the
synthetic drawings (deterministic given the code) and every help image (which
never changes once stored). Both are kept here, as ``.npz`` files written
atomically (``shared.atomic.write_atomic``) in one folder, ``directory``
beside the model store (``<model store>/feature-cache``):

``fixed-<fingerprint>.npz``
    the fixed part of the training set (see ``shared.model.training.fitting.fixed_parts``);
``help-<fingerprint>.npz``
    one feature row per help image, keyed by the image's SHA-256.

Validity is a *fingerprint*: a hash of the source files that decide the
features (and, for the fixed part, the generated drawings), the library
versions that compute them (Pillow's resampling, numpy) and the constants the
caller passes. Any edit to those files gives another file name, so stale
features are never read; files of other fingerprints are deleted when a new
one is written. The help cache uses a narrower fingerprint (decoding and
preprocessing only): a change to the synthetic drawings must not force every
help image to be decoded again.

Every failure to read (missing, truncated, corrupt, wrong shape, another
fingerprint inside) is logged and treated as "no cache": the caller
recomputes and writes a fresh file. A cache can make training faster, never
wrong or impossible.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from pathlib import Path

import numpy as np

from shared.atomic import write_atomic
from shared.model.features import INK, FeaturePipeline

log = logging.getLogger(__name__)


def directory(model_root: Path | str) -> Path:
    """Where training keeps its feature caches: beside the models they serve.

    The first model's training writes the fixed part here and the retrain
    worker reads it, so a fresh install computes it once, not twice at once.
    """
    return Path(model_root) / "feature-cache"

_SHARED = Path(__file__).resolve().parents[2]
# What turns PNG bytes into a feature row.
HELP_SOURCES = ("images/upload.py", "images/ink.py", "model/features.py")
# What makes the fixed training set: the above plus the shipped-digit
# augmentation, the synthetic drawings and the canvas renderer they use.
FIXED_SOURCES = HELP_SOURCES + ("images/canvas.py", "images/drawing.py", "model/training/synthetic.py",
                                "model/training/scans.py", "model/training/fitting.py")


def library_versions() -> dict:
    import numpy
    import PIL

    versions = {"numpy": numpy.__version__, "pillow": PIL.__version__}
    try:  # the shipped digits come from scikit-learn's bundled data set
        import sklearn
        versions["scikit-learn"] = sklearn.__version__
    except ImportError:  # pragma: no cover - always installed where training runs
        pass
    return versions


def fingerprint(sources: tuple[str, ...], params: dict | None = None,
                folder: Path | None = None) -> str:
    """Hash of ``sources`` (file names in ``folder``, default ``shared/``), library
    versions and ``params``."""
    folder = _SHARED if folder is None else Path(folder)
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256((folder / name).read_bytes()).digest())
    digest.update(json.dumps({"libraries": library_versions(), "params": params or {}},
                             sort_keys=True, default=str).encode())
    return digest.hexdigest()[:24]


def _path(folder: Path, kind: str, print_: str) -> Path:
    return Path(folder) / f"{kind}-{print_}.npz"


def load_arrays(folder: Path | str, kind: str, print_: str) -> dict[str, np.ndarray] | None:
    """The arrays saved under ``kind`` and this fingerprint, or None (missing or unreadable)."""
    path = _path(Path(folder), kind, print_)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        if str(arrays.pop("fingerprint", None)) != print_:
            raise ValueError("fingerprint inside the file does not match its name")
        return arrays
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("feature cache %s unreadable (%s): recomputing", path, exc)
        return None


def save_arrays(folder: Path | str, kind: str, print_: str, arrays: dict[str, np.ndarray]) -> Path:
    """Write the arrays atomically; drop this kind's files of other fingerprints."""
    folder = Path(folder)
    path = _path(folder, kind, print_)
    buffer = io.BytesIO()
    np.savez(buffer, fingerprint=np.asarray(print_), **arrays)
    write_atomic(path, buffer.getvalue())
    for old in folder.glob(f"{kind}-*.npz"):
        if old != path:
            try:
                old.unlink()
            except OSError as exc:
                log.warning("cannot remove stale feature cache %s: %s", old, exc)
    return path


class HelpFeatureCache:
    """Feature rows of help images by SHA-256, for the current decoding and preprocessing."""

    KIND = "help"

    def __init__(self, folder: Path | str, pipeline: FeaturePipeline = INK):
        self.folder = Path(folder)
        self.print = fingerprint(HELP_SOURCES, {"pipeline": pipeline.fingerprint})
        self.rows: dict[str, np.ndarray] = {}
        self.hits = 0
        self._stamp = None   # the file as last read or written here

    def load(self) -> "HelpFeatureCache":
        self._stamp = self._on_disk()   # before reading: a file replaced meanwhile then looks changed
        arrays = load_arrays(self.folder, self.KIND, self.print)
        if arrays is not None:
            try:
                keys, X = arrays["sha256"], arrays["X"]
                if X.ndim != 2 or len(keys) != len(X):
                    raise ValueError(f"shapes {keys.shape} / {X.shape} do not match")
                self.rows = {str(k): row for k, row in zip(keys, X)}
            except (KeyError, ValueError) as exc:
                log.warning("help feature cache in %s unusable (%s): recomputing", self.folder, exc)
                self.rows = {}
        return self

    def get(self, sha256: str, width: int) -> np.ndarray | None:
        row = self.rows.get(sha256)
        if row is None or row.shape != (width,):
            return None
        self.hits += 1
        return row

    def save(self, rows: dict[str, np.ndarray]) -> None:
        """Keep exactly ``rows`` (the help images that exist now) for the next run."""
        if not rows:
            return
        keys = sorted(rows)
        save_arrays(self.folder, self.KIND, self.print, {
            "sha256": np.asarray(keys), "X": np.stack([rows[k] for k in keys]).astype(np.float32)})
        self.rows = dict(rows)
        self._stamp = self._on_disk()

    def is_current(self) -> bool:
        """Whether the file is still the one this object last read or wrote (no other process replaced it)."""
        return self._stamp is not None and self._stamp == self._on_disk()

    def _on_disk(self):
        try:
            stat = _path(self.folder, self.KIND, self.print).stat()
        except OSError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size
