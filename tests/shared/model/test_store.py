import numpy as np
import pytest

from shared.model import families
from shared.model.base import Trained
from shared.model.store import (PRODUCTION, REJECTED, RETIRED, ArtifactMismatch, ModelRegistry,
                                NoProductionModel)


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
