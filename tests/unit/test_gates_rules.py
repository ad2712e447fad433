"""Budget rules: every rule that promises a budget spends it within ±2% and none overspends."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.gates.rules import (
    RULES,
    BudgetRule,
    EmaThreshold,
    FixedThreshold,
    QuantileThreshold,
    SelectiveSampling,
    Split,
    VariableUncertainty,
)

N = 10_000
BUDGETS = (0.01, 0.05, 0.1)
PROMISED = sorted(name for name in RULES if name != "fixed")


def _stream(kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(N) / N
    if kind == "uniform":
        return rng.random(N)
    if kind == "skewed":  # most items certain, a thin uncertain tail
        return rng.beta(0.5, 5.0, N)
    if kind == "drifting":  # the whole distribution climbs over the stream
        return np.clip(0.1 + 0.6 * t + 0.1 * rng.normal(size=N), 0.0, 1.0)
    if kind == "constant":
        return np.full(N, 0.3)
    raise AssertionError(kind)


def _run(rule: BudgetRule, scores: np.ndarray, batches: int = 100) -> np.ndarray:
    """Feed the stream in micro-batches, as the service does."""
    if isinstance(rule, SelectiveSampling):  # it takes p_max: map score 0..1 to p_max 1..1/2
        return np.concatenate(
            [rule.decide(1.0 - 0.5 * c, n_classes=2) for c in np.array_split(scores, batches)]
        )
    return np.concatenate([rule.decide(c) for c in np.array_split(scores, batches)])


@pytest.mark.parametrize("kind", ["uniform", "skewed", "drifting", "constant"])
@pytest.mark.parametrize("budget", BUDGETS)
@pytest.mark.parametrize("name", PROMISED)
def test_rule_spends_its_budget_within_two_percent(name: str, budget: float, kind: str) -> None:
    rule = RULES[name](budget, seed=3)
    asked = int(_run(rule, _stream(kind, seed=3)).sum())
    assert abs(asked - budget * N) <= 0.02 * budget * N, f"asked {asked} of {N}"
    assert rule.asked == asked and rule.seen == N


@pytest.mark.parametrize("name", sorted(RULES))
def test_no_rule_ever_runs_ahead_of_the_cap(name: str) -> None:
    rule = RULES[name](0.05, seed=0)
    ask = _run(rule, np.ones(N), batches=37)  # every item as uncertain as it gets
    ahead = np.cumsum(ask) - 0.05 * np.arange(1, N + 1)
    assert ahead.max() <= 1.0


@pytest.mark.parametrize("name", ["ema", "quantile", "selective-sampling"])
def test_rule_asks_the_items_with_the_highest_scores(name: str) -> None:
    scores = _stream("uniform", seed=4)
    ask = _run(RULES[name](0.05, seed=4), scores)
    assert scores[ask].mean() > 0.75  # random picks would average 0.5


@pytest.mark.parametrize("name", sorted(RULES))
def test_one_batch_decides_like_many_small_ones(name: str) -> None:
    scores = _stream("uniform", seed=5)[:2000]
    whole = _run(RULES[name](0.05, seed=5), scores, batches=1)
    pieces = _run(RULES[name](0.05, seed=5), scores, batches=2000)
    np.testing.assert_array_equal(whole, pieces)


@pytest.mark.parametrize("name", sorted(RULES))
def test_same_seed_gives_the_same_decisions(name: str) -> None:
    scores = _stream("skewed", seed=6)[:3000]
    first = _run(RULES[name](0.1, seed=7), scores)
    np.testing.assert_array_equal(first, _run(RULES[name](0.1, seed=7), scores))


@pytest.mark.parametrize("name", sorted(RULES))
def test_threshold_stays_on_a_readable_scale(name: str) -> None:
    rule = RULES[name](0.05, seed=0)
    _run(rule, _stream("uniform", seed=0))
    assert np.isfinite(rule.threshold)
    if name != "selective-sampling":  # its threshold is the margin b
        assert 0.0 <= rule.threshold <= 1.0


def test_fixed_threshold_starves_when_no_score_reaches_it() -> None:
    rule = FixedThreshold(0.05, threshold=0.5)
    assert _run(rule, _stream("constant", seed=0)).sum() == 0


def test_fixed_threshold_underspends_on_a_thin_tail() -> None:
    scores = _stream("skewed", seed=0)
    asked = _run(FixedThreshold(0.1, threshold=0.5), scores).sum()
    assert asked == pytest.approx((scores >= 0.5).sum(), abs=5)
    assert asked < 0.5 * 0.1 * N


def test_fixed_threshold_is_held_to_the_budget_by_the_cap_when_many_clear() -> None:
    asked = _run(FixedThreshold(0.05, threshold=0.5), _stream("uniform", seed=0)).sum()
    assert 0.05 * N - 2 <= asked <= 0.05 * N + 1


def test_classic_selective_sampling_does_not_hold_a_budget() -> None:
    scores = _stream("skewed", seed=0)  # mostly confident: fixed b asks rarely
    asked = _run(SelectiveSampling(0.1, b=0.01, adapt=False), scores).sum()
    assert asked < 0.5 * 0.1 * N


def test_selective_sampling_adapts_b_to_the_budget() -> None:
    rule = SelectiveSampling(0.01, b=1.0, seed=0)
    _run(rule, _stream("uniform", seed=0))
    assert rule.b < 0.1


def test_split_spends_part_of_the_budget_on_random_items() -> None:
    rule = Split(0.1, random_share=0.5, seed=0)
    _run(rule, _stream("uniform", seed=0))
    assert 0 < rule.random_asked < rule.asked


def test_variable_uncertainty_threshold_narrows_after_asking() -> None:
    rule = VariableUncertainty(1.0, step=0.1)
    before = rule.threshold
    assert rule.decide(np.array([0.9])).tolist() == [True]
    assert rule.threshold > before


def test_ema_rule_ignores_the_scale_of_the_scores() -> None:
    scores = _stream("uniform", seed=8)
    small = _run(EmaThreshold(0.05, seed=0), scores * 1e-3)
    large = _run(EmaThreshold(0.05, seed=0), scores)
    assert (small == large).mean() > 0.99


def test_quantile_rule_threshold_follows_the_upper_quantile() -> None:
    rule = QuantileThreshold(0.1, seed=0)
    _run(rule, _stream("uniform", seed=9))
    assert rule.threshold == pytest.approx(0.9, abs=0.03)


def test_nan_scores_count_as_most_uncertain() -> None:
    rule = FixedThreshold(1.0, threshold=0.9)
    assert rule.decide(np.array([np.nan, 0.1])).tolist() == [True, False]


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize("budget", [0.0, 1.5, -0.1])
def test_budget_outside_unit_interval_is_rejected(name: str, budget: float) -> None:
    with pytest.raises(ValueError, match=r"budget must be in \(0, 1\]"):
        RULES[name](budget)


def test_a_two_dimensional_score_array_is_rejected() -> None:
    with pytest.raises(ValueError, match="1-d array"):
        QuantileThreshold(0.1).decide(np.ones((2, 2)))
