"""Sanity check: scikit-activeml's "Stream-based Active Learning - Getting Started" tutorial.

The tutorial (``tutorials/20_stream_getting_started.ipynb``, the version that reports the
numbers below) draws every seed from ``np.random.RandomState(0)`` in a fixed order: the blobs,
then the seven strategies in the order they are listed, then one ParzenWindowClassifier per
strategy as the loop reaches it. It streams 5,000 items of 30 blobs with ``y = centre % 2``
after 10 labelled initial items, refits the classifier on a sliding window of the last 1,000
items before each prediction, uses every strategy's default budget (0.1) and budget manager, and
reports prequential accuracy. We replay exactly that, then run our Sampler in the same setup:
once over the tutorial's own learner (:class:`ParzenWindowModel`), once over our default learner.

Published (their notebook output): StreamRandomSampling 0.7642 (498 queries),
StreamProbabilisticAL 0.7966 (498 queries).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import sklearn.datasets
from skactiveml.classifier import ParzenWindowClassifier
from skactiveml.stream import (
    CognitiveDualQueryStrategyRanVarUn,
    PeriodicSampling,
    Split,
    StreamDensityBasedAL,
    StreamProbabilisticAL,
    StreamRandomSampling,
    VariableUncertainty,
)
from skactiveml.utils import call_func

from streamer.core.sampler import Sampler
from streamer.models import LOGISTIC_MODEL, build_model
from streamer.prequential import prequential

__all__ = ["LEARNERS", "PUBLISHED", "THEIRS", "ParzenWindowModel", "reproduce", "run_ours", "run_theirs"]

PUBLISHED = {"StreamRandomSampling": 0.7642, "StreamProbabilisticAL": 0.7966}
# Every row of the notebook's output: accuracy, queries.
PUBLISHED_ALL = {
    "StreamRandomSampling": (0.7642, 498), "PeriodicSampling": (0.7764, 500),
    "VariableUncertainty": (0.7542, 524), "Split": (0.7186, 523), "DBALStream": (0.7794, 500),
    "CogDQSRanVarUn": (0.781, 520), "StreamProbabilisticAL": (0.7966, 498),
}
INIT_TRAIN_LENGTH = 10
STREAM_LENGTH = 5000
TRAINING_SIZE = 1000
BUDGET = 0.1  # every strategy's default budget in the tutorial


class ParzenWindowModel:
    """The tutorial's learner behind our Model protocol.

    A ParzenWindowClassifier refitted, before every prediction, on the last ``window`` items;
    ``observe`` adds items unlabelled, ``learn`` fills in the labels of the latest matching rows.
    """

    def __init__(self, classes: Sequence[int], *, window: int, random_state: int,
                 X_init: np.ndarray, y_init: np.ndarray) -> None:
        self._clf = ParzenWindowClassifier(classes=list(classes), random_state=random_state)
        self._X: deque[np.ndarray] = deque(X_init, maxlen=window)
        self._y: deque[float] = deque((float(v) for v in y_init), maxlen=window)
        self.classes = list(classes)
        self.n_features: int | None = X_init.shape[1]
        self.version = 0

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self._clf.fit(np.asarray(self._X), np.asarray(self._y))
        return self._clf.predict_proba(X)

    def observe(self, X: np.ndarray) -> None:
        for row in X:
            self._X.append(row)
            self._y.append(np.nan)

    def learn(self, X: np.ndarray, y: Sequence[Any]) -> None:
        for row, label in zip(X, y, strict=True):
            for i in range(len(self._X) - 1, -1, -1):
                if np.isnan(self._y[i]) and np.array_equal(self._X[i], row):
                    self._y[i] = float(label)
                    break
        self.version += 1


THEIRS = ("StreamRandomSampling", "PeriodicSampling", "VariableUncertainty", "Split", "DBALStream",
          "CogDQSRanVarUn", "StreamProbabilisticAL")
LEARNERS = ("Parzen window", LOGISTIC_MODEL)


@dataclass(frozen=True)
class TutorialSetup:
    """The tutorial's data and the seeds it draws, replayed from ``RandomState(0)``."""

    X_init: np.ndarray
    y_init: np.ndarray
    X_stream: np.ndarray
    y_stream: np.ndarray
    strategy_seeds: dict[str, int]
    clf_seeds: dict[str, int]


@cache
def setup() -> TutorialSetup:
    """Draw the data and every seed in the tutorial's order (blobs, strategies, classifiers)."""
    random_state = np.random.RandomState(0)

    def get_randomseed() -> int:
        return random_state.randint(2**31 - 1)

    X, y_centers = sklearn.datasets.make_blobs(
        n_samples=INIT_TRAIN_LENGTH + STREAM_LENGTH, centers=30, random_state=get_randomseed(),
        shuffle=True)
    y = y_centers % 2
    strategy_seeds = {name: get_randomseed() for name in THEIRS}
    clf_seeds = {name: get_randomseed() for name in THEIRS}  # clf_factory() runs in the loop
    return TutorialSetup(X[:INIT_TRAIN_LENGTH], y[:INIT_TRAIN_LENGTH], X[INIT_TRAIN_LENGTH:],
                         y[INIT_TRAIN_LENGTH:], strategy_seeds, clf_seeds)


def _strategy(name: str, seed: int) -> Any:
    if name == "StreamRandomSampling":
        return StreamRandomSampling(random_state=seed)
    if name == "PeriodicSampling":
        return PeriodicSampling(random_state=seed)
    if name == "VariableUncertainty":
        return VariableUncertainty(random_state=seed)
    if name == "Split":
        return Split(random_state=seed)
    if name == "DBALStream":
        return StreamDensityBasedAL(random_state=seed)
    if name == "CogDQSRanVarUn":
        return CognitiveDualQueryStrategyRanVarUn(random_state=seed, force_full_budget=True)
    if name == "StreamProbabilisticAL":
        return StreamProbabilisticAL(random_state=seed)
    raise ValueError(f"unknown tutorial strategy {name!r}; choose one of {', '.join(THEIRS)}")


def run_theirs(name: str) -> dict[str, Any]:
    """The tutorial's loop for one of its strategies (:data:`THEIRS`)."""
    s = setup()
    query_strategy = _strategy(name, s.strategy_seeds[name])
    clf = ParzenWindowClassifier(classes=[0, 1], random_state=s.clf_seeds[name])
    X_train: deque = deque(s.X_init, maxlen=TRAINING_SIZE)
    y_train: deque = deque(s.y_init, maxlen=TRAINING_SIZE)
    clf.fit(X_train, y_train)
    correct, count = [], 0
    for x_t, y_t in zip(s.X_stream, s.y_stream, strict=True):
        X_cand = x_t.reshape([1, -1])
        clf.fit(X_train, y_train)
        correct.append(clf.predict(X_cand)[0] == y_t)
        sampled, utilities = call_func(query_strategy.query, candidates=X_cand, clf=clf,
                                       return_utilities=True, fit_clf=False)
        call_func(query_strategy.update, candidates=X_cand, queried_indices=sampled,
                  budget_manager_param_dict={"utilities": utilities})
        count += len(sampled)
        X_train.append(x_t)
        y_train.append(y_t if len(sampled) > 0 else clf.missing_label)
    return {"accuracy": round(float(np.mean(correct)), 4), "queries": count}


def run_ours(sampler_kwargs: dict[str, Any], learner: str, seed: int = 0) -> dict[str, Any]:
    """Our ``Sampler(**sampler_kwargs)`` in the tutorial's setup, over ``learner`` (:data:`LEARNERS`)."""
    s = setup()
    if learner == "Parzen window":
        model: Any = ParzenWindowModel([0, 1], window=TRAINING_SIZE, random_state=seed,
                                       X_init=s.X_init, y_init=s.y_init)
    elif learner == LOGISTIC_MODEL:
        model = build_model(LOGISTIC_MODEL, seed=seed)
        model.observe(s.X_init)
        model.learn(s.X_init, s.y_init.tolist())
    else:
        raise ValueError(f"unknown learner {learner!r}; choose one of {', '.join(LEARNERS)}")
    return _run_sampler(Sampler(model, budget=BUDGET, seed=seed, **sampler_kwargs), s.X_stream, s.y_stream)


def reproduce(ours: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Replay the tutorial, then run each of ``ours`` (row name -> Sampler kwargs) and random."""
    started = time.perf_counter()
    reproduced = {name: run_theirs(name) for name in THEIRS}
    configs = {**ours, "random": {"policy": "random"}}
    rows = {f"{name} | {learner}": run_ours(cfg, learner) for name, cfg in configs.items()
            for learner in LEARNERS}
    return report(reproduced, rows, time.perf_counter() - started)


def report(reproduced: dict[str, Any], ours: dict[str, Any], elapsed: float) -> dict[str, Any]:
    return {
        "setup": {"centers": 30, "label": "centre % 2", "init_labelled": INIT_TRAIN_LENGTH,
                  "items": STREAM_LENGTH, "window": TRAINING_SIZE, "budget": BUDGET,
                  "random_state": 0, "batch_size": 1},
        "published": PUBLISHED,
        "published_all": PUBLISHED_ALL,
        "reproduced": reproduced,
        "ours": ours,
        "elapsed_s": round(elapsed, 1),
    }


def _run_sampler(sampler: Sampler, X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The tutorial's loop with our Sampler: one item at a time, label right after deciding
    (:func:`streamer.prequential.prequential` without item ids, as the tutorial has none)."""
    run = prequential(sampler, ((X[i : i + 1], y[i : i + 1]) for i in range(len(y))), ids=False)
    return {"accuracy": round(run.correct / len(y), 4), "queries": run.queried}
