"""Uncertainty scores: range, symmetry and the fixed points every score must respect."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from streamer.core.scores import SCORES

NAMES = sorted(SCORES)


def proba_batches() -> st.SearchStrategy[np.ndarray]:
    """Non-negative (B, C) arrays; rows are normalised by the scores themselves."""
    shapes = st.tuples(st.integers(1, 8), st.integers(2, 12))
    return shapes.flatmap(
        lambda shape: arrays(
            np.float64, shape, elements=st.floats(0.0, 1.0, allow_nan=False, width=64)
        )
    )


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(P=proba_batches())
def test_scores_stay_in_unit_interval(name: str, P: np.ndarray) -> None:
    s = SCORES[name](P)
    assert s.shape == (P.shape[0],)
    assert np.all((s >= 0.0) & (s <= 1.0))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=60, deadline=None)
@given(P=proba_batches(), seed=st.integers(0, 2**31 - 1))
def test_scores_do_not_depend_on_class_order(name: str, P: np.ndarray, seed: int) -> None:
    perm = np.random.default_rng(seed).permutation(P.shape[1])
    np.testing.assert_allclose(SCORES[name](P), SCORES[name](P[:, perm]), atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
@given(C=st.integers(2, 50), hot=st.integers(0, 49))
def test_one_hot_row_is_certain(name: str, C: int, hot: int) -> None:
    row = np.zeros((1, C))
    row[0, hot % C] = 1.0
    assert SCORES[name](row)[0] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", NAMES)
@given(C=st.integers(2, 50))
def test_uniform_row_is_maximally_uncertain(name: str, C: int) -> None:
    assert SCORES[name](np.full((1, C), 1.0 / C))[0] == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("C", [0, 1])
def test_fewer_than_two_classes_score_one(name: str, C: int) -> None:
    np.testing.assert_array_equal(SCORES[name](np.ones((3, C))), np.ones(3))


@pytest.mark.parametrize("name", NAMES)
def test_all_zero_row_scores_one(name: str) -> None:
    P = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(SCORES[name](P), [1.0, 0.0])


@pytest.mark.parametrize("name", NAMES)
def test_empty_batch_gives_empty_scores(name: str) -> None:
    assert SCORES[name](np.zeros((0, 3))).shape == (0,)


@pytest.mark.parametrize("name", NAMES)
def test_one_dimensional_input_is_rejected_with_a_hint(name: str) -> None:
    with pytest.raises(ValueError, match="2-d"):
        SCORES[name](np.array([0.5, 0.5]))


def test_registry_names_are_the_documented_ones() -> None:
    assert set(SCORES) == {"least-confidence", "margin", "entropy"}
