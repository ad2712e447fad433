"""The budget controller holds the requested label share, whatever the scores look like."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.core.budget import BudgetController, RandomQuota, TokenBucket
from streamer.core.sampler import Sampler
from streamer.data import synthetic_stream
from streamer.models import LOGISTIC_MODEL, build_model
from streamer.prequential import prequential
from streamer.simulate import worst_window_deviation

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


@pytest.mark.parametrize("budget", [0.01, 0.05, 0.1])
@pytest.mark.parametrize("stream", sorted(SCORE_STREAMS))
def test_every_10k_window_holds_the_budget_within_2_percent(stream: str, budget: float) -> None:
    scores = SCORE_STREAMS[stream](np.random.default_rng(7))
    ask = run_scores(BudgetController(budget, seed=1), scores, batch=7)
    assert worst_window_deviation(ask, budget, 10_000) <= 0.02 + 1e-9


@settings(max_examples=40, deadline=None)
@given(
    budget=st.sampled_from([0.01, 0.03, 0.05, 0.1, 0.3]),
    explore=st.sampled_from([0.0, 0.1, 0.5]),
    batch=st.integers(1, 300),
    seed=st.integers(0, 10_000),
    shape=st.sampled_from(["uniform", "beta-low", "beta-high", "switching", "constant"]),
)
def test_promise_holds_for_any_score_stream_and_batching(
    budget: float, explore: float, batch: int, seed: int, shape: str
) -> None:
    rng = np.random.default_rng(seed)
    n = 12_000
    scores = {
        "uniform": lambda: rng.random(n),
        "beta-low": lambda: rng.beta(1, 30, n),
        "beta-high": lambda: rng.beta(5, 1, n),
        "switching": lambda: np.where((np.arange(n) // 997) % 2 == 0, rng.random(n) * 0.1, 0.9 + rng.random(n) * 0.1),
        "constant": lambda: np.full(n, rng.random()),
    }[shape]()
    ctl = BudgetController(budget, explore=explore, seed=seed, promise_window=2_000)
    ask = run_scores(ctl, scores, batch=batch)
    slack = ctl.slack
    # Never more than `slack` labels ahead of or behind budget * seen, after every item ...
    drift = np.cumsum(ask) - budget * np.arange(1, n + 1)
    assert drift.max() <= slack + 1e-9 and drift.min() >= -slack - 1 - 1e-9
    # ... hence every window of promise_window items within 2 * slack (+1 rounding) labels.
    assert worst_window_deviation(ask, budget, 2_000) * budget * 2_000 <= 2 * slack + 1 + 1e-9


def test_catch_up_keeps_the_budget_spent_when_scores_never_clear() -> None:
    controller = BudgetController(0.05, explore=0.0, seed=0, gain=0.0, initial_threshold=1.0)
    ask, reasons = controller.decide(np.zeros(10_000))
    assert abs(int(ask.sum()) - 500) <= controller.slack + 1
    assert "catch_up" in reasons


def test_scale_boosts_then_pays_back_around_the_plan() -> None:
    controller = BudgetController(0.05, seed=0)
    scale = np.r_[np.ones(2_000), np.full(1_000, 3.0), np.full(2_000, 0.0), np.ones(5_000)]
    ask, _ = controller.decide(np.random.default_rng(0).random(10_000), scale=scale)
    per_phase = [int(ask[a:b].sum()) for a, b in [(0, 2000), (2000, 3000), (3000, 5000), (5000, 10000)]]
    assert per_phase[1] >= 130  # three times the budget during the boost (150 planned)
    assert per_phase[2] <= 2 * controller.slack  # paid back: nothing planned, nothing asked
    assert abs(int(ask.sum()) - controller.planned) <= controller.slack + 1


def test_limit_caps_a_batch_and_blocked_items_are_never_asked() -> None:
    controller = BudgetController(0.5, explore=0.0, seed=0)
    ask, _ = controller.decide(np.ones(100), limit=3)
    assert int(ask.sum()) == 3
    blocked = np.zeros(100, dtype=bool)
    blocked[::2] = True
    ask, _ = controller.decide(np.ones(100), blocked=blocked)
    assert not ask[blocked].any() and ask[~blocked].any()


def test_threshold_is_reported_on_the_score_scale() -> None:
    controller = BudgetController(0.05, seed=0)
    controller.decide(np.ones(50))  # far ahead: the gate closes
    assert 0.0 <= controller.threshold <= 1.0


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(10.0, capacity=5, clock=lambda: now[0])
    assert bucket.available() == 5
    bucket.take(5)
    assert bucket.available() == 0
    now[0] = 0.25
    assert bucket.available() == 2
    now[0] = 100.0
    assert bucket.available() == 5
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0.0)


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


def test_nan_scores_count_as_most_uncertain() -> None:
    controller = BudgetController(0.5, explore=0.0, initial_threshold=0.9, seed=0)
    ask, _ = controller.decide(np.array([np.nan, 0.1]))
    assert ask.tolist() == [True, False]


def test_two_dimensional_scores_are_rejected() -> None:
    with pytest.raises(ValueError, match="1-d"):
        BudgetController(0.1).decide(np.zeros((2, 2)))


def test_random_quota_is_exact_and_spread_over_the_stream() -> None:
    quota = RandomQuota(0.01, np.random.default_rng(0))
    picks = np.array([quota.next() for _ in range(10_000)])
    assert picks.sum() == 100
    assert picks[:5_000].sum() == 50  # one per block of 100 items


def sea_batches(batch_size: int):
    # generated, not read from ../shared/data: the same stream in every checkout
    return synthetic_stream(N, seed=0, batch_size=batch_size)


@pytest.mark.parametrize("budget", [0.01, 0.05, 0.2])
def test_share_holds_on_sea_with_the_default_model(budget: float) -> None:
    sampler = Sampler(build_model(LOGISTIC_MODEL, seed=0), budget=budget, seed=0)
    run = prequential(sampler, sea_batches(batch_size=50), ids=False)
    seen, asked = run.items, run.queried
    assert seen == N
    assert within_5_percent(asked, budget, seen), f"asked {asked} at budget {budget}"
    assert sampler.snapshot()["asked_by_reason"]["uncertainty"] > 0.5 * asked


# -- backpressure: capacity forfeits, cancel withdraws -------------------------------------


def test_no_capacity_asks_nothing_and_owes_nothing() -> None:
    ctl = BudgetController(0.1, seed=0)
    scores = np.random.default_rng(1).random(2000)

    ask, _ = ctl.decide(scores, capacity=0)

    assert not ask.any()
    assert ctl.planned == 0.0 and ctl.deficit == 0.0
    assert ctl.forfeited == pytest.approx(0.1 * 2000)


def test_after_backpressure_the_rate_resumes_without_a_catch_up_burst() -> None:
    rng = np.random.default_rng(2)
    ctl = BudgetController(0.05, seed=0)
    ctl.decide(rng.random(4000))
    ctl.decide(rng.random(4000), capacity=0)  # annotators far behind for 4,000 items

    ask, reasons = ctl.decide(rng.random(4000))

    assert abs(int(ask.sum()) - 200) <= 2 * ctl.slack + 1  # the budget rate, not 400
    assert "catch_up" not in reasons[:200]


def test_capacity_caps_the_asks_of_a_batch() -> None:
    ctl = BudgetController(0.5, seed=0)

    ask, _ = ctl.decide(np.ones(100), capacity=3)

    assert int(ask.sum()) == 3


def test_cancel_forgets_asks_that_were_never_requested() -> None:
    ctl = BudgetController(0.1, seed=0)
    ask, _ = ctl.decide(np.random.default_rng(3).random(1000))
    asked, planned = ctl.asked, ctl.planned

    ctl.cancel(5)

    assert (ctl.asked, ctl.planned) == (asked - 5, planned - 5)
    assert ctl.deficit == pytest.approx(planned - asked)  # nothing to catch up
    with pytest.raises(ValueError, match="cancel takes"):
        ctl.cancel(ctl.asked + 1)


# -- the warm-up: labels ahead of the budget at the start, repaid afterwards ------------------


def _asked_after_each(ctl: BudgetController, scores: np.ndarray, batch: int = 50) -> np.ndarray:
    counts = []
    for start in range(0, len(scores), batch):
        ask, _ = ctl.decide(scores[start:start + batch])
        counts.extend(np.cumsum(ask) + (counts[-1] if counts else 0))
    return np.asarray(counts)


@pytest.mark.parametrize("budget", [0.01, 0.05])
def test_a_warm_up_front_loads_and_never_passes_its_bound(budget: float) -> None:
    warmup, n = 30, 40_000
    scores = np.random.default_rng(0).random(n)
    ctl = BudgetController(budget, seed=0, warmup=warmup)
    asked = _asked_after_each(ctl, scores)
    seen = np.arange(1, n + 1)
    assert np.all(asked <= budget * seen + warmup + ctl.slack + 1e-9)
    early = int(warmup / (budget * 9)) + 1  # credit granted at 10x the budget rate
    assert asked[early] >= 0.8 * (warmup + budget * early)  # the warm-up was spent early
    assert abs(asked[-1] / (budget * n) - 1) <= 0.02  # repaid: the stream's share is the budget


def test_no_warm_up_decides_exactly_as_before() -> None:
    scores = np.random.default_rng(1).random(5_000)
    plain = BudgetController(0.05, seed=3)
    zero = BudgetController(0.05, seed=3, warmup=0)
    for start in range(0, 5_000, 100):
        a, ra = plain.decide(scores[start:start + 100])
        b, rb = zero.decide(scores[start:start + 100])
        assert a.tolist() == b.tolist() and ra == rb


def test_bad_warm_up_settings_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="warmup must be a number of labels >= 0"):
        BudgetController(0.05, warmup=-1)
    with pytest.raises(ValueError, match="warmup_rate must be >= 1"):
        BudgetController(0.05, warmup=5, warmup_rate=0.5)


@settings(max_examples=60, deadline=None)
@given(
    budget=st.floats(0.005, 0.5),
    warmup=st.integers(0, 200),
    seed=st.integers(0, 2**16),
    batch=st.integers(1, 64),
)
def test_the_warm_up_bound_holds_for_any_scores(budget: float, warmup: int, seed: int, batch: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.random(3_000) ** rng.uniform(0.2, 5.0)  # skewed either way
    ctl = BudgetController(budget, seed=seed, warmup=warmup)
    asked = _asked_after_each(ctl, scores, batch)
    seen = np.arange(1, len(scores) + 1)
    assert np.all(asked <= budget * seen + warmup + ctl.slack + 1e-9)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    budget=st.floats(0.005, 0.5),
    explore=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    warmup=st.sampled_from([0.0, 20.0]),
    batches=st.lists(st.integers(1, 300), min_size=1, max_size=12),
    track=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_the_steady_state_loop_decides_exactly_as_the_general_one(
    budget: float, explore: float, warmup: float, batches: list[int], track: bool, seed: int
) -> None:
    """Issue 19: decide() takes a shorter loop when nothing but the gate applies; the same
    asks, reasons, threshold and counters as the general loop (forced by an all-False
    ``blocked``, which blocks nothing), through warm-up and payback as well."""
    rng = np.random.default_rng(seed)
    steady = BudgetController(budget, explore=explore, seed=seed, warmup=warmup)
    general = BudgetController(budget, explore=explore, seed=seed, warmup=warmup)
    for n in batches:
        scores = np.where(rng.random(n) < 0.05, np.nan, rng.beta(1, 8, n))
        ask_a, reasons_a = steady.decide(scores, track=track)
        ask_b, reasons_b = general.decide(scores, track=track, blocked=np.zeros(n, dtype=bool))
        assert ask_a.tolist() == ask_b.tolist() and reasons_a == reasons_b
        assert (steady.threshold, steady.asked, steady.planned, steady.seen) == (
            general.threshold, general.asked, general.planned, general.seen)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(rate=st.floats(0.0, 1.0), chunks=st.lists(st.integers(0, 400), max_size=10), seed=st.integers(0, 999))
def test_quota_picks_of_a_batch_are_the_picks_item_by_item(rate: float, chunks: list[int], seed: int) -> None:
    batched = RandomQuota(rate, np.random.default_rng(seed))
    single = RandomQuota(rate, np.random.default_rng(seed))
    for n in chunks:
        assert batched.picks(n) == {i for i in range(n) if single.next()}
