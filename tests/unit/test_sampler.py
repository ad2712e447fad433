"""Sampler: what the service, Faust and the simulator rely on."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest

from streamer.core.decisions import REASONS, Decisions
from streamer.core.model import Label
from streamer.core.sampler import DEFAULT_POLICY, STRATEGIES, Sampler
from streamer.models import build_model
from streamer.prequential import prequential


def blobs(n: int, n_classes: int = 3, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well separated Gaussian blobs in random order."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    centres = rng.normal(0.0, 5.0, (n_classes, d))
    return centres[y] + rng.normal(0.0, 1.0, (n, d)), y


def run(sampler: Sampler, X: np.ndarray, y: np.ndarray, batch: int = 10) -> list[Decisions]:
    """Test-then-train in batches of ``batch``; every batch's decisions."""
    batches = ((X[i : i + batch], y[i : i + batch]) for i in range(0, len(y), batch))
    return prequential(sampler, batches, ids=False, keep_decisions=True).decisions


class SpyModel:
    """A Model that records the order of calls and knows two fixed classes."""

    def __init__(self) -> None:
        self.classes: list[Label] = [0, 1]
        self.n_features: int | None = 2
        self.version = 0
        self.calls: list[str] = []

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self.calls.append("predict")
        return np.tile([0.7, 0.3], (len(X), 1))

    def observe(self, X: np.ndarray) -> None:
        self.calls.append("observe")

    def learn(self, X: np.ndarray, y: Sequence[Label]) -> None:
        self.calls.append("learn")
        self.version += 1

    def to_bytes(self, key: bytes) -> bytes:  # pragma: no cover - not used here
        return b""

    @classmethod
    def from_bytes(cls, data: bytes, key: bytes) -> SpyModel:  # pragma: no cover - not used here
        return cls()


def test_default_policy_is_one_of_the_single_term_policies() -> None:
    assert DEFAULT_POLICY in STRATEGIES


def test_cold_start_asks_the_first_items_until_two_classes_are_known() -> None:
    sampler = Sampler(build_model("GaussianNB"), budget=0.5)  # slack: 50 labels
    X = np.zeros((4, 2))
    first = sampler.decide(X)
    assert first.ask.all() and first.reason == ["cold_start"] * 4
    assert first.prediction == [None] * 4 and first.proba.shape == (4, 0)
    sampler.learn(X, [1, 1, 1, 1])  # still one class
    assert sampler.decide(X).reason == ["cold_start"] * 4
    sampler.learn(X[:1] + 1.0, [2])
    assert "cold_start" not in sampler.decide(X).reason


def test_cold_start_spends_only_the_slack_ahead_of_the_budget() -> None:
    # A service's first micro-batch: 1000 items arrive before any label can come back.
    sampler = Sampler(build_model("StandardScaler | LogisticRegression"), budget=0.05)
    slack = sampler.controller.slack  # 2% of a 10k-item window's 500 labels, split both ways
    assert slack == 5
    first = sampler.decide(np.random.default_rng(0).normal(size=(1_000, 3)))
    assert int(first.ask.sum()) == 50 + 5
    assert set(first.reason) == {"cold_start", "skip"}
    assert first.ask[:5].all()  # the first items are asked at once: the model needs them


def test_cold_start_keeps_the_share() -> None:
    # 300 items of a single class: the cold start keeps asking within the budget.
    X, y = blobs(6_000, seed=1)
    y[:300] = 0
    sampler = Sampler(build_model("StandardScaler | GaussianNB"), budget=0.05, seed=0)
    run(sampler, X, y)
    snap = sampler.snapshot()
    assert snap["asked_by_reason"]["cold_start"] >= 15
    assert abs(snap["asked"] - 0.05 * 6_000) <= sampler.controller.slack + 1


def test_decisions_fill_every_field() -> None:
    X, y = blobs(500)
    sampler = Sampler(build_model("StandardScaler | LogisticRegression"), budget=0.2)
    run(sampler, X, y, batch=50)
    B = 50
    d = sampler.decide(X[:B])
    assert d.ask.dtype == bool and d.ask.shape == (B,)
    assert len(d.reason) == B and set(d.reason) <= set(REASONS)
    assert d.classes == [0, 1, 2] and d.proba.shape == (B, 3)
    np.testing.assert_allclose(d.proba.sum(axis=1), 1.0)
    assert d.prediction == [d.classes[j] for j in d.proba.argmax(axis=1)]
    np.testing.assert_allclose(d.confidence, d.proba.max(axis=1))
    assert d.scores["margin"].shape == (B,)
    assert d.model_version == sampler.model.version > 0
    assert d.threshold == sampler.snapshot()["threshold"]
    assert all(r == "skip" for r, a in zip(d.reason, d.ask, strict=True) if not a)


def test_predicts_before_the_model_observes_the_batch() -> None:
    model = SpyModel()
    Sampler(model).decide(np.zeros((3, 2)))
    assert model.calls == ["predict", "observe"]


def test_learn_reports_whether_the_prediction_was_right_before_learning() -> None:
    model = SpyModel()  # always predicts class 0
    correct = Sampler(model).learn(np.zeros((3, 2)), [0, 1, 0])
    assert correct.tolist() == [True, False, True]
    assert model.calls == ["predict", "learn"] and model.version == 1


def test_learning_increments_the_model_version() -> None:
    sampler = Sampler(build_model("GaussianNB"))
    sampler.learn(np.zeros((2, 2)), [0, 1])
    sampler.learn(np.ones((1, 2)), [1])
    assert sampler.model.version == 2


def test_random_policy_ignores_uncertainty_and_records_random() -> None:
    X, y = blobs(4_000)
    sampler = Sampler(build_model("StandardScaler | LogisticRegression"), policy="random", budget=0.05)
    reasons = [r for d in run(sampler, X, y) for r in d.reason]
    assert set(reasons) <= {"random", "skip", "cold_start"}
    assert "uncertainty" not in reasons and "random" in reasons
    assert abs(reasons.count("skip") - 0.95 * 4_000) <= 0.05 * 0.05 * 4_000 + 5


@pytest.mark.parametrize("policy", STRATEGIES)
def test_every_single_term_policy_learns_the_blobs(policy: str) -> None:
    X, y = blobs(3_000, seed=2)
    sampler = Sampler(build_model("StandardScaler | GaussianNB"), policy=policy, budget=0.05)
    decisions = run(sampler, X, y)
    late = [p == t for d, ts in zip(decisions[-100:], y[-1000:].reshape(100, 10), strict=True)
            for p, t in zip(d.prediction, ts, strict=True)]
    assert np.mean(late) > 0.9


def test_snapshot_is_json_and_counts_reasons() -> None:
    X, y = blobs(1_000)
    sampler = Sampler(build_model("GaussianNB"), budget=0.1, seed=3)
    run(sampler, X, y)
    snap = json.loads(json.dumps(sampler.snapshot()))
    assert {"seen", "asked", "budget", "spend_ratio", "threshold", "policy", "strategy", "model_version",
            "n_classes", "asked_by_reason"} <= set(snap)
    assert snap["seen"] == 1_000 and snap["n_classes"] == 3 and snap["budget"] == 0.1
    assert sum(snap["asked_by_reason"].values()) == snap["asked"]


def test_same_seed_same_decisions() -> None:
    X, y = blobs(1_000, seed=4)
    a = [d.ask for d in run(Sampler(build_model("StandardScaler | LogisticRegression"), seed=5), X, y)]
    b = [d.ask for d in run(Sampler(build_model("StandardScaler | LogisticRegression"), seed=5), X, y)]
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))


def test_wrong_feature_count_says_what_was_expected() -> None:
    sampler = Sampler(build_model("GaussianNB"))
    sampler.decide(np.zeros((1, 64)))
    with pytest.raises(ValueError, match="features has 63 values, the model expects 64"):
        sampler.decide(np.zeros((1, 63)))


def test_one_dimensional_x_is_rejected_with_a_hint() -> None:
    with pytest.raises(ValueError, match=r"X\[None, :\]"):
        Sampler(build_model("GaussianNB")).decide(np.zeros(3))


def test_unknown_policy_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="margin, entropy, least-confidence, .*'random'"):
        Sampler(build_model("GaussianNB"), policy="smallest-margin")


def test_exposes_budget_policy_and_model() -> None:
    model = build_model("GaussianNB")
    sampler = Sampler(model, budget=0.2, policy="entropy")
    assert (sampler.budget, sampler.policy, sampler.model) == (0.2, "entropy", model)


def test_cancel_turns_asks_into_skips_and_frees_their_ids() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 3))
    sampler = Sampler(build_model("StandardScaler | LogisticRegression"), budget=0.2, seed=0)
    ids = [f"i{k}" for k in range(300)]
    decisions = sampler.decide(X, ids=ids)
    asked = decisions.asked_indices.tolist()
    assert asked
    before = sampler.snapshot()

    sampler.cancel(decisions, asked, ids)

    assert not decisions.ask.any()
    assert all(decisions.reason[i] == "skip" for i in asked)
    after = sampler.snapshot()
    assert after["asked"] == before["asked"] - len(asked)
    assert after["in_flight"] == 0
    assert sum(after["asked_by_reason"].values()) == after["asked"]
    again = sampler.decide(X[asked], ids=[ids[i] for i in asked])  # no longer blocked as in flight
    assert sampler.snapshot()["not_reasked"] == before["not_reasked"]
    assert again.ask.shape == (len(asked),)


def test_zero_capacity_pauses_requests() -> None:
    X = np.random.default_rng(6).normal(size=(500, 3))
    sampler = Sampler(build_model("StandardScaler | LogisticRegression"), budget=0.1, seed=0)

    decisions = sampler.decide(X, capacity=0)

    assert not decisions.ask.any()
    assert sampler.snapshot()["forfeited"] == pytest.approx(50.0)


def test_a_warm_up_per_class_is_granted_when_a_class_is_first_learned() -> None:
    sampler = Sampler(build_model("GaussianNB"), budget=0.01, seed=0, warmup=10, warmup_per_class=5)
    X = np.random.default_rng(0).normal(size=(4, 2))
    assert sampler.controller.warmup == 10
    sampler.learn(X[:2], [0, 0])
    assert sampler.controller.warmup == 15  # class 0 is new
    sampler.learn(X[2:], [0, 1])
    assert sampler.controller.warmup == 20  # class 1 is new, class 0 was known
    assert sampler.controller.promise["warmup"] == 20
    with pytest.raises(ValueError, match="warmup_per_class must be a number of labels >= 0"):
        Sampler(build_model("GaussianNB"), warmup_per_class=-1)
