"""The one place models are written to and loaded from: a ModelStore file-system store.

Each trained model is uploaded with its metrics as ``extra_metadata`` and its
lifecycle recorded as ModelStore states: ``production`` (exactly one model,
the live one), ``candidate`` (trained, not yet judged), ``rejected``
(failed the promotion gate) and ``retired`` (was production once).
Loading verifies the artifact's SHA-256 against the one recorded at upload,
so a corrupted or swapped file is refused rather than served.

Publishing writes the artifact, then modelstore's metadata, then the
checksum, each file atomically: the checksum is the commit record. A
publisher killed at any earlier step leaves a version with no checksum, which
is never listed, promoted or loaded (``complete``); the next publish is
unaffected. (tests/shared/model/test_store.py kills a publisher at every step.)

Every artifact holds the scikit-learn estimator (for retraining and copies)
and its family's numpy serving files (``ModelFamily.export``), which is all a
predict worker reads. The metadata names the family and the fingerprint of
the feature pipeline the model was trained on; a model whose fingerprint is
not the one its family computes today is refused, never fed other features.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pickle
import tarfile
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from shared.atomic import write_atomic
from shared.model import families
from shared.model.base import Model, Trained

log = logging.getLogger(__name__)

DOMAIN = "digits"
PICKLED_NAME = "estimator.pkl"   # a family's own (non-scikit-learn) estimator in its artifact
PRODUCTION = "production"
REJECTED = "rejected"
RETIRED = "retired"
STATES = (PRODUCTION, REJECTED, RETIRED)


class ModelStoreError(RuntimeError):
    """The store could not do what was asked (missing model, bad artifact...)."""


class NoProductionModel(ModelStoreError):
    """No model is marked as production yet."""


class ArtifactMismatch(ModelStoreError):
    """An artifact's checksum or metadata does not match what was recorded at upload."""


@dataclass(frozen=True)
class ModelSummary:
    model_id: str
    created: str
    states: tuple[str, ...]
    extra: dict

    def as_dict(self) -> dict:
        return {"model_id": self.model_id, "created": self.created,
                "states": list(self.states), **{"metadata": self.extra}}


class ModelRegistry:
    """Thin, typed wrapper around ``modelstore.ModelStore`` for the digits domain."""

    _lock = threading.Lock()

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._store = None
        self._storage = None

    @property
    def store(self):
        """The full ModelStore, needed only to upload and load artifacts: it imports scikit-learn."""
        if self._store is None:
            from modelstore import ModelStore  # imported late: it is slow to import

            # modelstore imports setuptools to record its version; with the stdlib
            # distutils already loaded, setuptools' distutils override fails an
            # assertion and modelstore logs an ERROR on every upload. Not a setting.
            os.environ.setdefault("SETUPTOOLS_USE_DISTUTILS", "stdlib")

            self._store = ModelStore(storage=self.storage)
        return self._store

    @property
    def storage(self):
        """ModelStore's file-system storage alone: states, listing and metadata.

        It does not load the ML-library managers, so the web tier can list,
        promote and roll back models without importing scikit-learn.
        """
        if self._storage is None:
            self.root.mkdir(parents=True, exist_ok=True)
            storage = _atomic_storage_class()(str(self.root), create_directory=True)
            if not storage.validate():
                raise ModelStoreError(f"cannot use {self.root} as a model store")
            existing = set(storage.list_model_states())
            for state in STATES:
                if state not in existing:
                    storage.create_model_state(state)
            self._storage = storage
        return self._storage

    # -- writing -----------------------------------------------------------
    def publish(self, trained: Trained, extra: dict) -> str:
        """Upload a trained model with its metadata; return its version id."""
        family = trained.family
        extra = {**extra, "family": family.name, "features": family.pipeline.fingerprint}
        with tempfile.TemporaryDirectory() as tmp:
            extra_files = []
            for name, data in family.export(trained.estimator).items():
                path = Path(tmp) / name
                path.write_bytes(data)
                extra_files.append(str(path))
            model = trained.estimator
            if not _is_sklearn(model):
                # modelstore knows scikit-learn, not a family's own estimator class:
                # keep it as a pickle file (read back by load_trained).
                model = Path(tmp) / PICKLED_NAME
                model.write_bytes(pickle.dumps(trained.estimator))
                model = str(model)
            meta = self.store.upload(DOMAIN, model=model, extra_metadata=extra, extra_files=extra_files)
        model_id = meta["model"]["model_id"]
        artifact = Path(meta["storage"]["path"])
        checksum = _sha256(artifact)
        # The checksum must be in the metadata to verify loads; modelstore writes the
        # metadata before we can know the digest, so record it beside it atomically.
        write_atomic(self._checksum_path(model_id), checksum.encode())
        log.info("published model %s", model_id)
        return model_id

    def promote(self, model_id: str, reason: str = "") -> str | None:
        """Make ``model_id`` the only production model; return the one it replaced.

        Serialised across processes (CLI, web, retrain worker) with a file lock,
        and recorded in ``promotions/`` so ``rollback`` knows what was live before.
        """
        self._require(model_id)
        with self._lock, _file_lock(self.root / ".promote.lock"):
            previous = self.production_id(missing_ok=True)
            self.storage.set_model_state(DOMAIN, model_id, PRODUCTION)
            self._unset(model_id, REJECTED)
            self._unset(model_id, RETIRED)
            if previous and previous != model_id:
                self._unset(previous, PRODUCTION)
                self.storage.set_model_state(DOMAIN, previous, RETIRED)
            record = {"model_id": model_id, "previous": previous, "reason": reason,
                      "at": datetime.now(timezone.utc).isoformat(timespec="microseconds")}
            write_atomic(self.root / "promotions" / f"{time.time_ns():020d}-{model_id}.json",
                         json.dumps(record).encode())
        log.info("model %s is production (was %s)", model_id, previous)
        return previous

    def rollback(self) -> tuple[str, str | None]:
        """Re-promote the most recently retired version; return (promoted, replaced)."""
        target = self.last_retired()
        if target is None:
            raise ModelStoreError("no retired model to roll back to")
        return target, self.promote(target, reason="rollback")

    def last_retired(self) -> str | None:
        """The retired version that was production most recently (from the promotion log)."""
        retired = set(self.storage.list_models(DOMAIN, RETIRED)) if self._has_domain() else set()
        for record in self.promotions():
            if record.get("previous") in retired:
                return record["previous"]
        # A store promoted before the log existed: fall back to the newest retired model.
        newest = [m for m in self.list() if RETIRED in m.states]
        return newest[0].model_id if newest else None

    def promotions(self) -> list[dict]:
        """Every recorded promotion, newest first."""
        records = []
        for path in sorted((self.root / "promotions").glob("*.json"), reverse=True):
            try:
                records.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                log.warning("unreadable promotion record %s", path)
        return records

    def reject(self, model_id: str) -> None:
        self._require(model_id)
        self.storage.set_model_state(DOMAIN, model_id, REJECTED)

    # -- reading -----------------------------------------------------------
    def production_id(self, missing_ok: bool = False) -> str | None:
        ids = self.storage.list_models(DOMAIN, PRODUCTION) if self._has_domain() else []
        ids = [i for i in ids if self.complete(i)]
        if not ids:
            if missing_ok:
                return None
            raise NoProductionModel("no production model in the store")
        if len(ids) > 1:
            # Never expected; pick the newest so the service still answers.
            ids = sorted(ids, key=lambda i: self.info(i)["code"]["created"])
        return ids[-1]

    def load(self, model_id: str) -> Model:
        """Load a model for serving (numpy only), after checking checksum, family and features."""
        artifact, info = self._verified_artifact(model_id)
        extra = info.get("extra") or {}
        family = self._family(model_id, extra)
        try:
            predictor = family.load(_serving_files(artifact))
        except Exception as exc:  # a tar or array error: the artifact is unusable
            raise ArtifactMismatch(f"model {model_id} could not be loaded: {exc}") from exc
        return Model(version=model_id, family=family.name, pipeline=family.pipeline,
                     predictor=predictor, metadata=extra)

    def load_trained(self, model_id: str) -> Trained:
        """The pickled scikit-learn estimator itself (checksum verified), e.g. to publish a copy."""
        artifact, info = self._verified_artifact(model_id)
        family = self._family(model_id, info.get("extra") or {})
        try:
            if info["model"]["model_type"]["library"] == "sklearn":
                return Trained(family, self.store.load(DOMAIN, model_id))
            with tarfile.open(artifact, "r:gz") as tar, tar.extractfile(PICKLED_NAME) as fh:
                return Trained(family, pickle.loads(fh.read()))
        except Exception as exc:
            raise ArtifactMismatch(f"model {model_id} could not be loaded: {exc}") from exc

    @staticmethod
    def _family(model_id: str, extra: dict):
        try:
            family = families.get(extra.get("family", families.DEFAULT))
        except families.UnknownFamily as exc:
            raise ArtifactMismatch(f"model {model_id}: {exc}") from None
        if extra.get("features") != family.pipeline.fingerprint:
            raise ArtifactMismatch(
                f"model {model_id} was trained on features {extra.get('features')!r}; "
                f"this release computes {family.pipeline.fingerprint!r}")
        return family

    def _verified_artifact(self, model_id: str) -> tuple[Path, dict]:
        info = self.info(model_id)
        artifact = Path(info["storage"]["path"])
        try:
            expected = self._checksum_path(model_id).read_text().strip()
        except FileNotFoundError:
            raise ArtifactMismatch(f"model {model_id} has no recorded checksum") from None
        if not artifact.is_file() or _sha256(artifact) != expected:
            raise ArtifactMismatch(f"model {model_id}: artifact checksum does not match")
        if info["model"]["domain"] != DOMAIN:
            raise ArtifactMismatch(f"model {model_id}: metadata is not a digits model")
        return artifact, info

    def load_production(self) -> Model:
        return self.load(self.production_id())

    def info(self, model_id: str) -> dict:
        try:
            return asdict(self.storage.get_meta_data(DOMAIN, model_id))
        except Exception as exc:
            raise ModelStoreError(f"no model {model_id}") from exc

    def list(self) -> list[ModelSummary]:
        """Every model, newest first, with its states and metadata."""
        if not self._has_domain():
            return []
        summaries = []
        for model_id in self.storage.list_models(DOMAIN):
            if not self.complete(model_id):
                log.debug("model %s was never completely published: not listed", model_id)
                continue
            info = self.info(model_id)
            states = tuple(s for s in self.storage.get_model_states(DOMAIN, model_id) if s in STATES)
            summaries.append(ModelSummary(model_id, info["code"]["created"], states, info.get("extra") or {}))
        return sorted(summaries, key=lambda s: s.created, reverse=True)

    # -- helpers -----------------------------------------------------------
    def _has_domain(self) -> bool:
        return DOMAIN in self.storage.list_domains()

    def _require(self, model_id: str) -> None:
        if not self._has_domain() or not self._exists(model_id):
            raise ModelStoreError(f"no model {model_id}")
        if not self.complete(model_id):
            raise ModelStoreError(f"model {model_id} was never completely published (its "
                                  "publisher stopped before recording the checksum)")

    def complete(self, model_id: str) -> bool:
        """Whether publishing ``model_id`` finished: its checksum, written last, exists."""
        return self._checksum_path(model_id).is_file()

    def _unset(self, model_id: str, state: str) -> None:
        if state in self.storage.get_model_states(DOMAIN, model_id):
            self.storage.unset_model_state(DOMAIN, model_id, state)

    def _exists(self, model_id: str) -> bool:
        try:
            self.storage.get_meta_data(DOMAIN, model_id)
        except Exception:  # modelstore raises its own not-found errors
            return False
        return True

    def _checksum_path(self, model_id: str) -> Path:
        return self.root / "checksums" / f"{model_id}.sha256"


def _atomic_storage_class():
    """ModelStore's file-system storage, but every file it writes appears whole or not at all.

    modelstore copies each file (artifact, metadata, state records) straight to
    its final name, so a reader listing models while a retraining publishes
    could read a half-written JSON file, and a crash mid-copy would leave one.
    Every write of the store goes through ``_push``: copy to a temp name, fsync,
    rename (``shared.atomic``).
    """
    from modelstore.storage.local import FileSystemStorage

    class AtomicFileSystemStorage(FileSystemStorage):
        def _push(self, file_path: str, prefix: str) -> str:
            with open(file_path, "rb") as fh:
                write_atomic(Path(self.root_prefix) / prefix, fh.read())
            return prefix

        def validate(self) -> bool:
            """Whether the store's folder can be written, probed with a file of this process's own.

            modelstore touches and removes one fixed ``.operator-ai`` file, so of
            two processes opening the store at once, one could find the other
            had removed its probe: the store looked unusable, and a predict
            worker starting beside another trained a model over production.
            """
            root = Path(self.root_prefix)
            root.mkdir(parents=True, exist_ok=True)
            if not root.is_dir():
                raise NotADirectoryError(f"{root} is not a directory")
            try:
                with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
                    return True
            except OSError as exc:
                log.error("model store %s cannot be written: %s", root, exc)
                return False

    return AtomicFileSystemStorage


@contextlib.contextmanager
def _file_lock(path: Path):
    """An exclusive lock shared by every process using this store."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _is_sklearn(estimator) -> bool:
    from sklearn.base import BaseEstimator

    return isinstance(estimator, BaseEstimator)


def _serving_files(artifact: Path) -> dict[str, bytes]:
    """The family's serving files inside an artifact (so scikit-learn stays unimported)."""
    files = {}
    with tarfile.open(artifact, "r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith("extras/"):
                with tar.extractfile(member) as fh:
                    files[member.name.removeprefix("extras/")] = fh.read()
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

