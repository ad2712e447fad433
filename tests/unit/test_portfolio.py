"""The portfolio (``--model auto``): members raced on the labels, unbiased estimates, the leader."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from streamer.core.sampler import Sampler
from streamer.models import build_model
from streamer.models.portfolio import Portfolio

KEY = b"portfolio-test-key-0123456789"


class Rule:
    """A fixed member: predicts ``x[column] > 0`` as class 1, learns nothing but the classes."""

    def __init__(self, column: int) -> None:
        self.column = column
        self.classes: list[int] = []
        self.n_features: int | None = None
        self.version = 0

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if not self.classes:
            return np.zeros((X.shape[0], 0))
        one = (X[:, self.column] > 0).astype(float)
        return np.stack([1.0 - one, one], axis=1)

    def observe(self, X: np.ndarray) -> None:
        pass

    def learn(self, X: np.ndarray, y: Sequence[int]) -> None:
        self.classes = [0, 1]
        self.version += 1


def race(column_right: int, n: int, weights: np.ndarray | None = None, seed: int = 0) -> Portfolio:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = (X[:, column_right] > 0).astype(int).tolist()
    portfolio = Portfolio({"first": Rule(0), "second": Rule(1)})
    portfolio.learn(X[:1], y[:1])  # classes first: the first label has nothing to be scored on
    portfolio.learn(X[1:], y[1:], weights=None if weights is None else weights[1:])
    return portfolio


def test_a_member_shown_better_takes_the_lead() -> None:
    portfolio = race(column_right=1, n=200)
    assert portfolio.leader == "second" and portfolio.switches == 1
    estimates = portfolio.estimates()
    assert estimates["second"] == 1.0 and 0.3 < estimates["first"] < 0.7  # independent columns


def test_the_first_member_keeps_the_lead_without_evidence_against_it() -> None:
    assert race(column_right=0, n=200).leader == "first"
    # a handful of labels cannot overturn the default, even when they favour the other
    assert race(column_right=1, n=5).leader == "first"


def test_importance_weights_correct_the_estimate_for_how_labels_were_picked() -> None:
    # Member 'first' is right on x0 > 0 only. The labels over-sample items where it is wrong
    # (an uncertainty gate that picks them), and weights 1/P(asked) undo that.
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20_000, 2))
    truth = (X[:, 1] > 0).astype(int)
    first_right = (X[:, 0] > 0) == (X[:, 1] > 0)
    p_ask = np.where(first_right, 0.05, 0.5)  # wrong items are asked 10x as often
    asked = rng.random(len(X)) < p_ask
    weighted = Portfolio({"first": Rule(0), "second": Rule(1)}, switch_sigmas=1e9)
    naive = Portfolio({"first": Rule(0), "second": Rule(1)}, switch_sigmas=1e9)
    weighted.learn(X[asked][:1], truth[asked][:1].tolist())  # classes known before scoring
    naive.learn(X[asked][:1], truth[asked][:1].tolist())
    weighted.learn(X[asked][1:], truth[asked][1:].tolist(), weights=1.0 / p_ask[asked][1:])
    naive.learn(X[asked][1:], truth[asked][1:].tolist())
    stream_accuracy = first_right.mean()  # ~0.5
    assert abs(weighted.estimates()["first"] - stream_accuracy) < 0.03
    assert naive.estimates()["first"] < stream_accuracy - 0.3  # biased towards its mistakes


def test_hedge_mixes_the_members_by_their_weighted_mistakes() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 2))
    y = (X[:, 1] > 0).astype(int).tolist()
    portfolio = Portfolio({"first": Rule(0), "second": Rule(1)}, vote="hedge", eta=0.5)
    portfolio.learn(X[:1], y[:1])
    portfolio.learn(X[1:], y[1:])
    weights = portfolio.hedge_weights()
    assert weights.sum() == pytest.approx(1.0) and weights[1] > 0.99
    mixed = portfolio.predict_proba(X[:5])
    expected = np.einsum("k,kbc->bc", weights, portfolio.committee_proba(X[:5]))
    np.testing.assert_allclose(mixed, expected)


def test_members_with_their_own_class_order_are_aligned() -> None:
    portfolio = build_model("auto(members=('logistic', 'gaussian_nb'))")
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    portfolio.learn(X, ["b", "a", "c"])
    assert portfolio.classes == ["a", "b", "c"]
    committee = portfolio.committee_proba(X)
    assert committee.shape == (2, 3, 3)
    np.testing.assert_allclose(committee.sum(axis=2), 1.0)


def test_the_sampler_weighs_exploration_labels_by_their_rarity() -> None:
    sampler = Sampler(build_model("auto(members=('logistic', 'gaussian_nb'))"), budget=0.1,
                      explore=0.5, seed=0)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 2))
    sampler.learn(X[:20], (X[:20, 0] > 0).astype(int).tolist())  # past the cold start
    ids = [str(i) for i in range(2000)]
    decisions = sampler.decide(X, ids=ids)
    asked = decisions.asked_indices.tolist()
    reasons = [decisions.reason[i] for i in asked]
    weights = sampler.importance_weights([ids[i] for i in asked])
    explore = np.array([r == "explore" for r in reasons])
    assert explore.any()
    np.testing.assert_allclose(weights[explore], 1 / (0.1 * 0.5))
    np.testing.assert_allclose(weights[~explore], 1.0)
    assert sampler.importance_weights(["never-asked"]).tolist() == [1.0]


def test_state_round_trips_signed_and_refuses_tampering() -> None:
    portfolio = race(column_right=1, n=50)  # fixed members cannot be serialized: use river
    model = build_model("auto(members=('logistic', 'gaussian_nb'), vote='hedge')")
    X = np.random.default_rng(2).normal(size=(60, 3))
    model.learn(X, (X[:, 0] > 0).astype(int).tolist())
    blob = model.to_bytes(KEY)
    back = Portfolio.from_bytes(blob, KEY)
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))
    assert back.race() == model.race() and back.version == model.version
    with pytest.raises(ValueError, match="integrity check"):
        Portfolio.from_bytes(blob[:-1] + bytes([blob[-1] ^ 1]), KEY)
    with pytest.raises(ValueError, match="integrity check"):
        Portfolio.from_bytes(blob, b"another-key-0123456789")
    assert portfolio.race()["leader"] == "second"


def test_bad_specs_and_options_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="choose from .*logistic, softmax, gaussian_nb, hoeffding_tree"):
        build_model("auto(members=('xgboost',))")
    with pytest.raises(ValueError, match="auto takes vote, members"):
        build_model("auto(speed=2)")
    with pytest.raises(ValueError, match="vote must be one of leader, hedge"):
        build_model("auto(vote='majority')")
    with pytest.raises(ValueError, match="positive finite"):
        build_model("auto(members=('logistic',))").learn(np.zeros((1, 2)), [0], weights=[0.0])


def test_auto_puts_the_torch_head_first_where_torch_is_installed() -> None:
    import importlib.util

    from streamer.models import AUTO_MEMBERS, DEFAULT_MODEL, auto_members

    portfolio = build_model(DEFAULT_MODEL)
    expected = list(AUTO_MEMBERS)
    if importlib.util.find_spec("torch") is not None:
        expected = ["torch_mlp", *expected]
    assert list(auto_members()) == list(portfolio.members) == expected
    assert portfolio.leader == expected[0]  # the first member leads until shown worse
