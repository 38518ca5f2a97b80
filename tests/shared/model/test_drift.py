"""Drift: the yardstick a model is published with, and the rolling window a worker compares with it."""
import math

import numpy as np
import pytest

from shared.model import drift


def _probs(digits, confidence):
    """One probability row per digit: ``confidence`` on it, the rest spread evenly."""
    rows = np.full((len(digits), 10), (1 - confidence) / 9)
    rows[np.arange(len(digits)), digits] = confidence
    return rows


def test_a_reference_records_digit_shares_and_a_confidence_histogram():
    ref = drift.reference(_probs([0, 0, 1, 2], 0.9))
    assert ref["n"] == 4
    assert ref["digit_share"][:3] == [0.5, 0.25, 0.25] and sum(ref["digit_share"]) == pytest.approx(1)
    assert sum(ref["confidence_hist"]) == 4 and ref["confidence_hist"][18] == 4   # 0.9 is in [0.90, 0.95)


def test_the_low_confidence_share_is_read_at_any_threshold_from_the_histogram():
    ref = drift.reference(np.vstack([_probs([3] * 3, 0.35), _probs([4] * 7, 0.97)]))
    assert drift.low_confidence_share(ref, 0.6) == pytest.approx(0.3)
    assert drift.low_confidence_share(ref, 0.3) == 0.0
    assert drift.low_confidence_share(ref, 1.0) == 1.0


def test_psi_is_zero_for_the_same_distribution_and_grows_with_the_shift():
    uniform = [0.1] * 10
    assert drift.psi(uniform, uniform) == pytest.approx(0.0)
    small = drift.psi(uniform, [0.12] * 5 + [0.08] * 5)
    large = drift.psi(uniform, [0.3, 0.3] + [0.05] * 8)
    assert 0 < small < 0.1 < 0.25 < large
    assert math.isfinite(drift.psi(uniform, [1.0] + [0.0] * 9))   # an empty class is floored, not infinite


def test_a_window_keeps_only_the_last_answers():
    window = drift.DriftWindow(size=4, unsure_below=0.6)
    window.reset(drift.reference(_probs(list(range(10)), 0.9)))
    window.add([1, 1, 1, 1], [0.3, 0.3, 0.3, 0.3])
    assert window.count == 4 and window.low_confidence_share() == 1.0
    before = window.digit_psi()
    window.add([0, 2, 5, 9], [0.9, 0.9, 0.9, 0.9])     # pushes every 1 out
    assert window.count == 4 and window.low_confidence_share() == 0.0
    assert window.digit_psi() < before
    assert window.reference_low_confidence_share() == 0.0


def test_answers_that_match_the_reference_show_no_drift():
    rng = np.random.default_rng(0)
    reference = drift.reference(_probs(rng.integers(0, 10, 5000), 0.9))
    window = drift.DriftWindow(size=1000, unsure_below=0.6)
    window.reset(reference)
    window.add(list(rng.integers(0, 10, 3000)), [0.9] * 3000)
    assert window.digit_psi() < 0.05
    window.add([7] * 600, [0.9] * 600)     # users suddenly write mostly 7s
    assert window.digit_psi() > 0.25


def test_a_new_model_starts_an_empty_window_and_without_a_reference_there_is_no_psi():
    window = drift.DriftWindow(size=10, unsure_below=0.6)
    window.add([1, 2], [0.9, 0.9])
    assert math.isnan(window.digit_psi())      # the model was published without a reference
    window.reset(drift.reference(_probs([1, 2], 0.9)))
    assert window.count == 0 and math.isnan(window.digit_psi()) and math.isnan(window.low_confidence_share())
