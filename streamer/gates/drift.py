"""Drift: notice that the model got worse, ask more for a while, then pay the labels back.

:class:`DriftDetector` watches the prequential error of labelled items (was the prediction
right before the model learned the label?) with ADWIN (Bifet & Gavaldà 2007, "Learning from
time-changing data with adaptive windowing", SDM), river's implementation.

:class:`BoostSchedule` turns a detected drift into budget *multipliers*: ``factor`` for the next
``duration`` items, so the model sees more labels of the new concept quickly, then
``payback_rate`` until the extra labels are paid back. Over a boost and its payback the
multipliers average exactly 1, so a rule whose budget is scaled by them keeps its long-run
share.

Examples
--------
>>> import numpy as np
>>> detector, boost = DriftDetector(), BoostSchedule(factor=3.0, duration=100)
>>> rng = np.random.default_rng(0)
>>> detector.update(rng.random(2000) > 0.1)  # 10% error: no change
False
>>> if detector.update(rng.random(2000) > 0.5):  # 50% error: the concept changed
...     boost.trigger()
>>> m = boost.multipliers(1000)
>>> m[:100].tolist() == [3.0] * 100, round(float(m.mean()), 6)
(True, 1.0)
"""

from __future__ import annotations

import numpy as np
from river import drift

__all__ = ["BoostSchedule", "DriftDetector"]


class DriftDetector:
    """ADWIN on the prequential error of labelled items, fed a batch at a time.

    Parameters
    ----------
    delta
        ADWIN's confidence: smaller means fewer false alarms and slower detection.
    grace_period
        Labelled items before the first detection is possible.

    Attributes
    ----------
    drifts
        Drifts detected so far.
    labelled
        Labelled items seen so far.
    """

    def __init__(self, delta: float = 0.002, *, grace_period: int = 10) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), got {delta!r}")
        self._adwin = drift.ADWIN(delta=delta, grace_period=grace_period)
        self.drifts = 0
        self.labelled = 0

    @property
    def error_rate(self) -> float:
        """ADWIN's estimate of the current error rate (over its adaptive window)."""
        return float(self._adwin.estimation)

    def update(self, correct: np.ndarray) -> bool:
        """Feed whether each labelled item was predicted correctly, in arrival order.

        Parameters
        ----------
        correct
            bool ``(B,)``, e.g. what :meth:`~streamer.core.sampler.Sampler.learn` returns.

        Returns
        -------
        bool
            Whether a drift was detected anywhere in the batch.
        """
        arr = np.asarray(correct)
        if arr.ndim != 1:
            raise ValueError(f"correct must be a 1-d bool array, got shape {arr.shape}")
        adwin = self._adwin
        detected = False
        for wrong in (~arr.astype(bool)).tolist():  # ADWIN is sequential by construction
            adwin.update(int(wrong))
            if adwin.drift_detected:
                detected = True
                self.drifts += 1
        self.labelled += arr.shape[0]
        return detected


class BoostSchedule:
    """Budget multipliers that boost the ask rate after a drift and then pay it back.

    Parameters
    ----------
    factor
        Multiplier during the boost (``>= 1``).
    duration
        Items the boost lasts after each :meth:`trigger`.
    payback_rate
        Multiplier while the extra labels are paid back, in ``[0, 1)``; ``0.5`` halves the
        rate until the ``(factor - 1) * duration`` extra item-budgets are repaid.

    Examples
    --------
    >>> boost = BoostSchedule(factor=2.0, duration=3, payback_rate=0.5)
    >>> boost.multipliers(2).tolist()  # no drift yet
    [1.0, 1.0]
    >>> boost.trigger()
    >>> boost.multipliers(10).tolist()  # 3 extra paid back at 0.5 per item
    [2.0, 2.0, 2.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.0]
    """

    def __init__(
        self, factor: float = 2.0, duration: int = 500, *, payback_rate: float = 0.5
    ) -> None:
        if not factor >= 1.0:
            raise ValueError(f"factor must be >= 1 (a boost), got {factor!r}")
        if not (isinstance(duration, int) and duration >= 1):
            raise ValueError(f"duration must be a positive number of items, got {duration!r}")
        if not 0.0 <= payback_rate < 1.0:
            raise ValueError(f"payback_rate must be in [0, 1), got {payback_rate!r}")
        self._factor = float(factor)
        self._duration = duration
        self._payback_rate = float(payback_rate)
        self._boost_left = 0  # items of boost still to come
        self._debt = 0.0  # extra item-budgets spent and not yet paid back

    @property
    def boosting(self) -> bool:
        """Whether the next item is boosted."""
        return self._boost_left > 0

    @property
    def debt(self) -> float:
        """Extra item-budgets still to pay back (including the rest of a running boost)."""
        return self._debt + self._boost_left * (self._factor - 1.0)

    def trigger(self) -> None:
        """Start (or restart) a boost of ``duration`` items from the next item on."""
        self._boost_left = self._duration

    def multipliers(self, n: int) -> np.ndarray:
        """Budget multipliers for the next ``n`` items, advancing the schedule.

        Parameters
        ----------
        n
            Items in the coming batch.

        Returns
        -------
        numpy.ndarray
            float ``(n,)``: multiply the budget (or an ask probability) of item ``i`` by it.
        """
        out = np.ones(n, dtype=np.float64)
        boosted = min(n, self._boost_left)
        out[:boosted] = self._factor
        self._boost_left -= boosted
        self._debt += boosted * (self._factor - 1.0)
        rest = n - boosted
        if rest and self._debt > 0.0:
            save = 1.0 - self._payback_rate  # item-budgets repaid per payback item
            full = min(rest, int(self._debt / save + 1e-9))
            out[boosted : boosted + full] = self._payback_rate
            self._debt -= full * save
            if full < rest and self._debt > 1e-9:  # the last item repays the remainder
                out[boosted + full] = 1.0 - self._debt
                self._debt = 0.0
            if self._debt <= 1e-9:  # rounding left-overs
                self._debt = 0.0
        return out
