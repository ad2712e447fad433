"""Budget rules: turn a ``(B,)`` score in ``[0, 1]`` into ask/skip under a label budget.

Every rule has the same small interface: ``decide(scores) -> bool (B,)``, the ``budget`` it
holds, its current ``threshold`` and a seeded random generator. Items are decided in order, each
from the items before it only (never from later items of the same batch), so one batch of
``B`` gives the same decisions as ``B`` batches of one.

All rules share one **budget cap**: the label asked at item ``n`` must keep
``asked <= budget * n + burst``. No rule can overspend, whatever its scores.

Rules that *promise* the budget (realised share within ±2% relative over 10,000 items, see
``tests/unit/test_gates_rules.py``) combine a tracked threshold with a correction
proportional to the labels they are behind ``budget * n`` (the deficit), the design of
:class:`~streamer.core.budget.BudgetController`. The classic rules are implemented as
published; where that cannot hold a budget the class docstring says so in a **Budget** note.

==============================  ==============================================  =============
rule                            asks when                                       holds budget
==============================  ==============================================  =============
:class:`FixedThreshold`         score >= threshold                              no (cap only)
:class:`VariableUncertainty`    score clears a threshold that widens/narrows    yes (cap-bound)
:class:`RandomizedVariable...`  ... times N(1, delta) noise                     yes (cap-bound)
:class:`Split`                  random share, rest variable uncertainty         yes (cap-bound)
:class:`SelectiveSampling`      coin with probability b / (b + |p_max - 1/C|)  yes (b adapted)
:class:`EmaThreshold`           score > mean + k * std, k adapted               yes
:class:`QuantileThreshold`      score in the running top-``budget`` share       yes
==============================  ==============================================  =============

Examples
--------
>>> import numpy as np
>>> rule = QuantileThreshold(0.1, seed=0)
>>> ask = rule.decide(np.random.default_rng(0).random(10_000))
>>> int(ask.sum())
1000
"""

from __future__ import annotations

import math

import numpy as np

from streamer.core.checks import check_range, check_window

__all__ = [
    "RULES",
    "BudgetRule",
    "EmaThreshold",
    "FixedThreshold",
    "QuantileThreshold",
    "RandomizedVariableUncertainty",
    "SelectiveSampling",
    "Split",
    "VariableUncertainty",
]


class _Draws:
    """Random numbers drawn in chunks: one numpy call per 256 items, not one per item."""

    def __init__(self, rng: np.random.Generator, kind: str) -> None:
        self._rng = rng
        self._kind = kind
        self._buffer: list[float] = []

    def next(self) -> float:
        if not self._buffer:
            draw = self._rng.random if self._kind == "uniform" else self._rng.standard_normal
            self._buffer = draw(256).tolist()
        return self._buffer.pop()


class BudgetRule:
    """Base of every rule: validation, the shared budget cap and the sequential loop.

    Subclasses implement :meth:`_want` (and :attr:`threshold`).

    Parameters
    ----------
    budget
        Share of items whose label may be requested, in ``(0, 1]``.
    burst
        Labels the rule may be ahead of ``budget * seen`` (``>= 1``).
    seed
        Seed of the rule's random generator.

    Attributes
    ----------
    seen, asked
        Items decided and labels asked so far.
    """

    def __init__(self, budget: float, *, burst: float = 1.0, seed: int = 0) -> None:
        check_range("budget", budget, 0.0, 1.0, low_open=True)
        if not (isinstance(burst, int | float) and burst >= 1.0):
            raise ValueError(f"burst must be at least 1 label, got {burst!r}")
        self._budget = float(budget)
        self._burst = float(burst)
        self.rng = np.random.default_rng(seed)
        self._uniform = _Draws(self.rng, "uniform").next
        self.seen = 0
        self.asked = 0

    @property
    def budget(self) -> float:
        """The share of items that may be asked."""
        return self._budget

    @property
    def threshold(self) -> float:
        """The rule's current threshold on the score scale."""
        raise NotImplementedError

    @property
    def share(self) -> float:
        """``asked / seen`` so far (0.0 before any item)."""
        return self.asked / self.seen if self.seen else 0.0

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Decide ask/skip for a batch of scores, in order.

        Parameters
        ----------
        scores
            ``(B,)`` scores in ``[0, 1]``, higher = more worth a label. NaN counts as 1.0.

        Returns
        -------
        numpy.ndarray
            bool ``(B,)``: ``True`` where the label should be requested.
        """
        arr = np.asarray(scores, dtype=np.float64)
        if arr.ndim != 1:
            raise ValueError(
                f"scores must be a 1-d array (one score per item), got shape {arr.shape}"
            )
        values = np.where(np.isnan(arr), 1.0, arr).tolist()  # the loop touches Python floats only
        ask = [False] * len(values)
        budget, burst, want = self._budget, self._burst, self._want
        seen, asked = self.seen, self.asked
        for i, score in enumerate(values):
            seen += 1
            allowed = asked + 1 <= budget * seen + burst
            if want(score, allowed, budget * seen - asked) and allowed:
                ask[i] = True
                asked += 1
        self.seen, self.asked = seen, asked
        return np.array(ask, dtype=bool)

    def _want(self, score: float, allowed: bool, deficit: float) -> bool:
        """Whether the rule wants this item; update the rule's state.

        ``allowed`` says whether the cap lets a label through; ``deficit`` is
        ``budget * seen - asked`` (positive when behind).
        """
        raise NotImplementedError


class FixedThreshold(BudgetRule):
    """Ask when the score is at least a fixed threshold (MOA's ``ALUncertainty`` fixed variant).

    **Budget**: cannot hold one. The shared cap stops overspending, but when fewer than a share
    ``budget`` of the scores reach the threshold the rule starves (a constant score below the
    threshold is never asked), and when more do, it asks the first items the cap lets through,
    whatever their score. Use it as a baseline, not in production.

    Parameters
    ----------
    budget, burst, seed
        See :class:`BudgetRule`.
    threshold
        Scores ``>= threshold`` are asked, in ``[0, 1]``.

    Examples
    --------
    >>> import numpy as np
    >>> FixedThreshold(0.5, threshold=0.9).decide(np.array([0.95, 0.2, 0.9])).tolist()
    [True, False, True]
    """

    def __init__(
        self, budget: float, *, threshold: float = 0.5, burst: float = 1.0, seed: int = 0
    ) -> None:
        super().__init__(budget, burst=burst, seed=seed)
        check_range("threshold", threshold, 0.0, 1.0)
        self._threshold = float(threshold)

    @property
    def threshold(self) -> float:
        return self._threshold

    def _want(self, score: float, allowed: bool, deficit: float) -> bool:
        return score >= self._threshold


class VariableUncertainty(BudgetRule):
    """Variable uncertainty (Žliobaitė, Bifet, Pfahringer & Holmes 2014, "Active learning with
    drifting streaming data", IEEE TNNLS 25(1), Algorithm 3).

    The paper works on the confidence ``1 - score``: while under budget, ask when the confidence
    is below ``theta``; after asking narrow the region (``theta *= 1 - step``), after skipping
    widen it (``theta *= 1 + step``). Over budget nothing moves. On our scale the threshold is
    ``1 - theta``.

    **Budget**: held by the cap. The symmetric steps settle near asking half of the items the
    cap lets through, so the cap is nearly always what stops the rule, and the realised share is
    the budget; the threshold decides *which* of the first items after the cap reopens are
    asked. :class:`~streamer.core.budget.BudgetController` (asymmetric steps) selects better.

    Parameters
    ----------
    budget, burst, seed
        See :class:`BudgetRule`.
    step
        Relative threshold adjustment ``s`` (the paper uses 0.01).
    """

    def __init__(
        self, budget: float, *, step: float = 0.01, burst: float = 1.0, seed: int = 0
    ) -> None:
        super().__init__(budget, burst=burst, seed=seed)
        check_range("step", step, 0.0, 1.0, low_open=True)
        self._step = float(step)
        self._theta = 1.0  # confidence threshold; the paper starts at 1

    @property
    def threshold(self) -> float:
        return min(max(1.0 - self._theta, 0.0), 1.0)

    def _noise(self) -> float:
        return 1.0

    def _want(self, score: float, allowed: bool, deficit: float) -> bool:
        if not allowed:
            return False
        if 1.0 - score < self._theta * self._noise():
            self._theta *= 1.0 - self._step
            return True
        self._theta *= 1.0 + self._step
        return False


class RandomizedVariableUncertainty(VariableUncertainty):
    """Randomized variable uncertainty (Žliobaitė et al. 2014, Algorithm 4).

    :class:`VariableUncertainty` with the threshold multiplied by ``N(1, delta)`` noise at every
    item, so that items far from the decision boundary are asked now and then too.

    **Budget**: held by the cap, as for :class:`VariableUncertainty`.

    Parameters
    ----------
    budget, burst, seed, step
        See :class:`VariableUncertainty`.
    delta
        Standard deviation of the multiplicative noise (the paper uses 1).
    """

    def __init__(
        self,
        budget: float,
        *,
        step: float = 0.01,
        delta: float = 1.0,
        burst: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(budget, step=step, burst=burst, seed=seed)
        if not delta >= 0.0:
            raise ValueError(f"delta must be >= 0, got {delta!r}")
        self._delta = float(delta)
        self._normal = _Draws(self.rng, "normal").next

    def _noise(self) -> float:
        return 1.0 + self._delta * self._normal()


class Split(VariableUncertainty):
    """Split strategy (Žliobaitė et al. 2014, Algorithm 5).

    While under budget, a share ``random_share`` of the items goes to random sampling (asked with
    probability ``budget``), the rest to :class:`VariableUncertainty`. The random picks let the
    model see changes far from its current boundary.

    **Budget**: held by the cap, as for :class:`VariableUncertainty`.

    Parameters
    ----------
    budget, burst, seed, step
        See :class:`VariableUncertainty`.
    random_share
        Share ``v`` of items decided at random (the paper uses 0.2).

    Attributes
    ----------
    random_asked
        Labels asked by the random part so far (recorded with reason ``explore``).
    """

    def __init__(
        self,
        budget: float,
        *,
        random_share: float = 0.2,
        step: float = 0.01,
        burst: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(budget, step=step, burst=burst, seed=seed)
        check_range("random_share", random_share, 0.0, 1.0)
        self._random_share = float(random_share)
        self.random_asked = 0

    def _want(self, score: float, allowed: bool, deficit: float) -> bool:
        if not allowed:
            return False
        if self._uniform() < self._random_share:
            picked = self._uniform() < self._budget
            self.random_asked += picked
            return picked
        return super()._want(score, allowed, deficit)


class SelectiveSampling(BudgetRule):
    """Selective sampling (Cesa-Bianchi, Gentile & Zaniboni 2006, "Worst-case analysis of
    selective sampling for linear classification", JMLR 7).

    Ask with probability ``b / (b + |p_max - 1/C|)``: certain of a clear winner, rarely; near
    the uniform prediction, almost surely. :meth:`decide` takes the max-probability array and
    the number of classes ``C`` instead of a score.

    In the paper ``b`` is a fixed smoothing parameter, so the share asked is whatever the data
    make of it. With ``adapt=True`` (default) ``log b`` follows the budget by stochastic
    approximation (``log b += rate * (budget - coin)``) and the coin's probability is scaled by
    ``exp(gain * deficit)``, which holds the budget.

    **Budget**: ``adapt=False`` is the classic rule and cannot hold one (cap only).

    Parameters
    ----------
    budget, burst, seed
        See :class:`BudgetRule`.
    b
        Initial (or, with ``adapt=False``, fixed) smoothing parameter, ``> 0``.
    adapt
        Whether to adapt ``b`` to the budget.
    rate
        Learning rate of ``log b``.
    gain
        Deficit correction: the coin's odds grow by ``exp(gain)`` per label behind.

    Examples
    --------
    >>> import numpy as np
    >>> rule = SelectiveSampling(0.05, seed=0)
    >>> p_max = np.random.default_rng(0).uniform(0.5, 1.0, 10_000)
    >>> int(rule.decide(p_max, n_classes=2).sum())  # budget * items = 500
    499
    """

    def __init__(
        self,
        budget: float,
        *,
        b: float = 0.1,
        adapt: bool = True,
        rate: float = 0.02,
        gain: float = 0.5,
        burst: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(budget, burst=burst, seed=seed)
        if not b > 0.0:
            raise ValueError(f"b must be > 0, got {b!r}")
        self._log_b = math.log(b)
        self._adapt = adapt
        self._rate = float(rate)
        self._gain = float(gain) if adapt else 0.0

    @property
    def b(self) -> float:
        """The current smoothing parameter."""
        return math.exp(self._log_b)

    @property
    def threshold(self) -> float:
        """The margin ``|p_max - 1/C|`` asked with probability 1/2: ``b`` itself."""
        return self.b

    def decide(self, p_max: np.ndarray, n_classes: int = 2) -> np.ndarray:  # type: ignore[override]
        """Decide ask/skip from the top class probability of each item.

        Parameters
        ----------
        p_max
            ``(B,)`` probability of the predicted class, in ``[1/C, 1]``.
        n_classes
            Number of classes ``C`` the model knows (``>= 1``).

        Returns
        -------
        numpy.ndarray
            bool ``(B,)``.
        """
        if not (isinstance(n_classes, int) and n_classes >= 1):
            raise ValueError(f"n_classes must be a positive number of classes, got {n_classes!r}")
        margins = np.abs(np.asarray(p_max, dtype=np.float64) - 1.0 / n_classes)
        return super().decide(margins)

    def _want(self, margin: float, allowed: bool, deficit: float) -> bool:
        b = math.exp(self._log_b + self._gain * deficit)
        coin = self._uniform() < b / (b + margin)
        if self._adapt:
            self._log_b += self._rate * (self._budget - coin)
        return coin


class EmaThreshold(BudgetRule):
    """Scale-free rule: ask when the score is more than ``k`` standard deviations above its
    running mean.

    Mean and variance are exponential moving averages over about ``window`` items (Finch 2009,
    "Incremental calculation of weighted mean and variance"), taken *before* the item is
    added, so the rule reacts to a score relative to the recent ones whatever their scale.
    ``k`` follows the upper ``budget`` quantile of the z-scores (up ``step * (1 - budget)``
    after a z-score that reaches it, down ``step * budget`` otherwise), and the decision uses
    ``k - gain_per_label * deficit``, which pays labels back and holds the budget.

    Parameters
    ----------
    budget, burst, seed
        See :class:`BudgetRule`.
    window
        Items the moving averages span (``alpha = 2 / (window + 1)``).
    k
        Initial number of standard deviations.
    step
        How far ``k`` moves per item.
    gain
        ``k`` shift per window's worth of budget behind.

    Examples
    --------
    >>> import numpy as np
    >>> rule = EmaThreshold(0.05, seed=0)
    >>> int(rule.decide(np.random.default_rng(0).random(10_000) * 1e-6).sum())  # any scale
    499
    """

    def __init__(
        self,
        budget: float,
        *,
        window: int = 1000,
        k: float = 2.0,
        step: float = 0.05,
        gain: float = 4.0,
        burst: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(budget, burst=burst, seed=seed)
        check_window(window)
        self._alpha = 2.0 / (window + 1.0)
        self._k = float(k)
        self._step = float(step)
        self._gain_per_label = gain / (self._budget * window)
        self._mean: float | None = None
        self._var = 0.0

    @property
    def threshold(self) -> float:
        """``mean + k * std`` after the last item (clipped to ``[0, 1]``)."""
        if self._mean is None:
            return 0.0
        return min(max(self._mean + self._k * math.sqrt(self._var), 0.0), 1.0)

    @property
    def k(self) -> float:
        """The tracked number of standard deviations."""
        return self._k

    def _want(self, score: float, allowed: bool, deficit: float) -> bool:
        if self._mean is None:
            self._mean = score
        diff = score - self._mean
        std = math.sqrt(self._var)
        if std > 1e-12 * max(abs(self._mean), 1e-300):
            z = diff / std
        else:  # no spread yet: only a departure from the mean stands out
            z = math.copysign(math.inf, diff) if diff else 0.0
        wanted = z >= self._k - self._gain_per_label * deficit
        self._k += self._step * (1.0 - self._budget) if z >= self._k else -self._step * self._budget
        alpha = self._alpha
        self._mean += alpha * diff
        self._var = (1.0 - alpha) * (self._var + alpha * diff * diff)
        return wanted


class QuantileThreshold(BudgetRule):
    """Ask when the score lies in the top ``budget`` share of the recent scores.

    A bounded histogram (``bins`` equal bins on ``[0, 1]``, weights decaying over about
    ``window`` items) holds the recent score distribution. An item's *upper rank* is the
    weight above its bin plus a uniform share of its own bin (ties are broken at random, so a
    constant score is asked at exactly the budget rate). The rule asks when the rank is below
    ``budget * (1 + gain * deficit)``: the running ``1 - budget`` quantile, moved by the labels
    the rule is behind. The first item sees an empty histogram and ranks uniformly at random.

    Parameters
    ----------
    budget, burst, seed
        See :class:`BudgetRule`.
    window
        Items the histogram spans (weights decay by ``1 - 1/window`` per item).
    bins
        Histogram resolution.
    gain
        Relative raise of the asked share per label behind.

    Examples
    --------
    >>> import numpy as np
    >>> rule = QuantileThreshold(0.01, seed=1)
    >>> int(rule.decide(np.full(10_000, 0.3)).sum())  # even a constant score spends the budget
    100
    """

    def __init__(
        self,
        budget: float,
        *,
        window: int = 2000,
        bins: int = 256,
        gain: float = 1.0,
        burst: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(budget, burst=burst, seed=seed)
        check_window(window)
        if not (isinstance(bins, int) and bins >= 1):
            raise ValueError(f"bins must be a positive number, got {bins!r}")
        self._bins = bins
        self._hist = [0.0] * bins
        self._total = 0.0
        self._weight = 1.0  # weight of the next item; growing it decays the older ones
        self._grow = 1.0 / (1.0 - 1.0 / window)
        self._gain = float(gain)

    @property
    def threshold(self) -> float:
        """The running ``1 - budget`` quantile of the scores (0.0 before any item)."""
        if self._total <= 0.0:
            return 0.0
        hist = np.array(self._hist)
        above = np.cumsum(hist[::-1])[::-1] / self._total  # weight share in bin j and above
        j = int(np.flatnonzero(above >= self._budget)[-1]) if above[0] >= self._budget else 0
        return j / self._bins

    def _want(self, score: float, allowed: bool, deficit: float) -> bool:
        j = min(max(int(score * self._bins), 0), self._bins - 1)
        hist = self._hist
        if self._total > 0.0:
            rank = (math.fsum(hist[j + 1 :]) + self._uniform() * hist[j]) / self._total
        else:
            rank = self._uniform()
        wanted = rank < self._budget * (1.0 + self._gain * deficit)
        hist[j] += self._weight
        self._total += self._weight
        self._weight *= self._grow
        if self._weight > 1e100:  # rescale before the weights overflow
            scale = 1.0 / self._weight
            self._hist = [h * scale for h in hist]
            self._total *= scale
            self._weight = 1.0
        return wanted


RULES: dict[str, type[BudgetRule]] = {
    "fixed": FixedThreshold,
    "variable": VariableUncertainty,
    "randomized-variable": RandomizedVariableUncertainty,
    "split": Split,
    "selective-sampling": SelectiveSampling,
    "ema": EmaThreshold,
    "quantile": QuantileThreshold,
}
