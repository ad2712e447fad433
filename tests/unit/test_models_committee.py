"""Committees: the members of a river ensemble, asked one by one, and the specs that build them."""

from __future__ import annotations

import numpy as np
import pytest
from river import ensemble, multiclass, naive_bayes

from streamer.gates.committee import mean_kl, vote_entropy
from streamer.models import COMMITTEE_MODEL, LOGISTIC_MODEL, RiverModel, build_model


def noisy_stream(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three overlapping blobs labelled 1, 2, 3, with 20% of the labels flipped at random."""
    rng = np.random.default_rng(seed)
    y = rng.integers(1, 4, n)
    X = np.eye(3)[y - 1] * 1.5 + rng.normal(0.0, 1.0, (n, 3))
    flipped = rng.random(n) < 0.2
    y[flipped] = rng.integers(1, 4, int(flipped.sum()))
    return X, y


def trained_committee(spec: str = COMMITTEE_MODEL, seed: int = 0) -> tuple[RiverModel, np.ndarray]:
    X, y = noisy_stream()
    model = build_model(spec, seed=seed)
    model.observe(X)
    model.learn(X, y)
    return model, X


def bagged_naive_bayes(n_models: int = 10, seed: int = 0) -> RiverModel:
    return RiverModel(ensemble.BaggingClassifier(naive_bayes.GaussianNB(), n_models=n_models, seed=seed))


# -- committee_proba ------------------------------------------------------------------------------


def test_committee_has_one_row_per_member_item_and_class() -> None:
    model, X = trained_committee()
    assert model.committee_proba(X[:7]).shape == (5, 7, 3)


def test_member_columns_follow_the_model_classes() -> None:
    model = bagged_naive_bayes(n_models=3)
    model.learn(np.array([[2.0], [0.0], [1.0]] * 20), ["c", "a", "b"] * 20)
    x = np.array([[0.4]])
    committee = model.committee_proba(x)
    assert model.classes == ["a", "b", "c"]
    for k, member in enumerate(model._classifier):
        proba = member.predict_proba_one({"x0": 0.4})
        np.testing.assert_allclose(committee[k, 0], [proba[c] for c in model.classes])


def test_a_class_a_member_never_saw_gets_probability_zero() -> None:
    model = bagged_naive_bayes(seed=1)
    model.learn(np.zeros((20, 1)), ["a"] * 20)
    model.learn(np.ones((1, 1)), ["b"])  # Poisson weights: some members skip this item
    committee = model.committee_proba(np.ones((1, 1)))
    blind = [k for k, m in enumerate(model._classifier) if "b" not in m.predict_proba_one({"x0": 1.0})]
    assert blind, "seed 1 should leave at least one member without class 'b'"
    np.testing.assert_array_equal(committee[blind, 0], [[1.0, 0.0]] * len(blind))


def test_a_member_that_learned_nothing_gives_a_uniform_row() -> None:
    model = bagged_naive_bayes(seed=1)
    model.learn(np.array([[0.0], [1.0]]), ["a", "b"])
    committee = model.committee_proba(np.ones((1, 1)))
    empty = [k for k, m in enumerate(model._classifier) if not m.predict_proba_one({"x0": 1.0})]
    assert empty, "seed 1 should leave at least one member that learned nothing"
    np.testing.assert_array_equal(committee[empty, 0], [[0.5, 0.5]] * len(empty))


def test_the_committee_mean_is_the_bagging_prediction() -> None:
    model, X = trained_committee()
    np.testing.assert_allclose(model.committee_proba(X).mean(axis=0), model.predict_proba(X), atol=1e-12)


def test_members_disagree_after_learning_a_noisy_stream() -> None:
    model, X = trained_committee()
    committee = model.committee_proba(X)
    assert np.mean(mean_kl(committee) > 0.0) > 0.9  # soft: almost every item
    assert np.mean(vote_entropy(committee) > 0.0) > 0.05  # hard votes split on some items


def test_asking_the_committee_leaves_the_version_alone() -> None:
    model, X = trained_committee()
    model.committee_proba(X)
    assert model.version == 1


@pytest.mark.parametrize("spec", [LOGISTIC_MODEL, "GaussianNB", "StandardScaler | SoftmaxRegression"])
def test_a_single_model_has_no_committee(spec: str) -> None:
    model, X = trained_committee(spec)
    assert model.committee_proba(X) is None


# -- committee specs ------------------------------------------------------------------------------


def test_binary_only_members_are_wrapped_in_one_vs_rest_inside_the_ensemble() -> None:
    model, X = trained_committee()
    assert isinstance(model._classifier, ensemble.BaggingClassifier)
    assert all(isinstance(member, multiclass.OneVsRestClassifier) for member in model._classifier)
    assert model.classes == [1, 2, 3]


@pytest.mark.parametrize(
    "spec",
    [
        "BaggingClassifier(model=LogisticRegression)",
        "BaggingClassifier(model=linear_model.LogisticRegression, n_models=3)",
        "ensemble.ADWINBaggingClassifier(model=GaussianNB(), n_models=3)",
        "StandardScaler | LeveragingBaggingClassifier(model=Perceptron(l2=0.01), n_models=3)",
    ],
)
def test_nested_estimator_specs_build_a_committee(spec: str) -> None:
    model, X = trained_committee(spec)
    assert model.spec == spec and model.committee_proba(X[:4]).shape[1:] == (4, 3)


def test_keyword_values_reach_the_nested_estimator() -> None:
    model = build_model("BaggingClassifier(model=LogisticRegression(l2=0.001), n_models=2)")
    assert model._classifier.model.classifier.l2 == 0.001


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("BaggingClassifier(model=LogisticRegresion)", "did you mean LogisticRegression"),
        ("BaggingClassifier(model=abs(1))", "must be a literal .* or a river estimator"),
        ("BaggingClassifier(model=x[0])", "must be a literal .* or a river estimator"),
        ("BaggingClassifier(model=os.system)", "unknown river estimator 'os.system'"),
        ("BaggingClassifier(model=optim.SGD)", "river.optim.sgd.SGD is not an estimator"),
        ("BaggingClassifier(model=LogisticRegression(l2=abs(1)))", "value of 'l2' must be a literal"),
        ("BaggingClassifier(model=LogisticRegression(0.1))", "by keyword"),
        ("BaggingClassifier(model=LogisticRegression(no_such_arg=1))", "cannot build 'LogisticRegression"),
    ],
)
def test_malformed_nested_specs_are_rejected_with_a_reason(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(spec)


def test_the_ensemble_gets_the_build_seed_unless_the_spec_sets_one() -> None:
    assert build_model(COMMITTEE_MODEL, seed=3)._classifier.seed == 3
    assert build_model("BaggingClassifier(model=LogisticRegression, seed=9)", seed=3)._classifier.seed == 9


def test_the_same_seed_gives_the_same_committee() -> None:
    a, X = trained_committee(seed=7)
    b, _ = trained_committee(seed=7)
    np.testing.assert_array_equal(a.committee_proba(X), b.committee_proba(X))


def test_another_seed_gives_another_committee() -> None:
    a, X = trained_committee(seed=7)
    b, _ = trained_committee(seed=8)
    assert not np.array_equal(a.committee_proba(X), b.committee_proba(X))
