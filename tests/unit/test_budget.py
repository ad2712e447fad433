"""The budget controller holds the requested label share, whatever the scores look like."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.core.budget import BudgetController, RandomQuota
from streamer.core.sampler import Sampler
from streamer.data import default_data_dir, iter_csv_batches, synthetic_stream
from streamer.models import DEFAULT_MODEL, build_model

N = 20_000


def run_scores(controller: BudgetController, scores: np.ndarray, batch: int = 1) -> np.ndarray:
    asks = [controller.decide(scores[i : i + batch])[0] for i in range(0, len(scores), batch)]
    return np.concatenate(asks)


def within_5_percent(asked: int, budget: float, seen: int) -> bool:
    return abs(asked - budget * seen) <= 0.05 * budget * seen


SCORE_STREAMS = {
    "uniform": lambda rng: rng.random(N),
    "always tiny": lambda rng: np.full(N, 1e-6),
    "always zero": lambda rng: np.zeros(N),
    "always huge": lambda rng: np.ones(N),
    "confident then lost": lambda rng: np.r_[rng.beta(1, 30, N // 2), rng.beta(5, 1, N // 2)],
    "lost then confident": lambda rng: np.r_[rng.beta(5, 1, N // 2), rng.beta(1, 30, N // 2)],
}


@pytest.mark.parametrize("budget", [0.01, 0.05, 0.2])
@pytest.mark.parametrize("stream", sorted(SCORE_STREAMS))
def test_share_holds_within_5_percent_on_any_score_stream(stream: str, budget: float) -> None:
    scores = SCORE_STREAMS[stream](np.random.default_rng(7))
    controller = BudgetController(budget, seed=3)
    asked = int(run_scores(controller, scores, batch=50).sum())
    assert within_5_percent(asked, budget, N), f"asked {asked} of {N} at budget {budget}"
    assert controller.asked == asked and controller.seen == N


def test_share_does_not_depend_on_batch_size() -> None:
    scores = np.random.default_rng(1).random(5_000)
    per_item = run_scores(BudgetController(0.05, seed=0), scores, batch=1)
    batched = run_scores(BudgetController(0.05, seed=0), scores, batch=64)
    np.testing.assert_array_equal(per_item, batched)


def test_uncertain_items_are_preferred() -> None:
    scores = np.random.default_rng(2).random(N)
    ask = run_scores(BudgetController(0.05, explore=0.0, seed=0), scores)
    # Asked items should come from the top of the score distribution, not at random.
    assert scores[ask].mean() > 0.9
    assert np.quantile(scores[~ask], 0.5) < 0.55


def test_explore_share_of_the_budget_goes_to_random_items() -> None:
    controller = BudgetController(0.05, explore=0.2, seed=4)
    _, reasons = controller.decide(np.full(N, 0.5))
    n_explore = reasons.count("explore")
    assert n_explore == pytest.approx(0.2 * 0.05 * N, abs=2)
    assert reasons.count("uncertainty") + n_explore == controller.asked


def test_explore_one_is_random_sampling_at_the_budget() -> None:
    controller = BudgetController(0.05, explore=1.0, seed=0, explore_reason="random")
    scores = np.r_[np.ones(N // 2), np.zeros(N // 2)]
    ask, reasons = controller.decide(scores)
    assert set(reasons) == {"random", "skip"}
    # Random picks ignore the scores: both halves get the same share.
    assert ask[: N // 2].sum() == pytest.approx(ask[N // 2 :].sum(), abs=2)
    assert within_5_percent(int(ask.sum()), 0.05, N)


def test_labels_charged_outside_are_paid_back() -> None:
    controller = BudgetController(0.05, seed=0)
    controller.charge(200)  # e.g. a long cold start: 200 labels, 20x the share
    ask = run_scores(controller, np.ones(4_000))
    assert not ask[:3_000].any(), "the controller asked while still over budget"
    assert within_5_percent(controller.asked, 0.05, controller.seen)


def test_same_seed_gives_same_decisions() -> None:
    scores = np.random.default_rng(5).random(3_000)
    a = run_scores(BudgetController(0.05, seed=11), scores)
    b = run_scores(BudgetController(0.05, seed=11), scores)
    np.testing.assert_array_equal(a, b)


def test_exposes_threshold_seen_asked_and_spend_ratio() -> None:
    controller = BudgetController(0.1, seed=0)
    assert controller.spend_ratio == 0.0
    controller.decide(np.random.default_rng(0).random(1_000))
    assert controller.seen == 1_000
    assert controller.spend_ratio == pytest.approx(controller.asked / 1_000 / 0.1)
    assert 0.0 <= controller.threshold <= 1.1
    assert 0.0 <= controller.window_spend <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budget": 0.0}, "budget must be in \\(0, 1\\]"),
        ({"budget": 1.5}, "budget must be in \\(0, 1\\]"),
        ({"budget": 0.1, "explore": -0.1}, "explore must be in \\[0, 1\\]"),
        ({"budget": 0.1, "window": 0}, "window must be a positive number"),
        ({"budget": 0.1, "burst": 0.5}, "burst must be at least 1"),
        ({"budget": 0.1, "step": 0.0}, "step must be in"),
    ],
)
def test_invalid_arguments_are_rejected_with_the_allowed_range(
    kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BudgetController(**kwargs)


def test_two_dimensional_scores_are_rejected() -> None:
    with pytest.raises(ValueError, match="1-d"):
        BudgetController(0.1).decide(np.zeros((2, 2)))


def test_random_quota_is_exact_and_spread_over_the_stream() -> None:
    quota = RandomQuota(0.01, np.random.default_rng(0))
    picks = np.array([quota.next() for _ in range(10_000)])
    assert picks.sum() == 100
    assert picks[:5_000].sum() == 50  # one per block of 100 items


def sea_batches(batch_size: int):
    data_dir = default_data_dir()
    path = data_dir / "sea_abrupt.csv.gz" if data_dir else None
    if path is not None and path.exists():
        return iter_csv_batches(path, batch_size)
    return synthetic_stream(N, seed=0, batch_size=batch_size)


@pytest.mark.parametrize("budget", [0.01, 0.05, 0.2])
def test_share_holds_on_sea_with_the_default_model(budget: float) -> None:
    sampler = Sampler(build_model(DEFAULT_MODEL, seed=0), budget=budget, seed=0)
    seen = asked = 0
    for X, y, _ in sea_batches(batch_size=50):
        decisions = sampler.decide(X)
        if decisions.ask.any():
            sampler.learn(X[decisions.ask], y[decisions.ask])
        seen += len(y)
        asked += int(decisions.ask.sum())
    assert seen == N
    assert within_5_percent(asked, budget, seen), f"asked {asked} at budget {budget}"
    assert sampler.snapshot()["asked_by_reason"]["uncertainty"] > 0.5 * asked
