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
3. **Hard cap**: never more than ``budget * seen + burst`` labels in total, whatever the scores.

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
>>> sorted(set(reasons))
['explore', 'skip', 'uncertainty']
"""

from __future__ import annotations

import math

import numpy as np

from streamer.core.checks import check_range, check_window
from streamer.core.decisions import EXPLORE, SKIP, UNCERTAINTY

__all__ = ["BudgetController", "RandomQuota"]


class RandomQuota:
    """Pick uniformly random items at an exact long-run rate.

    Items are grouped in consecutive blocks of ``1 / rate`` items (a real number) and one
    position is drawn uniformly inside each block. Every item has the same chance ``rate`` of
    being picked, and after ``n`` items the number of picks is within one of ``rate * n``.

    Parameters
    ----------
    rate
        Share of items to pick, in ``[0, 1]``. ``0`` never picks.
    rng
        Source of randomness.

    Examples
    --------
    >>> import numpy as np
    >>> quota = RandomQuota(0.25, np.random.default_rng(1))
    >>> sum(quota.next() for _ in range(100))
    25
    """

    def __init__(self, rate: float, rng: np.random.Generator) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate!r}")
        self._rng = rng
        self._block = 1.0 / rate if rate > 0 else math.inf
        self._index = 0  # items seen so far
        self._k = 0  # current block number
        self._uniforms: list[float] = []
        self._pick = self._draw()

    def _uniform(self) -> float:
        # Draw in chunks: one numpy call per 256 picks, not one per item.
        if not self._uniforms:
            self._uniforms = self._rng.random(256).tolist()
        return self._uniforms.pop()

    def _draw(self) -> float:
        if math.isinf(self._block):
            return math.inf
        start = self._k * self._block
        return math.floor(start + self._uniform() * self._block)

    def next(self) -> bool:
        """Advance by one item; return whether it is picked."""
        i = self._index
        self._index += 1
        if i < self._pick:
            return False
        # The pick position is an integer inside the block, so i == pick here.
        self._k += 1
        self._pick = max(self._draw(), i + 1)
        return True


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
        Items per budget window; the deficit correction counts in windows of this length.
    burst
        Labels the controller may be ahead of ``budget * seen`` at any time.
    gain
        Threshold shift per window-budget of deficit (``0`` disables the correction).
    initial_threshold
        Starting threshold, in ``[0, 1]``.
    seed
        Seed of the random exploration.
    explore_reason
        Reason recorded for random picks (the random baseline records ``random``).

    Attributes
    ----------
    seen, asked
        Items decided and labels requested so far (including :meth:`charge`).
    """

    def __init__(
        self,
        budget: float,
        *,
        explore: float = 0.1,
        step: float = 0.02,
        window: int = 1000,
        burst: float = 2.0,
        gain: float = 4.0,
        initial_threshold: float = 0.5,
        seed: int = 0,
        explore_reason: str = EXPLORE,
    ) -> None:
        check_range("budget", budget, 0.0, 1.0, low_open=True)
        check_range("explore", explore, 0.0, 1.0)
        check_range("step", step, 0.0, 1.0, low_open=True)
        check_range("initial_threshold", initial_threshold, 0.0, 1.0)
        check_window(window)
        if not burst >= 1.0:
            raise ValueError(f"burst must be at least 1 label, got {burst!r}")
        if not gain >= 0.0:
            raise ValueError(f"gain must be >= 0, got {gain!r}")
        self._budget = float(budget)
        self._explore = float(explore)
        self._step = float(step)
        self._window = window
        self._burst = float(burst)
        self._explore_reason = explore_reason
        # The threshold tracks the share of the budget left after exploration.
        self._target = self._budget * (1.0 - self._explore)
        # Threshold shift per label of deficit: `gain` per window's worth of budget.
        self._gain_per_label = gain / (self._budget * window)
        self._threshold = float(initial_threshold)
        self._quota = RandomQuota(self._budget * self._explore, np.random.default_rng(seed))
        self._window_spend = self._budget
        self.seen = 0
        self.asked = 0

    @property
    def budget(self) -> float:
        """The share of items that may be asked."""
        return self._budget

    @property
    def threshold(self) -> float:
        """Current decision threshold on the score scale (tracked threshold + correction)."""
        return self._decision_threshold(self._threshold)

    @property
    def spend_ratio(self) -> float:
        """``asked / seen / budget``: 1.0 means exactly on budget (0.0 before any item)."""
        return self.asked / self.seen / self._budget if self.seen else 0.0

    @property
    def window_spend(self) -> float:
        """Exponentially weighted share of items asked over the last ``window`` items."""
        return self._window_spend

    def _decision_threshold(self, tracked: float) -> float:
        deficit = self._budget * self.seen - self.asked
        return tracked - self._gain_per_label * deficit

    def charge(self, n_items: int, n_asked: int | None = None) -> None:
        """Count items decided outside the controller (e.g. cold start) against the budget.

        Parameters
        ----------
        n_items
            Items seen.
        n_asked
            How many of them were asked (defaults to all of them).
        """
        n_asked = n_items if n_asked is None else n_asked
        if not 0 <= n_asked <= n_items:
            raise ValueError(f"n_asked must be in [0, n_items={n_items}], got {n_asked}")
        decay = (1.0 - 1.0 / self._window) ** n_items
        self._window_spend = decay * self._window_spend + (1.0 - decay) * (n_asked / max(n_items, 1))
        self.seen += n_items
        self.asked += n_asked
        # Keep the random picks aligned with the item count.
        for _ in range(n_items):
            self._quota.next()

    def decide(self, scores: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Decide ask/skip for a batch of uncertainty scores, in order.

        Parameters
        ----------
        scores
            ``(B,)`` scores in ``[0, 1]``, higher = more uncertain.

        Returns
        -------
        tuple
            ``(ask, reasons)``: bool ``(B,)`` and one reason per item (``uncertainty``,
            ``explore`` or ``skip``).
        """
        arr = np.asarray(scores, dtype=np.float64)
        if arr.ndim != 1:
            raise ValueError(f"scores must be a 1-d array (one score per item), got shape {arr.shape}")
        values = arr.tolist()  # one conversion; the loop below touches only Python floats
        ask = [False] * len(values)
        reasons = [SKIP] * len(values)

        budget, target, step = self._budget, self._target, self._step
        up, down = step * (1.0 - target), step * target
        burst, per_label = self._burst, self._gain_per_label
        keep = 1.0 - 1.0 / self._window
        theta, seen, asked, spend = self._threshold, self.seen, self.asked, self._window_spend
        quota_next = self._quota.next
        uncertainty_on = target > 0.0  # explore=1 is pure random sampling

        for i, score in enumerate(values):
            seen += 1
            allowed = asked + 1 <= budget * seen + burst
            picked = quota_next()
            if score != score:  # NaN: no information, treat as maximally uncertain
                score = 1.0
            if picked and allowed:
                ask[i], reasons[i] = True, self._explore_reason
            elif uncertainty_on and allowed and score >= theta - per_label * (budget * seen - asked):
                ask[i], reasons[i] = True, UNCERTAINTY
            # The tracked threshold follows the score quantile whatever the gate decided, so
            # closing the gate (payback) does not drag it away from the scores.
            theta = theta + up if score >= theta else theta - down
            if ask[i]:
                asked += 1
            spend = keep * spend + (1.0 - keep) * ask[i]

        self._threshold, self.seen, self.asked, self._window_spend = theta, seen, asked, spend
        return np.array(ask, dtype=bool), reasons
