"""Drift: ADWIN on the prequential error, and a boost that pays its extra labels back."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.gates.drift import BoostSchedule, DriftDetector


def _correct(error_rates: list[tuple[int, float]], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.random(n) >= err for n, err in error_rates])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_jump_in_error_is_detected(seed: int) -> None:
    detector = DriftDetector()
    stream = _correct([(2000, 0.1), (2000, 0.5)], seed)
    assert detector.update(stream[:2000]) is False
    assert detector.update(stream[2000:]) is True
    assert detector.drifts >= 1
    assert detector.error_rate == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_stable_error_raises_no_alarm(seed: int) -> None:
    detector = DriftDetector()
    assert detector.update(_correct([(5000, 0.2)], seed)) is False
    assert detector.labelled == 5000


def test_batches_detect_like_single_items() -> None:
    stream = _correct([(1500, 0.05), (1500, 0.6)], seed=3)
    whole = DriftDetector()
    whole.update(stream)
    single = DriftDetector()
    for c in stream:
        single.update(np.array([c]))
    assert whole.drifts == single.drifts
    assert whole.error_rate == single.error_rate


def test_detector_rejects_a_two_dimensional_batch() -> None:
    with pytest.raises(ValueError, match="1-d bool"):
        DriftDetector().update(np.ones((2, 2), dtype=bool))


def test_no_drift_means_no_boost() -> None:
    assert BoostSchedule().multipliers(1000).tolist() == [1.0] * 1000


def test_boost_raises_the_rate_by_its_factor_for_its_duration() -> None:
    boost = BoostSchedule(factor=3.0, duration=200)
    boost.trigger()
    m = boost.multipliers(1000)
    assert m[:200].tolist() == [3.0] * 200
    assert np.all(m[200:] <= 1.0)


@pytest.mark.parametrize("batch", [1, 7, 100, 5000])
@pytest.mark.parametrize("factor,duration,payback", [(2.0, 500, 0.5), (3.0, 128, 0.25), (1.5, 33, 0.9)])
def test_boost_and_payback_average_exactly_one(
    batch: int, factor: float, duration: int, payback: float
) -> None:
    boost = BoostSchedule(factor, duration, payback_rate=payback)
    boost.trigger()
    n = duration + int(np.ceil(duration * (factor - 1.0) / (1.0 - payback))) + 10
    m = np.concatenate([boost.multipliers(batch) for _ in range(-(-n // batch))])
    assert m.sum() == pytest.approx(m.size, abs=1e-6)
    assert boost.debt == 0.0


def test_a_retrigger_extends_the_boost_and_the_debt() -> None:
    boost = BoostSchedule(2.0, 100, payback_rate=0.5)
    boost.trigger()
    first = boost.multipliers(150)  # boost, then 50 items of payback
    boost.trigger()  # a second drift during the payback
    second = boost.multipliers(1000)
    assert second[:100].tolist() == [2.0] * 100
    m = np.concatenate([first, second])
    assert m.sum() == pytest.approx(m.size, abs=1e-6)


def test_a_boosted_budget_keeps_the_long_run_share() -> None:
    budget, n = 0.05, 20_000
    boost = BoostSchedule(factor=3.0, duration=1000)
    rates = []
    for start in range(0, n, 250):
        if start == 5000:  # a drift was detected
            boost.trigger()
        rates.append(budget * boost.multipliers(250))
    rate = np.concatenate(rates)
    assert rate[5000:6000].mean() == pytest.approx(3 * budget)  # three times the labels
    assert rate.sum() == pytest.approx(budget * n)  # ... and the same total


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"factor": 0.5}, "factor must be >= 1"),
        ({"duration": 0}, "duration must be a positive"),
        ({"payback_rate": 1.0}, r"payback_rate must be in \[0, 1\)"),
    ],
)
def test_bad_schedule_settings_say_what_to_fix(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BoostSchedule(**kwargs)  # type: ignore[arg-type]
