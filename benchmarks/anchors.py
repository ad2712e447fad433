"""Anchors: published stream active-learning strategies, run over our learner.

Each anchor runs its library's own decision code; only the probabilities it reads come from the
shared learner (a :class:`~streamer.models.RiverModel`), so every method learns with the same
model and the difference in accuracy is the difference in which labels were asked for.

- :class:`RiverEntropyAnchor`: ``river.active.EntropySampler.predict_proba_one`` decides, on
  top of :class:`LearnerView`, a river classifier that hands it our learner's probabilities.
- :class:`SkactivemlAnchor`: a ``skactiveml.stream`` query strategy with its default budget
  manager, called as in scikit-activeml's stream tutorial (``query(..., return_utilities=True)``
  then ``update(..., budget_manager_param_dict={"utilities": utilities})``), over
  :class:`LearnerClassifier`, an ``SkactivemlClassifier`` that reads our learner.

Both adapters know the stream's class list up front (scikit-activeml's classifiers require
``classes=``) and report a uniform distribution while the learner knows fewer than two classes,
which is what an unfitted scikit-activeml classifier or river's untrained ``LogisticRegression``
report. Without that, ``EntropySampler`` sees an entropy of 0 for an empty or one-class
prediction and never asks again: it would starve from the first item.

Examples
--------
>>> import numpy as np
>>> proba = np.array([[0.9, 0.1], [0.5, 0.5]])
>>> anchor = RiverEntropyAnchor(classes=[0, 1], discount_factor=1.0, seed=0)
>>> anchor.decide(np.zeros((2, 3)), proba).tolist()
[False, True]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from river import active, base
from skactiveml import stream
from skactiveml.base import SkactivemlClassifier
from skactiveml.utils import call_func

__all__ = [
    "ANCHORS",
    "LearnerClassifier",
    "LearnerView",
    "RiverEntropyAnchor",
    "SkactivemlAnchor",
    "build_anchor",
    "full_proba",
]

# Stream strategies of scikit-activeml run as anchors, by the name this benchmark reports.
SKACTIVEML_STRATEGIES = {
    "skactiveml.VariableUncertainty": "VariableUncertainty",
    "skactiveml.Split": "Split",
    "skactiveml.StreamProbabilisticAL": "StreamProbabilisticAL",
    # DBALStream (Ienco et al. 2014) is called StreamDensityBasedAL in scikit-activeml >= 0.5.
    "skactiveml.DBALStream": "StreamDensityBasedAL",
}
RIVER_ENTROPY = "river.EntropySampler"
ANCHORS = (RIVER_ENTROPY, *SKACTIVEML_STRATEGIES)

# StreamProbabilisticAL's kernel-frequency window, as in the scikit-activeml stream tutorial.
PAL_WINDOW = 1000


def full_proba(proba: np.ndarray, known: Sequence[Any], classes: Sequence[Any]) -> np.ndarray:
    """Spread the learner's ``(B, len(known))`` probabilities over the stream's full class list.

    Classes the learner has not seen get 0; with fewer than two known classes the learner
    cannot rank anything, and the row is uniform (an unfitted classifier's answer).

    Examples
    --------
    >>> full_proba(np.array([[0.2, 0.8]]), known=[0, 2], classes=[0, 1, 2]).tolist()
    [[0.2, 0.0, 0.8]]
    >>> full_proba(np.ones((1, 1)), known=[1], classes=[0, 1]).tolist()
    [[0.5, 0.5]]
    """
    B, C = proba.shape[0], len(classes)
    if len(known) < 2:
        return np.full((B, C), 1.0 / C)
    out = np.zeros((B, C))
    out[:, [classes.index(c) for c in known]] = proba
    return out


class LearnerView(base.Classifier):
    """A river classifier whose ``predict_proba_one`` is the learner's answer for the current item.

    The harness sets :attr:`current` before each call; learning goes to the shared learner
    directly, never through this view.
    """

    def __init__(self) -> None:
        self.current: dict[Any, float] = {}

    def learn_one(self, x: dict, y: Any) -> None:
        """Labels reach the shared learner from the harness, not from here."""

    def predict_proba_one(self, x: dict) -> dict[Any, float]:
        return self.current


class RiverEntropyAnchor:
    """river's ``EntropySampler`` (no budget: its share follows ``discount_factor``).

    Parameters
    ----------
    classes
        The stream's class list.
    discount_factor
        Passed to ``EntropySampler``; higher asks less.
    seed
        Seeds the sampler's coin flips.
    """

    def __init__(self, classes: Sequence[Any], *, discount_factor: float, seed: int) -> None:
        self.classes = list(classes)
        self._view = LearnerView()
        self._sampler = active.EntropySampler(self._view, discount_factor=discount_factor, seed=seed)

    def decide(self, X: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """Ask or skip each row, given the learner's probabilities over :attr:`classes`."""
        ask = np.zeros(X.shape[0], dtype=bool)
        for i, row in enumerate(proba.tolist()):
            self._view.current = dict(zip(self.classes, row, strict=True))
            _, ask[i] = self._sampler.predict_proba_one({})
        return ask

    def labelled(self, X: np.ndarray, ask: np.ndarray, y_asked: np.ndarray) -> None:
        """Nothing to remember: the sampler is stateless apart from its random generator."""


class LearnerClassifier(SkactivemlClassifier):
    """An ``SkactivemlClassifier`` that answers with the shared learner's probabilities.

    ``fit`` is a no-op (the harness teaches the learner). The probabilities of the current batch
    are handed over with :meth:`set_batch`, so the learner predicts each item once.
    """

    def __init__(self, classes: Sequence[Any] | None = None, missing_label: Any = np.nan) -> None:
        super().__init__(classes=classes, missing_label=missing_label)
        self.classes_ = np.asarray(classes)
        self._X: np.ndarray | None = None
        self._proba: np.ndarray | None = None

    def set_batch(self, X: np.ndarray, proba: np.ndarray) -> None:
        self._X, self._proba = X, proba

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LearnerClassifier:
        return self

    def predict_proba(self, X: Any, **kwargs: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if self._X is None or self._proba is None or X.shape != self._X.shape or not np.array_equal(X, self._X):
            raise RuntimeError("LearnerClassifier only answers for the batch handed over with set_batch")
        return self._proba


class SlidingWindow:
    """The last ``size`` rows and their labels (``nan`` = not asked), in a ring buffer.

    Row order inside :attr:`X` is not stream order; a Parzen window does not care.
    """

    def __init__(self, size: int) -> None:
        self._size, self._count, self._next = size, 0, 0
        self._X: np.ndarray | None = None
        self._y = np.full(size, np.nan)

    def __len__(self) -> int:
        return self._count

    @property
    def X(self) -> np.ndarray:
        return self._X[: self._count] if self._X is not None else np.empty((0, 0))

    @property
    def y(self) -> np.ndarray:
        return self._y[: self._count]

    def extend(self, X: np.ndarray, y: np.ndarray) -> None:
        if self._X is None:
            self._X = np.zeros((self._size, X.shape[1]))
        for row, label in zip(X, y, strict=True):
            self._X[self._next], self._y[self._next] = row, label
            self._next = (self._next + 1) % self._size
            self._count = min(self._count + 1, self._size)


class SkactivemlAnchor:
    """A scikit-activeml stream query strategy with its default budget manager.

    Parameters
    ----------
    name
        A key of :data:`SKACTIVEML_STRATEGIES`.
    classes
        The stream's class list.
    budget
        Passed to the strategy (its default budget manager gets it).
    seed
        The strategy's ``random_state``.
    """

    def __init__(self, name: str, classes: Sequence[Any], *, budget: float, seed: int) -> None:
        cls = getattr(stream, SKACTIVEML_STRATEGIES[name])
        kwargs: dict[str, Any] = {"budget": budget, "random_state": seed}
        self._window: SlidingWindow | None = None
        if name == "skactiveml.StreamProbabilisticAL":
            # Our learner has no predict_freq: the strategy's own metric="rbf" option takes the
            # kernel frequencies from a ParzenWindowClassifier over a window of the stream and
            # multiplies them with our learner's probabilities.
            kwargs["metric"] = "rbf"
            self._window = SlidingWindow(PAL_WINDOW)
        self.strategy = cls(**kwargs)
        self.classes = list(classes)
        self._clf = LearnerClassifier(classes=self.classes)

    def decide(self, X: np.ndarray, proba: np.ndarray) -> np.ndarray:
        """Query, then update the strategy and its budget manager, as the tutorial does."""
        self._clf.set_batch(X, proba)
        extra: dict[str, Any] = {}
        if self._window is not None:
            if len(self._window):
                extra = {"X": self._window.X, "y": self._window.y}
            else:  # scikit-activeml refuses an empty window; unlabelled rows count nothing either
                extra = {"X": X, "y": np.full(X.shape[0], np.nan)}
        queried, utilities = call_func(self.strategy.query, candidates=X, clf=self._clf,
                                       return_utilities=True, fit_clf=False, **extra)
        call_func(self.strategy.update, candidates=X, queried_indices=queried,
                  budget_manager_param_dict={"utilities": utilities})
        ask = np.zeros(X.shape[0], dtype=bool)
        ask[np.asarray(queried, dtype=int)] = True
        return ask

    def labelled(self, X: np.ndarray, ask: np.ndarray, y_asked: np.ndarray) -> None:
        """Add the batch to the kernel-frequency window (label where asked, missing elsewhere).

        ``y_asked`` holds the labels of the asked rows, in row order.
        """
        if self._window is None:
            return
        y = np.full(X.shape[0], np.nan)
        y[ask] = y_asked
        self._window.extend(X, y)


def build_anchor(name: str, classes: Sequence[Any], *, budget: float, seed: int,
                 params: dict[str, Any] | None = None) -> RiverEntropyAnchor | SkactivemlAnchor:
    """Build the anchor ``name`` (one of :data:`ANCHORS`)."""
    params = params or {}
    if name == RIVER_ENTROPY:
        return RiverEntropyAnchor(classes, discount_factor=params["discount_factor"], seed=seed)
    if name in SKACTIVEML_STRATEGIES:
        return SkactivemlAnchor(name, classes, budget=budget, seed=seed)
    raise ValueError(f"unknown anchor {name!r}; choose one of {', '.join(ANCHORS)}")
