"""What one retraining returns: written by the retrain job, read back by the retrain worker's metrics.

RQ keeps a job's return value in Redis; the worker process (not the forked
work horse) reads it after the job ends to update /metrics. One typed shape
for both ends, so neither guesses at keys.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

OUTCOMES = ("promoted", "canary", "shadow", "rejected")


@dataclass(frozen=True)
class RetrainResult:
    model_id: str
    outcome: str                        # one of OUTCOMES
    reason: str
    parent: str | None
    candidate_accuracy: float
    production_accuracy: float | None
    help_images: int
    n_help_holdout: int
    train_seconds: float
    total_seconds: float
    timings: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.outcome not in OUTCOMES:
            raise ValueError(f"retrain outcome {self.outcome!r} is not one of {OUTCOMES}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, value) -> "RetrainResult | None":
        """The result a job returned, or None if it returned something else (not a retrain run)."""
        if not isinstance(value, dict):
            return None
        try:
            return cls(**value)
        except (TypeError, ValueError):
            return None
