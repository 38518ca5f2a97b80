import numpy as np
import pytest

from shared.model import families
from shared.model.base import Trained
from shared.model.store import (PRODUCTION, REJECTED, RETIRED, ArtifactMismatch, ModelRegistry,
                                ModelStoreError, NoProductionModel)


def dummy() -> Trained:
    """A small but real model of the linear family (fast to fit)."""
    family = families.get("linear")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, family.pipeline.size))
    return Trained(family, family.build().fit(X, np.arange(40) % 10))


def test_an_empty_store_has_no_production_model(tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    assert registry.list() == []
    with pytest.raises(NoProductionModel):
        registry.load_production()


def test_publish_keeps_metadata_and_promote_keeps_one_production(tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    first = registry.publish(dummy(), {"holdout_accuracy": 0.5})
    second = registry.publish(dummy(), {"holdout_accuracy": 0.6})
    registry.promote(first)
    assert registry.production_id() == first
    assert registry.promote(second) == first
    states = {m.model_id: m.states for m in registry.list()}
    assert states == {first: (RETIRED,), second: (PRODUCTION,)}
    loaded = registry.load_production()
    assert loaded.version == second and loaded.metadata["holdout_accuracy"] == 0.6


def test_rejected_models_stay_listed_with_their_state(tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    model_id = registry.publish(dummy(), {})
    registry.reject(model_id)
    assert registry.list()[0].states == (REJECTED,)


def test_a_corrupted_artifact_is_refused(tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    model_id = registry.publish(dummy(), {})
    artifact = registry.info(model_id)["storage"]["path"]
    with open(artifact, "r+b") as fh:
        fh.seek(20)
        fh.write(b"corrupted!")
    with pytest.raises(ArtifactMismatch, match="checksum"):
        registry.load(model_id)


# -- a publisher killed at any step ---------------------------------------------
_KILLED_PUBLISH = """
import os, signal, sys
import numpy as np
from shared.model import families, store
from shared.model.base import Trained

kill_at = int(sys.argv[2])
writes = 0
real_write = store.write_atomic

def write_then_maybe_die(path, data):
    global writes
    writes += 1
    if writes == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)      # before this write: no cleanup of any kind
    real_write(path, data)

store.write_atomic = write_then_maybe_die
family = families.get("linear")
X = np.random.default_rng(0).normal(size=(40, family.pipeline.size))
store.ModelRegistry(sys.argv[1]).publish(Trained(family, family.build().fit(X, np.arange(40) % 10)), {})
print(writes)
"""


def _publish_in_child(root, kill_at: int):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    return subprocess.run([sys.executable, "-c", _KILLED_PUBLISH, str(root), str(kill_at)],
                          capture_output=True, text=True, cwd=repo, timeout=120)


def test_a_publisher_killed_at_any_write_never_leaves_a_usable_looking_broken_version(tmp_path):
    root = tmp_path / "models"
    registry = ModelRegistry(root)
    live = registry.publish(dummy(), {"holdout_accuracy": 0.5})
    registry.promote(live)
    whole = _publish_in_child(root, kill_at=0)                  # counts the writes of one publish
    assert whole.returncode == 0, whole.stderr
    steps = int(whole.stdout.split()[-1])
    assert steps >= 4, "artifact, metadata (twice) and checksum are separate writes"
    for kill_at in range(1, steps + 1):
        died = _publish_in_child(root, kill_at)
        assert died.returncode == -9, (kill_at, died.stderr[-500:])
        listed = registry.list()
        for summary in listed:                                  # everything listed loads
            assert registry.load(summary.model_id).version == summary.model_id
        assert registry.production_id() == live
        assert len(listed) == 2, f"killed before write {kill_at}: an incomplete version is listed"
    broken = [m for m in registry.storage.list_models("digits") if not registry.complete(m)]
    assert len(broken) >= 1, "the kills did leave half-published versions behind"
    for model_id in broken:
        with pytest.raises(ModelStoreError, match="completely published"):
            registry.promote(model_id)
    newest = registry.publish(dummy(), {})                      # the next publish works
    registry.promote(newest)
    assert registry.load_production().version == newest
