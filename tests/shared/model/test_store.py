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


def test_rollback_goes_to_the_most_recently_retired_of_several(tmp_path):
    """Retirement order, not creation order: the newest retired model is not the one to go back to."""
    registry = ModelRegistry(tmp_path / "models")
    first, second, third = (registry.publish(dummy(), {"n": n}) for n in range(3))
    registry.promote(second)
    registry.promote(first)     # second retired
    registry.promote(third)     # first retired, after second: it is the one to go back to
    assert {m.model_id for m in registry.list() if RETIRED in m.states} == {first, second}
    assert registry.rollback() == (first, third)
    assert registry.production_id() == first
    # And again: third was retired last now.
    assert registry.rollback() == (third, first)


_PROMOTE_IN_A_CHILD = """
import sys
from shared.model.store import ModelRegistry
ModelRegistry(sys.argv[1]).promote(sys.argv[2], reason="child")
print("promoted", flush=True)
"""


def test_a_promotion_waits_for_another_process_holding_the_store_lock(tmp_path):
    import subprocess
    import sys
    import time

    from shared.model.store import _file_lock

    root = tmp_path / "models"
    registry = ModelRegistry(root)
    first, second = registry.publish(dummy(), {}), registry.publish(dummy(), {})
    registry.promote(first)
    with _file_lock(root / ".promote.lock"):
        child = subprocess.Popen([sys.executable, "-c", _PROMOTE_IN_A_CHILD, str(root), second],
                                 stdout=subprocess.PIPE, text=True)
        # However long the child takes to start, it must still be waiting while we hold the lock.
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.2)
        assert child.poll() is None, "the promotion did not wait for the lock"
        assert ModelRegistry(root).production_id() == first
    assert child.wait(60) == 0 and child.stdout.read().strip() == "promoted"
    assert ModelRegistry(root).production_id() == second


_PROMOTE_MANY = """
import sys
from shared.model.store import ModelRegistry
registry = ModelRegistry(sys.argv[1])
for model_id in sys.argv[2:]:
    registry.promote(model_id, reason="race")
"""


def test_concurrent_promotions_from_several_processes_leave_one_consistent_history(tmp_path):
    """Each promotion sees the one before it: one production, and the log is an unbroken chain."""
    import subprocess
    import sys

    root = tmp_path / "models"
    registry = ModelRegistry(root)
    ids = [registry.publish(dummy(), {}) for _ in range(4)]
    registry.promote(ids[0])
    children = [subprocess.Popen([sys.executable, "-c", _PROMOTE_MANY, str(root),
                                  *[ids[(i + k) % len(ids)] for k in range(12)]])
                for i in range(len(ids))]
    assert [c.wait(120) for c in children] == [0] * len(children)

    fresh = ModelRegistry(root)
    states = {m.model_id: m.states for m in fresh.list()}
    production = [model_id for model_id, s in states.items() if PRODUCTION in s]
    assert len(production) == 1, states
    assert all(s == (RETIRED,) for model_id, s in states.items() if model_id != production[0]), states
    log = list(reversed(fresh.promotions()))   # oldest first
    assert len(log) == 1 + 12 * len(ids)
    for before, after in zip(log, log[1:]):
        assert after["previous"] == before["model_id"], (before, after)
    assert log[-1]["model_id"] == production[0]


_OPEN_MANY = """
import sys
from shared.model.store import ModelRegistry, ModelStoreError
refused = 0
for _ in range(int(sys.argv[2])):
    try:
        ModelRegistry(sys.argv[1]).storage
    except ModelStoreError:
        refused += 1
print(refused)
"""


def test_processes_opening_the_store_at_once_all_find_it_usable(tmp_path):
    """Workers start together: none may take the store for unusable (it would train a model over production).

    modelstore's own check touches and removes one fixed probe file, so one
    process could remove the other's probe before that one did (seen in CI:
    a predict worker retrained and replaced production at start).
    """
    import subprocess
    import sys

    root = tmp_path / "models"
    ModelRegistry(root).storage
    children = [subprocess.Popen([sys.executable, "-c", _OPEN_MANY, str(root), "300"],
                                 stdout=subprocess.PIPE, text=True) for _ in range(4)]
    refused = [int(c.communicate(timeout=120)[0]) for c in children]
    assert refused == [0] * len(children)
    assert not [p.name for p in root.iterdir() if p.name.startswith(".probe") or p.name == ".operator-ai"]
