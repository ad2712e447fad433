"""One prequential run of one method on one stream, with the same learner for every method.

Protocol (:func:`streamer.prequential.prequential`, the loop of ``streamer simulate``): items in
stream order, in micro-batches of ``batch_size``; every item is predicted before any label of
its batch is revealed; the requested labels reach the learner right after the batch is decided
(no delay); the scaler learns from every item; accuracy counts every item, and an item predicted
while no class is known counts wrong. An anchor runs in the same loop as an
:class:`AnchorLearner`.

Examples
--------
>>> import numpy as np
>>> window_counts(np.array([1, 1, 0, 0, 0, 0, 0, 0]), window=4).tolist()
[2, 1, 0, 0, 0]
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import numpy as np
from anchors import build_anchor, full_proba
from streams import Stream

from streamer.core.sampler import Sampler
from streamer.models import LOGISTIC_MODEL, build_model
from streamer.prequential import prequential

__all__ = ["SHARE_WINDOW", "AnchorLearner", "curve_points", "max_ahead", "run", "window_counts"]

SHARE_WINDOW = 10_000  # items per window of the budget check
CURVE_POINTS = 50


def run(stream: Stream, *, budget: float, seed: int, batch_size: int,
        sampler_kwargs: dict[str, Any] | None = None, anchor: str | None = None,
        anchor_params: dict[str, Any] | None = None, model_spec: str = LOGISTIC_MODEL) -> dict[str, Any]:
    """Run one method: our ``Sampler(**sampler_kwargs)`` or the anchor ``anchor``.

    Returns
    -------
    dict
        ``items, queried, share, accuracy, window, window_min, window_max, max_ahead, curve,
        elapsed_s, items_per_s`` (+ ``asked_by_reason`` for ours). ``curve`` is
        ``[items, labels so far, prequential accuracy so far]`` at 50 points.
    """
    if (sampler_kwargs is None) == (anchor is None):
        raise ValueError("pass exactly one of sampler_kwargs (ours) or anchor")
    X, y, n = stream.X, stream.y, len(stream)
    model = build_model(model_spec, seed=seed)
    after_batch = None
    if sampler_kwargs is not None:
        sampler: Any = Sampler(model, budget=budget, seed=seed, **sampler_kwargs)
    else:
        policy = build_anchor(anchor, stream.classes, budget=budget, seed=seed, params=anchor_params)
        sampler = AnchorLearner(model, policy, stream.classes)

        def after_batch(_run: Any, Xb: np.ndarray, yb: np.ndarray, decisions: Any) -> None:
            policy.labelled(Xb, decisions.ask, yb[decisions.ask])

    started = time.perf_counter()
    batches = ((X[start : start + batch_size], y[start : start + batch_size]) for start in range(0, n, batch_size))
    result = prequential(sampler, batches, after_batch=after_batch)
    asked, correct, reasons = result.asked, result.hits, result.by_reason
    elapsed = time.perf_counter() - started
    window = min(SHARE_WINDOW, n)
    counts = window_counts(asked, window)
    record: dict[str, Any] = {
        "items": n,
        "queried": int(asked.sum()),
        "share": float(asked.mean()),
        "accuracy": float(correct.mean()),
        # the least and most labels asked in any `window` consecutive items (budget check)
        "window": window,
        "window_min": int(counts.min()),
        "window_max": int(counts.max()),
        # the most labels asked ahead of budget * seen at any point (the default promise's bound)
        "max_ahead": round(float(max_ahead(asked, budget)), 2),
        "curve": curve_points(asked, correct),
        "elapsed_s": round(elapsed, 3),
        "items_per_s": round(n / elapsed, 1) if elapsed > 0 else 0.0,
    }
    if sampler_kwargs is not None:
        record["asked_by_reason"] = dict(sorted(reasons.items()))
        # the default promise: never more than warm-up + slack labels ahead of budget * seen
        record["promise_bound"] = round(sampler.controller.slack + sampler.controller.warmup, 2)
    return record


class AnchorLearner:
    """An anchor over the shared learner, shaped like a Sampler for the prequential loop: the
    learner predicts, the anchor decides from its probabilities, the scaler sees every item."""

    def __init__(self, model: Any, anchor: Any, classes: list[Any]) -> None:
        self.model, self.anchor, self.classes = model, anchor, classes

    def decide(self, X: np.ndarray, *, ids: list[str] | None = None) -> SimpleNamespace:
        known = list(self.model.classes)
        proba = np.asarray(self.model.predict_proba(X), dtype=np.float64)
        prediction = [known[j] for j in proba.argmax(axis=1).tolist()] if known else [None] * len(X)
        ask = self.anchor.decide(X, full_proba(proba, known, self.classes))
        self.model.observe(X)
        return SimpleNamespace(prediction=prediction, ask=ask,
                               reason=["anchor" if a else "skip" for a in ask.tolist()])

    def learn(self, X: np.ndarray, y: list[Any], *, ids: list[str] | None = None) -> None:
        self.model.learn(X, y)


def max_ahead(asked: np.ndarray, budget: float) -> float:
    """The most labels the asks ran ahead of ``budget * seen``, over every prefix (>= 0)."""
    if len(asked) == 0:
        return 0.0
    ahead = np.cumsum(np.asarray(asked, dtype=np.float64)) - budget * np.arange(1, len(asked) + 1)
    return max(float(ahead.max()), 0.0)


def window_counts(asked: np.ndarray, window: int) -> np.ndarray:
    """Labels asked in every run of ``window`` consecutive items (from the cumulative ask vector)."""
    cum = np.concatenate([[0], np.cumsum(np.asarray(asked, dtype=np.int64))])
    return cum[window:] - cum[:-window]


def curve_points(asked: np.ndarray, correct: np.ndarray, points: int = CURVE_POINTS) -> list[list[float]]:
    """``[items, labels so far, prequential accuracy so far]`` at ``points`` evenly spaced items."""
    n = len(asked)
    at = np.unique(np.linspace(1, n, num=min(points, n)).round().astype(int))
    labels = np.cumsum(asked)[at - 1]
    acc = np.cumsum(correct)[at - 1] / at
    return [[int(i), int(q), round(float(a), 5)] for i, q, a in zip(at, labels, acc, strict=True)]
