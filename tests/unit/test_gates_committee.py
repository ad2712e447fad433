"""Committee disagreement: range, agreement, and invariance to member and class order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from streamer.gates.committee import DISAGREEMENTS, mean_kl, vote_entropy

NAMES = sorted(DISAGREEMENTS)


def committees() -> st.SearchStrategy[np.ndarray]:
    """Non-negative (K, B, C) arrays; rows are normalised by the scores themselves."""
    shapes = st.tuples(st.integers(1, 6), st.integers(1, 5), st.integers(1, 8))
    return shapes.flatmap(
        lambda shape: arrays(
            np.float64, shape, elements=st.floats(0.0, 1.0, allow_nan=False, width=64)
        )
    )


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=80, deadline=None)
@given(P=committees())
def test_disagreement_stays_in_unit_interval(name: str, P: np.ndarray) -> None:
    s = DISAGREEMENTS[name](P)
    assert s.shape == (P.shape[1],)
    assert np.all((s >= 0.0) & (s <= 1.0))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=80, deadline=None)
@given(P=committees(), K=st.integers(1, 6))
def test_identical_members_do_not_disagree(name: str, P: np.ndarray, K: int) -> None:
    same = np.repeat(P[:1], K, axis=0)
    np.testing.assert_allclose(DISAGREEMENTS[name](same), 0.0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=80, deadline=None)
@given(P=committees(), seed=st.integers(0, 2**31 - 1))
def test_member_order_does_not_matter(name: str, P: np.ndarray, seed: int) -> None:
    perm = np.random.default_rng(seed).permutation(P.shape[0])
    np.testing.assert_allclose(DISAGREEMENTS[name](P), DISAGREEMENTS[name](P[perm]), atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=80, deadline=None)
@given(P=committees(), seed=st.integers(0, 2**31 - 1))
def test_class_order_does_not_matter(name: str, P: np.ndarray, seed: int) -> None:
    perm = np.random.default_rng(seed).permutation(P.shape[2])
    np.testing.assert_allclose(
        DISAGREEMENTS[name](P), DISAGREEMENTS[name](P[:, :, perm]), atol=1e-12
    )


@pytest.mark.parametrize("name", NAMES)
def test_members_certain_of_different_classes_disagree_fully(name: str) -> None:
    K, C = 3, 4
    P = np.eye(C)[np.arange(K)][:, None, :]  # member k is certain of class k
    assert DISAGREEMENTS[name](P)[0] == pytest.approx(1.0)


def test_vote_entropy_of_a_split_vote_is_the_entropy_of_the_shares() -> None:
    # four members, two classes, votes 3:1 -> H(3/4, 1/4) / log 2
    P = np.array([[[0.9, 0.1]], [[0.8, 0.2]], [[0.7, 0.3]], [[0.2, 0.8]]])
    expected = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25)) / np.log(2)
    assert vote_entropy(P)[0] == pytest.approx(expected)


def test_mean_kl_matches_its_definition() -> None:
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(5), size=(4, 7))  # K=4, B=7, C=5
    consensus = P.mean(axis=0)
    kl = (P * np.log(P / consensus)).sum(axis=-1).mean(axis=0)
    np.testing.assert_allclose(mean_kl(P), kl / np.log(4), rtol=1e-10)


def test_soft_disagreement_is_seen_where_hard_votes_agree() -> None:
    P = np.array([[[0.51, 0.49]], [[0.99, 0.01]]])
    assert vote_entropy(P)[0] == 0.0
    assert mean_kl(P)[0] > 0.0


@pytest.mark.parametrize("name", NAMES)
def test_a_single_member_or_class_cannot_disagree(name: str) -> None:
    assert DISAGREEMENTS[name](np.full((1, 3, 4), 0.25)).tolist() == [0.0, 0.0, 0.0]
    assert DISAGREEMENTS[name](np.ones((3, 2, 1))).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("name", NAMES)
def test_a_two_dimensional_array_is_rejected_with_the_fix(name: str) -> None:
    with pytest.raises(ValueError, match="np.stack"):
        DISAGREEMENTS[name](np.full((3, 4), 0.25))
