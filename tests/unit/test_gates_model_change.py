"""The expected-gradient-length (model change) score and the ``egl`` policy term."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from streamer.core.sampler import Sampler
from streamer.gates.model_change import ExpectedGradientLength, expected_gradient_length
from streamer.models import build_model
from streamer.prequential import prequential


def _proba(raw: np.ndarray) -> np.ndarray:
    raw = np.abs(raw) + 1e-9
    return raw / raw.sum(axis=1, keepdims=True)


@settings(max_examples=100, deadline=None)
@given(raw=arrays(np.float64, (6, 4), elements=st.floats(0, 10)),
       Z=arrays(np.float64, (6, 3), elements=st.floats(-100, 100)))
def test_egl_is_the_expected_norm_of_the_log_loss_gradient(raw: np.ndarray, Z: np.ndarray) -> None:
    p = _proba(raw)
    egl = expected_gradient_length(p, Z)
    # the gradient of softmax log loss for label c is (p - e_c) z^T; its Frobenius norm
    expected = [sum(p[i, c] * np.linalg.norm(np.outer(p[i] - np.eye(4)[c], Z[i])) for c in range(4))
                for i in range(6)]
    np.testing.assert_allclose(egl, expected, rtol=1e-9, atol=1e-6)  # ||p||^2 - 2p_c + 1 cancels near one-hot
    assert np.all(egl >= 0)


def test_a_certain_prediction_or_a_zero_input_would_not_move_the_model() -> None:
    p = np.array([[1.0, 0.0, 0.0], [0.4, 0.3, 0.3]])
    assert expected_gradient_length(p, np.ones((2, 2)))[0] == 0.0
    assert expected_gradient_length(p, np.zeros((2, 2)))[1] == 0.0


def test_farther_from_the_centre_means_more_change_at_equal_uncertainty() -> None:
    p = np.full((2, 2), 0.5)
    raw = expected_gradient_length(p, np.array([[1.0, 0.0], [3.0, 0.0]]))
    assert raw[1] == pytest.approx(3 * raw[0])


def test_the_term_is_a_running_rank_in_the_unit_interval() -> None:
    term = ExpectedGradientLength(rank_window=100)
    rng = np.random.default_rng(0)
    for _ in range(5):
        ranks = term(rng.normal(size=(50, 3)) * 100, _proba(rng.random((50, 2))))
        assert ranks.shape == (50,) and np.all((ranks >= 0) & (ranks <= 1))


def test_a_policy_with_egl_asks_for_model_change_within_the_budget() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(4000, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    sampler = Sampler(build_model("StandardScaler | LogisticRegression"), budget=0.05,
                      policy="margin or egl", seed=0)
    batches = ((X[start:start + 50], y[start:start + 50]) for start in range(0, 4000, 50))
    asked = prequential(sampler, batches, ids=False).queried
    reasons = sampler.snapshot()["asked_by_reason"]
    assert reasons["model_change"] > 0 and reasons["uncertainty"] > 0
    assert abs(asked / 4000 - 0.05) <= 0.05 * 0.05
