"""Prequential (test-then-train) evaluation: the one loop ``streamer simulate``, the benchmarks
and the tests run a sampler through.

Protocol: items arrive in stream order, in batches; every item of a batch is predicted by
``decide`` before any label of it may be revealed; only the labels it asks for reach the
learner, ``label_delay`` items after the last item of their batch (0: right after the batch was
decided), in the order they fall due; accuracy counts every item, and an item predicted while
the model knew no class (prediction ``None``) counts as wrong.

Examples
--------
>>> import numpy as np
>>> from streamer.core.sampler import Sampler
>>> from streamer.models import build_model
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(400, 2))
>>> y = (X[:, 0] > 0).astype(int)
>>> sampler = Sampler(build_model("StandardScaler | LogisticRegression"), budget=0.1)
>>> run = prequential(sampler, ((X[i : i + 10], y[i : i + 10]) for i in range(0, 400, 10)))
>>> run.items, run.asked.shape, run.queried == int(run.asked.sum()), run.accuracy > 0.8
(400, (400,), True, True)
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["Prequential", "prequential"]


class Decided(Protocol):
    """What the loop reads of a decision (:class:`~streamer.core.decisions.Decisions`)."""

    prediction: Sequence[Any]
    ask: Any  # bool (B,)
    reason: Sequence[str]


class Learner(Protocol):
    """What the loop drives: a :class:`~streamer.core.sampler.Sampler`, or a benchmark's adapter."""

    def decide(self, X: np.ndarray, *, ids: list[str] | None = None) -> Decided: ...

    def learn(self, X: np.ndarray, y: Sequence[Any], *, ids: list[str] | None = None) -> Any: ...


@dataclass
class Prequential:
    """The outcome of :func:`prequential` (also the partial state handed to ``after_batch``)."""

    items: int = 0
    queried: int = 0
    correct: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)  # reasons of the asked items
    decisions: list[Any] = field(default_factory=list)  # every batch's, with keep_decisions
    _asks: list[np.ndarray] = field(default_factory=list, repr=False)
    _hits: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def accuracy(self) -> float:
        """Share of the items predicted right (0.0 before any item)."""
        return self.correct / self.items if self.items else 0.0

    @property
    def asked(self) -> np.ndarray:
        """bool ``(items,)``: whether each item's label was asked for."""
        return np.concatenate(self._asks) if self._asks else np.zeros(0, dtype=bool)

    @property
    def hits(self) -> np.ndarray:
        """bool ``(items,)``: whether each item was predicted right."""
        return np.concatenate(self._hits) if self._hits else np.zeros(0, dtype=bool)


def prequential(
    sampler: Learner,
    batches: Iterable[tuple[Any, ...]],
    *,
    label_delay: float = 0.0,
    jitter: np.random.Generator | None = None,
    max_items: int | None = None,
    ids: bool = True,
    keep_decisions: bool = False,
    before_batch: Callable[[int], None] | None = None,
    after_batch: Callable[[Prequential, np.ndarray, np.ndarray, Any], None] | None = None,
) -> Prequential:
    """Run ``sampler`` over ``batches`` test-then-train (see the module docstring).

    Parameters
    ----------
    sampler
        Decides (``decide(X, ids=...)``) and learns (``learn(X, labels, ids=...)``).
    batches
        ``(X, y, ...)`` tuples in stream order (more fields are ignored).
    label_delay
        Items after the last item of its batch that an asked label reaches the learner.
    jitter
        Draws each label's delay from an exponential distribution with mean ``label_delay``.
    max_items
        Stop after this many items.
    ids
        Give every item an id (its index, as text) for ``decide`` and ``learn``: the sampler
        then never re-asks an item whose label is in flight and weighs each label by how likely
        it was to be asked. Off, both are called without ids.
    keep_decisions
        Keep every batch's decisions in :attr:`Prequential.decisions`.
    before_batch
        Called with the number of items so far before each batch is decided.
    after_batch
        Called with the partial result, the batch's ``X``, ``y`` and decisions after its due
        labels were learned.
    """
    run = Prequential()
    pending: list[tuple[float, int, np.ndarray, Any, str | None]] = []  # heap by due item index

    def reveal(upto: float) -> None:
        """Teach every pending label due at or before item index ``upto``."""
        xs, ys, keys = [], [], []
        while pending and pending[0][0] <= upto:
            _, _, x, label, key = heapq.heappop(pending)
            xs.append(x)
            ys.append(label)
            keys.append(key)
        if xs:
            sampler.learn(np.vstack(xs), ys, ids=keys if ids else None)

    for X, y, *_ in batches:
        if max_items is not None and run.items + len(y) > max_items:
            X, y = X[: max_items - run.items], y[: max_items - run.items]
        if len(y) == 0:
            break
        start = run.items
        if before_batch is not None:
            before_batch(start)
        keys = [str(start + i) for i in range(len(y))] if ids else None
        decisions = sampler.decide(X, ids=keys)
        ask = np.asarray(decisions.ask, dtype=bool)
        truth = y.tolist()
        hits = np.fromiter((p is not None and p == t for p, t in zip(decisions.prediction, truth, strict=True)),
                           dtype=bool, count=len(truth))
        last = start + len(y) - 1
        for i in np.flatnonzero(ask).tolist():
            # The label exists once its batch is decided; it arrives `label_delay` items later.
            wait = label_delay if jitter is None else float(jitter.exponential(label_delay)) if label_delay else 0.0
            heapq.heappush(pending, (last + wait, start + i, X[i : i + 1], truth[i], None if keys is None else keys[i]))
            run.by_reason[decisions.reason[i]] += 1
        run.items += len(y)
        run.queried += int(ask.sum())
        run.correct += int(hits.sum())
        run._asks.append(ask)
        run._hits.append(hits)
        if keep_decisions:
            run.decisions.append(decisions)
        reveal(run.items - 1)
        if after_batch is not None:
            after_batch(run, X, y, decisions)
        if max_items is not None and run.items >= max_items:
            break
    return run
