"""Policy expressions: parsing, ranking, reasons, and the gates wired through the Sampler."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.core.policy import TERMS, RunningRank, parse
from streamer.core.sampler import Sampler
from streamer.models import build_model
from streamer.prequential import Prequential, prequential


@pytest.mark.parametrize(
    ("text", "shape"),
    [
        ("margin", "Term('margin')"),
        ("MARGIN", "Term('margin')"),
        ("least_confidence", "Term('least-confidence')"),
        ("margin or novelty", "Or(Term('margin'), Term('novelty'))"),
        ("margin or novelty and entropy", "Or(Term('margin'), And(Term('novelty'), Term('entropy')))"),
        ("(margin or novelty) and entropy", "And(Or(Term('margin'), Term('novelty')), Term('entropy'))"),
        ("margin * density or kl", "Or(Product(Term('margin'), Term('density')), Term('kl'))"),
    ],
)
def test_parse_precedence(text: str, shape: str) -> None:
    assert repr(parse(text)) == shape


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "non-empty"),
        ("margn", "unknown term 'margn'"),
        ("margin or", "at the end"),
        ("(margin", "missing '\\)'"),
        ("margin novelty", "unexpected 'novelty'"),
        ("margin + novelty", "cannot read"),
    ],
)
def test_parse_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(text)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(float("nan"))), min_size=1, max_size=50),
    st.integers(1, 40),
)
def test_running_rank_is_in_unit_interval_and_monotone(values: list[float], window: int) -> None:
    rank = RunningRank(window)
    rank(np.linspace(-10, 10, 7))
    arr = np.asarray(values)
    out = rank(arr)
    assert out.shape == arr.shape and np.all((out >= 0) & (out <= 1))
    clean = np.nan_to_num(arr, nan=1.0)
    order = np.argsort(clean, kind="stable")
    assert np.all(np.diff(out[order]) >= -1e-12)


def test_or_records_the_operand_that_ranked_higher() -> None:
    node = parse("margin or novelty")
    warm = {"margin": np.linspace(0, 1, 100), "novelty": np.linspace(0, 1, 100)}
    node.evaluate(warm)
    score, reasons = node.evaluate({"margin": np.array([0.99, 0.01]), "novelty": np.array([0.01, 0.99])})
    assert reasons == ["uncertainty", "novelty"]
    assert np.all(score > 0.95)


def blobs(n: int, n_classes: int = 3, d: int = 4, seed: int = 0, weights=None):
    rng = np.random.default_rng(seed)
    y = rng.choice(n_classes, n, p=weights)
    centres = rng.normal(0.0, 4.0, (n_classes, d))
    return centres[y] + rng.normal(0.0, 1.0, (n, d)), y


def run(sampler: Sampler, X, y, batch: int = 20, **options) -> Prequential:
    """Test-then-train in batches of ``batch`` (no item ids)."""
    batches = ((X[i : i + batch], y[i : i + batch]) for i in range(0, len(y), batch))
    return prequential(sampler, batches, ids=False, **options)


@pytest.mark.parametrize("policy", ["margin or novelty", "entropy * density", "novelty", "(margin and novelty) or entropy"])
def test_composite_policies_hold_the_budget_and_learn(policy: str) -> None:
    X, y = blobs(4_000)
    sampler = Sampler(build_model("StandardScaler | LogisticRegression"), budget=0.05, policy=policy, seed=0)
    accuracy = run(sampler, X, y).accuracy
    snap = sampler.snapshot()
    assert abs(snap["asked"] - 200) <= sampler.controller.slack + 1
    assert accuracy > 0.8
    assert snap["policy"] == policy


@pytest.mark.parametrize("standardize", [False, True])
def test_novelty_reason_is_recorded_and_memory_holds_requested_items(standardize: bool) -> None:
    X, y = blobs(3_000)
    X[:, 0] *= 1_000.0  # one feature in other units
    sampler = Sampler(build_model("StandardScaler | LogisticRegression"), budget=0.05,
                      policy="margin or novelty", novelty_standardize=standardize)
    run(sampler, X, y)
    by_reason = sampler.snapshot()["asked_by_reason"]
    assert by_reason["novelty"] > 0 and by_reason["uncertainty"] > 0


def test_committee_policy_needs_a_committee_model() -> None:
    with pytest.raises(ValueError, match="committee"):
        Sampler(_NoCommittee(), policy="disagreement")


def test_every_term_is_usable() -> None:
    X, y = blobs(600)
    for term in TERMS:
        model = build_model("StandardScaler | LogisticRegression")
        if term in ("disagreement", "kl"):
            from streamer.models import COMMITTEE_MODEL

            model = build_model(COMMITTEE_MODEL, seed=0)
        sampler = Sampler(model, budget=0.1, policy=term)
        run(sampler, X, y, batch=50)
        assert sampler.snapshot()["asked"] > 0


def test_in_flight_items_are_not_asked_again() -> None:
    sampler = Sampler(build_model("GaussianNB"), budget=1.0)
    X = np.zeros((3, 2))
    assert sampler.decide(X, ids=["a", "b", "a"]).ask.tolist() == [True, True, False]
    assert not sampler.decide(X[:2], ids=["a", "b"]).ask.any()
    sampler.learn(X[:1], [0], ids=["a"])
    assert sampler.decide(X[:2], ids=["a", "b"]).ask.tolist() == [True, False]
    sampler.forget(["b"])
    assert sampler.decide(X[:1], ids=["b"]).ask.tolist() == [True]
    assert sampler.snapshot()["not_reasked"] == 4


def test_in_flight_memory_is_bounded() -> None:
    sampler = Sampler(build_model("GaussianNB"), budget=1.0, max_in_flight=10)
    sampler.decide(np.zeros((50, 2)), ids=[str(i) for i in range(50)])
    assert sampler.snapshot()["in_flight"] == 10


def test_class_balance_asks_more_for_rare_predicted_classes() -> None:
    X, y = blobs(8_000, weights=[0.9, 0.07, 0.03], seed=3)
    share = {}
    for strength in (0.0, 1.0):
        sampler = Sampler(build_model("StandardScaler | LogisticRegression"), budget=0.05,
                          class_balance=strength, seed=0)
        asked_y = y[run(sampler, X, y).asked]
        share[strength] = 1.0 - np.mean(np.asarray(asked_y) == 0)
        assert abs(len(asked_y) - 400) <= sampler.controller.slack + 1
    assert share[1.0] > share[0.0]


def test_drift_boost_asks_more_after_a_change_and_pays_it_back() -> None:
    rng = np.random.default_rng(0)
    n = 12_000
    X = rng.normal(size=(n, 2))
    y = (X[:, 0] > 0).astype(int)
    y[6_000:] = 1 - y[6_000:]  # abrupt concept flip
    sampler = Sampler(build_model("StandardScaler | LogisticRegression"), budget=0.05, drift=True,
                      drift_duration=400, seed=0, tolerance=0.2)
    detected_at = None

    def watch(partial: Prequential, *_) -> None:  # after each batch has been learned
        nonlocal detected_at
        if detected_at is None and partial.items > 6_000 and sampler.snapshot()["drifts"]:
            detected_at = partial.items

    ask = run(sampler, X, y, after_batch=watch).asked
    assert detected_at is not None and detected_at < 9_000
    boosted = ask[detected_at : detected_at + 400].sum()
    assert boosted > 0.05 * 400 * 1.5  # the ask rate rises right after the detection ...
    assert abs(int(ask.sum()) - 0.05 * n) <= sampler.controller.slack + 1  # ... and is paid back


def test_labels_per_second_caps_the_ask_rate() -> None:
    now = [0.0]
    sampler = Sampler(build_model("GaussianNB"), budget=0.5, labels_per_second=2.0, clock=lambda: now[0])
    asked = 0
    for second in range(10):
        now[0] = float(second)
        asked += int(sampler.decide(np.random.default_rng(second).normal(size=(100, 2))).ask.sum())
    assert asked <= 2 + 2 * 10


class _NoCommittee:
    classes: list = []
    n_features = None
    version = 0


def test_a_fresh_hoeffding_tree_still_asks_and_spends_the_budget() -> None:
    # river's EntropySampler never asks around a fresh tree (empty probabilities -> entropy 0).
    X, y = blobs(3_000, seed=5)
    sampler = Sampler(build_model("HoeffdingTreeClassifier"), budget=0.05, seed=0)
    accuracy = run(sampler, X, y).accuracy
    snap = sampler.snapshot()
    assert abs(snap["asked"] - 150) <= sampler.controller.slack + 1
    assert snap["asked_by_reason"]["uncertainty"] > 0
    assert accuracy > 0.6


def test_randomized_selection_holds_the_budget_and_favours_uncertain_items() -> None:
    X, y = blobs(6_000, seed=2)
    sampler = Sampler(build_model("StandardScaler | LogisticRegression"), budget=0.05,
                      randomize=True, seed=0)
    result = run(sampler, X, y, keep_decisions=True)
    margins = [d.scores.get("margin", np.zeros(len(d.ask))) for d in result.decisions]
    m, a = np.concatenate(margins)[1_000:], result.asked[1_000:]
    assert abs(sampler.snapshot()["asked"] - 300) <= sampler.controller.slack + 1
    assert m[a].mean() > np.quantile(m, 0.7)  # asked items are mostly the uncertain ones ...
    assert m[a].min() < np.quantile(m, 0.95)  # ... but not only the very top: randomised
    again = Sampler(build_model("StandardScaler | LogisticRegression"), budget=0.05, randomize=True, seed=0)
    first = sampler.decide(X[:50]).ask
    assert again.decide(X[:50]).ask.shape == first.shape
