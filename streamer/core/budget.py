"""Budget controller: turn uncertainty scores into ask/skip decisions that hold a label share.

The rule combines three parts, each fixing a failure of the others:

1. **Variable-uncertainty threshold** (Žliobaitė et al. 2014, "Active learning with drifting
   streaming data", IEEE TNNLS 25(1)). On our uncertainty scale (ask when
   ``score >= threshold``) the threshold moves up by ``step * (1 - b)`` after an item that
   clears it and down by ``step * b`` after one that does not. The paper moves the threshold by
   the same factor both ways, which settles at asking half of the items and leaves the budget
   gate to do all the limiting; the asymmetric steps make it settle exactly where a share ``b``
   of the scores clears it, so the threshold follows the upper ``b``-quantile of the scores as
   they drift.
2. **Deficit correction**: the decision threshold is the tracked one lowered (raised) in
   proportion to the labels the controller is behind (ahead of) ``budget * seen``, measured in
   windows of ``window`` items. This pays back cold-start labels and keeps the long-run share
   on target even while the threshold is still travelling -- it cannot starve.
3. **A promise over every window**: the labels asked never run more than ``slack`` ahead of
   ``budget * seen`` (a hard cap, whatever the scores) nor more than ``slack`` behind it (the
   next item is asked, reason ``catch_up``, if the gate left the controller that far behind).
   Over any ``promise_window`` consecutive items the count asked is therefore within
   ``2 * slack`` of ``budget * promise_window``; ``slack = tolerance * budget * promise_window / 2``
   (at least one label), so by default every window of 10,000 items holds the budget within
   ±2% relative. The anchors we compare with overspend by 4% to 50% over such windows.

On top, a share ``explore`` of the budget goes to uniformly random items (reason ``explore``)
so the model also sees the items it is confidently wrong about. The random picks are spread one
per block of ``1 / (explore * budget)`` items, at a random position in each block, so their share
is exact rather than binomially noisy.

Examples
--------
>>> import numpy as np
>>> ctl = BudgetController(0.1, seed=0)
>>> ask, reasons = ctl.decide(np.random.default_rng(0).random(1000))
>>> 90 <= int(ask.sum()) <= 110
True
>>> sorted(set(reasons)) in (['explore', 'skip', 'uncertainty'], ['catch_up', 'explore', 'skip', 'uncertainty'])
True
"""

from __future__ import annotations

import numpy as np

from streamer.core.checks import check_range, check_window
from streamer.core.decisions import CATCH_UP, EXPLORE, SKIP, UNCERTAINTY
from streamer.core.pacing import RandomQuota, TokenBucket  # also importable from here, as before

__all__ = ["DEFAULT_WARMUP_LABELS", "BudgetController", "RandomQuota", "TokenBucket"]

# The service's and simulate's default warm-up (the controller's own default is none): chosen
# from benchmarks/label_efficiency.py, see docs/results.md, 'Label efficiency'.
DEFAULT_WARMUP_LABELS = 10


class BudgetController:
    """Ask for the labels of the most uncertain items while holding a label share.

    Parameters
    ----------
    budget
        Share of items whose label may be requested, in ``(0, 1]``.
    explore
        Share of the budget spent on uniformly random items, in ``[0, 1]``. ``1`` turns the
        controller into random sampling at the budget.
    step
        How far the threshold moves per item (on the ``[0, 1]`` score scale).
    window
        Items per correction window; the deficit correction counts in windows of this length.
    gain
        Threshold shift per window-budget of deficit (``0`` disables the correction).
    promise_window, tolerance
        The promise: over any ``promise_window`` consecutive items the share asked is within
        ``tolerance`` (relative) of the budget. They set ``slack``.
    burst
        Overrides ``slack``: labels the controller may run ahead of or behind ``budget * seen``.
    initial_threshold
        Starting threshold, in ``[0, 1]``.
    seed
        Seed of the random exploration.
    explore_reason
        Reason recorded for random picks (the random baseline records ``random``).
    warmup
        Labels that may be spent ahead of ``budget * seen`` at the start (an initial labelled
        set, granted at ``warmup_rate`` times the budget rate) and are repaid afterwards by
        withholding ``repay`` of the budget until the debt is cleared. The count asked never
        exceeds ``budget * seen + warmup + slack``; over a stream longer than the repayment
        the share is the budget. Incompatible with the per-window promise: a window at the
        start holds the warm-up. ``repay`` 1 (the default) withholds the whole budget until
        then: with half of it, short streams at 1% (1,250 and 1,797 items) ended 1.36x and
        1.11x over the budget (benchmarks/results/label_efficiency_choice_warmup.md).

    Attributes
    ----------
    seen, asked
        Items decided and labels requested so far.
    planned
        Labels the budget allowed so far: ``budget * seen``, or the sum of ``budget * scale``
        when :meth:`decide` is given per-item budget multipliers (a drift boost).
    """

    external = 0.0  # class default: controllers pickled before the ledger existed
    _warmup_left = 0.0  # ... and before the warm-up
    _warmup = 0.0
    _owed = 0.0
    _warmup_rate = 1.0
    _repay = 0.0

    def __init__(
        self,
        budget: float,
        *,
        explore: float = 0.1,
        step: float = 0.02,
        window: int = 1000,
        gain: float = 4.0,
        promise_window: int = 10_000,
        tolerance: float = 0.02,
        burst: float | None = None,
        initial_threshold: float = 0.5,
        seed: int = 0,
        explore_reason: str = EXPLORE,
        warmup: float = 0.0,
        warmup_rate: float = 10.0,
        repay: float = 1.0,
    ) -> None:
        check_range("budget", budget, 0.0, 1.0, low_open=True)
        check_range("repay", repay, 0.0, 1.0, low_open=True)
        if not (isinstance(warmup, int | float) and warmup >= 0):
            raise ValueError(f"warmup must be a number of labels >= 0, got {warmup!r}")
        if not (isinstance(warmup_rate, int | float) and warmup_rate >= 1):
            raise ValueError(f"warmup_rate must be >= 1 (times the budget rate), got {warmup_rate!r}")
        check_range("explore", explore, 0.0, 1.0)
        check_range("step", step, 0.0, 1.0, low_open=True)
        check_range("initial_threshold", initial_threshold, 0.0, 1.0)
        check_range("tolerance", tolerance, 0.0, 1.0, low_open=True)
        check_window(window)
        check_window(promise_window)
        if burst is not None and not burst >= 1.0:
            raise ValueError(f"burst must be at least 1 label, got {burst!r}")
        if not gain >= 0.0:
            raise ValueError(f"gain must be >= 0, got {gain!r}")
        self._budget = float(budget)
        self._explore = float(explore)
        self._step = float(step)
        self._promise_window = promise_window
        self._tolerance = float(tolerance)
        self._slack = (
            float(burst) if burst is not None else max(1.0, tolerance * budget * promise_window / 2.0)
        )
        self._explore_reason = explore_reason
        # The threshold tracks the share of the budget left after exploration.
        self._target = self._budget * (1.0 - self._explore)
        # Threshold shift per label of deficit: `gain` per window's worth of budget.
        self._gain_per_label = gain / (self._budget * window)
        self._threshold = float(initial_threshold)
        self._quota = RandomQuota(self._budget * self._explore, np.random.default_rng(seed))
        self.seen = 0
        self.asked = 0
        self.planned = 0.0
        self.forfeited = 0.0  # budget given up under backpressure (labels nobody could answer)
        self._warmup = float(warmup)
        self._warmup_left = float(warmup)  # warm-up credit not granted yet
        self._owed = 0.0  # warm-up credit granted and not repaid yet
        self._warmup_rate = float(warmup_rate)
        self._repay = float(repay)
        # Labels other replicas are behind (ahead of, < 0) the shared budget, as this replica's
        # share: set by the service from the Redis budget ledger; 0 in a single process.
        self.external = 0.0

    @property
    def budget(self) -> float:
        """The share of items that may be asked."""
        return self._budget

    @property
    def explore_rate(self) -> float:
        """The share of all items picked uniformly at random (``budget * explore``)."""
        return self._budget * self._explore

    @property
    def warmup(self) -> float:
        """Labels that may be spent ahead of the budget at the start (repaid afterwards)."""
        return self._warmup

    def add_warmup(self, labels: float) -> None:
        """Grant ``labels`` more warm-up credit now (e.g. for a class seen for the first time):
        spent ahead of the budget at the warm-up rate, repaid like the first."""
        if not (isinstance(labels, int | float) and labels >= 0):
            raise ValueError(f"warm-up labels must be a number >= 0, got {labels!r}")
        self._warmup += float(labels)
        self._warmup_left += float(labels)

    @property
    def slack(self) -> float:
        """Labels the controller may run ahead of or behind the budget."""
        return self._slack

    @property
    def promise(self) -> dict[str, float]:
        """The promise's terms: ``{"window": items, "tolerance": relative, "slack": labels,
        "warmup": labels}``; never more than ``warmup + slack`` labels ahead of the budget."""
        return {"window": self._promise_window, "tolerance": self._tolerance, "slack": self._slack,
                "warmup": self._warmup}

    @property
    def threshold(self) -> float:
        """Current decision threshold on the score scale (tracked + correction), in ``[0, 1]``.

        1.0 means the uncertainty gate is closed (the controller is ahead of its budget).
        """
        return min(1.0, max(0.0, self._threshold - self._gain_per_label * self.deficit))

    @property
    def deficit(self) -> float:
        """Labels behind the budget (negative when ahead), with this replica's share of the
        other replicas' deficit (:attr:`external`)."""
        return self.planned - self.asked + self.external

    @property
    def spend_ratio(self) -> float:
        """``asked / planned``: 1.0 means exactly on budget (0.0 before any item)."""
        return self.asked / self.planned if self.planned > 0 else 0.0

    def decide(
        self,
        scores: np.ndarray,
        *,
        scale: np.ndarray | None = None,
        limit: int | None = None,
        blocked: np.ndarray | None = None,
        track: bool = True,
        capacity: int | None = None,
    ) -> tuple[np.ndarray, list[str]]:
        """Decide ask/skip for a batch of scores, in order.

        Parameters
        ----------
        scores
            ``(B,)`` scores in ``[0, 1]``, higher = more worth a label. NaN counts as 1.0.
        scale
            ``(B,)`` per-item budget multipliers (a drift boost and its payback); default 1.
        limit
            Most labels this batch may ask (a token bucket); default unlimited. A limit can
            leave the controller behind its budget: it catches up when tokens return.
        blocked
            ``(B,)`` bool: items that must not be asked whatever their score (their label is
            already in flight).
        track
            Whether the scores move the tracked threshold (off for cold-start batches, whose
            scores say nothing).
        capacity
            Most labels that could be answered now (backpressure: annotators are behind, or
            the pending store is down); default unlimited. Unlike ``limit``, the budget of
            items that arrive while no capacity is left is *forfeited*, not owed: the
            controller does not catch up on labels nobody could have answered.

        Returns
        -------
        tuple
            ``(ask, reasons)``: bool ``(B,)`` and one reason per item (``uncertainty``,
            ``explore``, ``catch_up`` or ``skip``).
        """
        arr = np.asarray(scores, dtype=np.float64)
        if arr.ndim != 1:
            raise ValueError(f"scores must be a 1-d array (one score per item), got shape {arr.shape}")
        n = arr.shape[0]
        values = np.where(np.isnan(arr), 1.0, arr).tolist()  # the loop touches Python floats only
        if (scale is None and blocked is None and limit is None and (capacity is None or capacity >= n)
                and self._warmup_left <= 0.0 and self._owed <= 0.0):
            return self._decide_steady(values, track)
        budgets = (
            [self._budget] * n
            if scale is None
            else (self._budget * np.asarray(scale, dtype=np.float64).reshape(n)).tolist()
        )
        block = [False] * n if blocked is None else np.asarray(blocked, dtype=bool).reshape(n).tolist()
        room = n if limit is None else max(0, int(limit))
        cap = n if capacity is None else max(0, int(capacity))
        ask = [False] * n
        reasons = [SKIP] * n

        target, step = self._target, self._step
        up, down = step * (1.0 - target), step * target
        slack, per_label = self._slack, self._gain_per_label
        theta, asked, planned = self._threshold, self.asked, self.planned
        planned += self.external  # the gate sees the shared deficit; the counters stay local
        forfeited = self.forfeited
        warmup_left, owed = self._warmup_left, self._owed
        boost, repay = self._warmup_rate - 1.0, self._repay
        quota_next = self._quota.next
        uncertainty_on = target > 0.0  # explore=1 is pure random sampling

        for i, score in enumerate(values):
            if cap <= 0:  # backpressure: this item's share of the budget is forfeited
                forfeited += budgets[i]
                if track:
                    theta = theta + up if score >= theta else theta - down
                continue
            planned += budgets[i]
            if warmup_left > 0.0:  # the warm-up: credit ahead of the budget ...
                granted = min(warmup_left, budgets[i] * boost)
                warmup_left -= granted
                owed += granted
                planned += granted
            elif owed > 0.0:  # ... repaid afterwards
                repaid = min(owed, budgets[i] * repay)
                owed -= repaid
                planned -= repaid
            picked = quota_next()
            if room > 0 and not block[i] and asked + 1 <= planned + slack + 1e-9:
                if picked:
                    ask[i], reasons[i] = True, self._explore_reason
                elif uncertainty_on and score >= theta - per_label * (planned - asked):
                    ask[i], reasons[i] = True, UNCERTAINTY
                elif planned - asked > slack:
                    ask[i], reasons[i] = True, CATCH_UP
            # The tracked threshold follows the score quantile whatever the gate decided, so
            # closing the gate (payback) does not drag it away from the scores.
            if track:
                theta = theta + up if score >= theta else theta - down
            if ask[i]:
                asked += 1
                room -= 1
                cap -= 1

        self._threshold, self.asked, self.planned = theta, asked, planned - self.external
        self.forfeited = forfeited
        self._warmup_left, self._owed = warmup_left, owed
        self.seen += n
        return np.array(ask, dtype=bool), reasons

    def _decide_steady(self, values: list[float], track: bool) -> tuple[np.ndarray, list[str]]:
        """:meth:`decide` in the steady state -- no warm-up credit or payback, one budget per
        item, nothing blocked, no limit, room for every item -- where the loop's per-item
        work is the gate alone (the same decisions, a third of the time: it is the one Python
        loop per item left on the decision path)."""
        n = len(values)
        ask = [False] * n
        reasons = [SKIP] * n
        budget, target, step = self._budget, self._target, self._step
        up, down = step * (1.0 - target), step * target
        slack, per_label = self._slack, self._gain_per_label
        theta, asked = self._threshold, self.asked
        planned = self.planned + self.external  # the gate sees the shared deficit
        picks = self._quota.picks(n)
        explore_reason = self._explore_reason
        uncertainty_on = target > 0.0
        for i, score in enumerate(values):
            planned += budget
            if asked + 1 <= planned + slack + 1e-9:
                if i in picks:
                    ask[i], reasons[i] = True, explore_reason
                    asked += 1
                elif uncertainty_on and score >= theta - per_label * (planned - asked):
                    ask[i], reasons[i] = True, UNCERTAINTY
                    asked += 1
                elif planned - asked > slack:
                    ask[i], reasons[i] = True, CATCH_UP
                    asked += 1
            if track:
                theta = theta + up if score >= theta else theta - down
        self._threshold, self.asked, self.planned = theta, asked, planned - self.external
        self.seen += n
        return np.array(ask, dtype=bool), reasons

    def cancel(self, n: int) -> None:
        """Give up ``n`` labels that were decided but could not be requested (store down).

        They leave both ``asked`` and ``planned``: the controller neither counts them as
        spent nor tries to catch up on them later.
        """
        if not (isinstance(n, int) and 0 <= n <= self.asked):
            raise ValueError(f"cancel takes 0..asked ({self.asked}) labels, got {n!r}")
        self.asked -= n
        self.planned = max(0.0, self.planned - n)
        self.forfeited += n
