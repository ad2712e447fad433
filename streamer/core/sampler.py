"""``Sampler``: predict, score, and decide which labels to ask for -- one micro-batch at a time.

The same object runs in the Kafka service, the Faust integration and ``streamer simulate``, so an
offline evaluation measures exactly what production does.

One decision, per batch of items:

1. the model predicts class probabilities (one call for the batch);
2. the **policy** (:mod:`streamer.core.policy`) turns them, and the other signals it names
   (committee disagreement, novelty against a memory of labelled/requested items, density),
   into one score per item; optionally raised for items predicted as rare classes (**class
   balance**);
3. the **budget controller** (:mod:`streamer.core.budget`) asks for the items whose score
   clears its threshold, plus a random exploration share, while never running more than its
   slack ahead of or behind the budget -- optionally under a labels-per-second token bucket
   and a temporary boost after a **drift** of the prequential error (paid back);
4. items whose label is still **in flight** (same id asked before and not answered) are never
   asked again; requested items join the novelty memory at once, so near-duplicates of an
   unanswered item look familiar.

How a batch is scored (models that score on their own device included) is
:mod:`streamer.core.sampler_scoring`; the ids asked and not answered yet,
:mod:`streamer.core.sampler_in_flight`.

The reason for every ask is recorded (``uncertainty``, ``disagreement``, ``novelty``,
``explore``, ``cold_start``, ``catch_up``, ``random``).

Examples
--------
>>> import numpy as np
>>> from streamer.models import build_model
>>> sampler = Sampler(build_model("GaussianNB"), budget=0.1)
>>> decisions = sampler.decide(np.zeros((3, 2)), ids=["a", "b", "c"])
>>> decisions.reason  # no class known yet: the budget's slack goes to the first items
['cold_start', 'cold_start', 'cold_start']
>>> sampler.decide(np.zeros((1, 2)), ids=["a"]).reason  # "a" is still waiting for its label
['skip']
>>> sampler.learn(np.zeros((3, 2)), [0, 1, 1], ids=["a", "b", "c"]).tolist()
[False, False, False]
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from streamer.core.budget import BudgetController, TokenBucket
from streamer.core.checks import as_batch
from streamer.core.decisions import (
    COLD_START,
    EXPLORE,
    RANDOM,
    REASONS,
    SKIP,
    UNCERTAINTY,
    Decisions,
)
from streamer.core.model import Label, Model
from streamer.core.moments import RunningMoments
from streamer.core.policy import COMMITTEE_TERMS, MEMORY_TERMS, Node, RunningRank, parse
from streamer.core.sampler_in_flight import SamplerInFlight
from streamer.core.sampler_scoring import SamplerScoring, top_predictions

__all__ = ["DEFAULT_POLICY", "STRATEGIES", "Sampler"]

STRATEGIES = ("margin", "entropy", "least-confidence", "random")
DEFAULT_POLICY = "margin"


class Sampler(SamplerScoring, SamplerInFlight):
    """Decide, for every item of a batch, whether to ask for its label.

    Parameters
    ----------
    model
        Any :class:`~streamer.core.model.Model`. Policies with ``disagreement``/``kl`` need a
        committee: a model with ``committee_proba(X) -> (K, B, C)`` (e.g.
        :data:`streamer.models.COMMITTEE_MODEL`).
    budget
        Share of items whose label may be requested, in ``(0, 1]``.
    policy
        A policy expression (:mod:`streamer.core.policy`), e.g. ``"margin"`` or
        ``"margin or novelty"``; ``"random"`` is random sampling at the same budget.
    explore
        Share of the budget spent on uniformly random items (ignored by ``random``).
    seed
        Seed of every random choice the sampler makes.
    promise_window, tolerance
        The budget promise: over any ``promise_window`` items the share asked stays within
        ``tolerance`` (relative) of ``budget``.
    novelty_capacity, novelty_metric, density_reservoir
        The memory behind ``novelty`` (labelled/requested vectors kept) and ``density``
        (recent items kept); ``"euclidean"`` or ``"cosine"`` (embeddings).
    novelty_standardize
        Standardise rows by their running mean and variance before a Euclidean memory sees
        them (features in different units weigh the same); off (default), raw distances count
        (features that vary more weigh more). Off was better in exploratory runs on the
        benchmark streams (not part of the committed results): with ``margin or novelty`` at
        5% it scored 0.612 vs 0.558 on Agrawal and 0.719 vs 0.689 on the digits (irrelevant or near-constant features gain weight when standardised).
    class_balance
        Strength of the class-balance gate (``0`` = off): the score of an item predicted as a
        class with a share ``s`` of the labels so far is raised as if its weight were
        ``(1 / (C * s)) ** class_balance`` (capped at 10).
    drift
        Boost the budget after a drift of the prequential error of labelled items (ADWIN):
        ``drift_factor`` times for ``drift_duration`` items, then paid back at half rate.
    labels_per_second, clock
        A token bucket on top of the share budget; ``clock`` gives seconds.
    max_in_flight
        Most item ids remembered as asked-but-unanswered (oldest forgotten first).
    rank_window
        Values each ``or``/``and`` operand is ranked against.
    warmup, warmup_repay
        Labels that may be spent ahead of the budget at the start, and the share of the
        budget withheld afterwards until they are repaid
        (:class:`~streamer.core.budget.BudgetController` ``warmup``, ``repay``).
    warmup_per_class
        Warm-up labels granted for each class the first time a label of it is learned (a
        stream of 10 classes needs more labels before its predictions mean anything than one
        of 2); repaid like ``warmup``.
    """

    _warmup_per_class = 0.0  # samplers pickled before it existed

    def __init__(
        self,
        model: Model,
        *,
        budget: float = 0.05,
        policy: str | None = None,
        explore: float = 0.1,
        seed: int = 0,
        promise_window: int = 10_000,
        tolerance: float = 0.02,
        novelty_capacity: int = 1000,
        novelty_metric: str = "euclidean",
        density_reservoir: int = 2000,
        novelty_standardize: bool = False,
        class_balance: float = 0.0,
        drift: bool = False,
        drift_factor: float = 2.0,
        drift_duration: int = 500,
        labels_per_second: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_in_flight: int = 100_000,
        rank_window: int = 1000,
        randomize: bool = False,
        warmup: float = 0.0,
        warmup_repay: float = 1.0,
        warmup_per_class: float = 0.0,
    ) -> None:
        text = (policy or DEFAULT_POLICY).strip()
        self._model = model
        self._policy_text = text
        self._random = text.lower() == "random"
        self._policy: Node | None = None if self._random else parse(text, rank_window=rank_window)
        self._terms = [] if self._policy is None else self._policy.terms()
        if set(self._terms) & COMMITTEE_TERMS and not callable(getattr(model, "committee_proba", None)):
            raise ValueError(
                f"policy {text!r} needs a committee, but {type(model).__name__} has no "
                "committee_proba; use an ensemble such as streamer.models.COMMITTEE_MODEL"
            )
        self._controller = BudgetController(
            budget,
            explore=1.0 if self._random else explore,
            seed=seed,
            promise_window=promise_window,
            tolerance=tolerance,
            explore_reason=RANDOM if self._random else EXPLORE,
            warmup=warmup,
            repay=warmup_repay,
        )
        if not (isinstance(warmup_per_class, int | float) and warmup_per_class >= 0):
            raise ValueError(f"warmup_per_class must be a number of labels >= 0, got {warmup_per_class!r}")
        self._warmup_per_class = float(warmup_per_class)
        if not (isinstance(class_balance, int | float) and class_balance >= 0):
            raise ValueError(f"class_balance must be >= 0 (0 = off), got {class_balance!r}")
        self._class_balance = float(class_balance)
        self._label_counts: Counter[Label] = Counter()
        self._memory_args = (novelty_capacity, novelty_metric, density_reservoir)
        self._standardize = bool(novelty_standardize)
        self._memory: Any = None  # built at the first batch, when the vector length is known
        self._moments = RunningMoments()  # standardises the rows a Euclidean memory sees
        self._drift: Any = None
        self._boost: Any = None
        if drift:
            from streamer.gates.drift import BoostSchedule, DriftDetector

            self._drift = DriftDetector()
            self._boost = BoostSchedule(drift_factor, drift_duration)
        self._bucket = None if labels_per_second is None else TokenBucket(labels_per_second, clock=clock)
        if not (isinstance(max_in_flight, int) and max_in_flight >= 1):
            raise ValueError(f"max_in_flight must be a positive number of ids, got {max_in_flight!r}")
        self._max_in_flight = max_in_flight
        # Randomised selection: ask with probability rank**k, k set so the expected share is
        # the budget left after exploration (see _randomised).
        self._randomize = bool(randomize) and not self._random
        self._rank = RunningRank(rank_window)
        self._rank_window = rank_window
        self._egl: Any = None  # the expected-gradient-length term, built when a policy names it
        self._rng = np.random.default_rng([seed, 0x5EED])
        target = max(1e-6, budget * (1.0 - explore))
        self._power = max(0.0, 1.0 / target - 1.0)
        # asked-but-unanswered ids -> the probability the item had of being asked (1 / its
        # importance weight: exploration picks ~budget * explore, the gate's picks ~1)
        self._in_flight: dict[str, float] = {}
        self._by_reason: Counter[str] = Counter()
        self._blocked = 0

    # -- properties ----------------------------------------------------------------------

    @property
    def budget(self) -> float:
        """The share of items whose label may be requested."""
        return self._controller.budget

    @property
    def policy(self) -> str:
        """The policy expression (``random`` for the baseline)."""
        return self._policy_text

    @property
    def model(self) -> Model:
        """The model the sampler predicts with and teaches."""
        return self._model

    def use_model(self, model: Model) -> None:
        """Predict with ``model`` from now on: a newer version the learner published.

        The budget, the in-flight ids and the novelty memory stay: they describe this
        sampler's stream, not the model. So does state a model keeps for this process only
        (a :class:`~streamer.models.torch_head.TorchHead`'s novelty bank, which a published
        model does not carry): a model with ``adopt_local_state(old)`` takes it over.
        """
        old = self._model.n_features
        if old is not None and model.n_features is not None and model.n_features != old:
            raise ValueError(
                f"the new model expects {model.n_features} features, this sampler's {old}; "
                "replicas of one deployment must share the feature width"
            )
        adopt = getattr(model, "adopt_local_state", None)
        if adopt is not None and model is not self._model:
            adopt(self._model)
        self._model = model

    @property
    def controller(self) -> BudgetController:
        """The budget controller (read-only use: its counters and threshold)."""
        return self._controller

    # -- deciding ------------------------------------------------------------------------

    def decide(
        self, X: np.ndarray, ids: Sequence[str] | None = None, capacity: int | None = None
    ) -> Decisions:
        """Predict a batch, decide which labels to ask for, then let the model observe it.

        Parameters
        ----------
        X
            ``(B, d)`` float features.
        ids
            Item ids; an id whose label is still in flight (or repeated in the batch) is not
            asked again. Without ids every row is a new item.
        capacity
            Most labels that can be requested now (backpressure); ``0`` pauses requests.
            The budget of items beyond it is forfeited, not caught up later.

        Returns
        -------
        Decisions
            One decision per row, with the prediction made *before* the model observed ``X``.
        """
        X = self._check(X)
        model = self._model
        classes = list(model.classes)
        proba, device_scores, device_terms = self._predict(X, classes)
        B, C = X.shape[0], len(classes)
        top, confidence, prediction = top_predictions(proba, classes)
        if ids is not None and len(ids) != B:
            raise ValueError(f"got {B} rows but {len(ids)} ids; pass one id per row")
        blocked = self._in_flight_mask(ids, B)
        memory = self._memory_for(X) if (set(self._terms) & MEMORY_TERMS) - device_terms else None
        Z = self._scaled(X) if memory is not None else X  # the rows the memory sees
        ctl = self._controller
        scale = None if self._boost is None else self._boost.multipliers(B)
        limit = None if self._bucket is None else self._bucket.available()

        scores: dict[str, np.ndarray] = {}
        if C < 2:
            # Nothing can be ranked yet: ask the first items the budget's slack allows.
            ask, reasons = ctl.decide(
                np.ones(B), scale=scale, limit=limit, blocked=blocked, track=False, capacity=capacity
            )
            reasons = [COLD_START if a else SKIP for a in ask.tolist()]
        elif self._policy is None:
            ask, reasons = ctl.decide(
                np.zeros(B), scale=scale, limit=limit, blocked=blocked, capacity=capacity
            )
        else:
            score, term_reasons, scores = self._policy_score(
                X, Z, proba, memory, device_scores, top, classes
            )
            ask, reasons = ctl.decide(
                score, scale=scale, limit=limit, blocked=blocked, capacity=capacity
            )
            for i in np.flatnonzero(ask).tolist():  # only an asked item has a gate's reason
                if reasons[i] == UNCERTAINTY:
                    reasons[i] = term_reasons[i] or UNCERTAINTY

        asked = np.flatnonzero(ask)
        if asked.size:
            if memory is not None:
                memory.add(Z[asked])
            if "novelty" in device_terms:
                model.remember(X[asked])  # type: ignore[attr-defined]
            if ids is not None:
                self._remember([ids[i] for i in asked.tolist()],
                               [self._propensity(reasons[i]) for i in asked.tolist()])
            if self._bucket is not None:
                self._bucket.take(int(asked.size))
        if memory is not None and self._memory_args[2]:
            memory.observe(Z)
        model.observe(X)
        self._by_reason.update(reasons)
        return Decisions(
            ask=ask,
            reason=reasons,
            prediction=prediction,
            confidence=confidence,
            proba=proba,
            classes=classes,
            scores=scores,
            threshold=ctl.threshold,
            model_version=model.version,
        )

    # -- learning ------------------------------------------------------------------------

    def learn(self, X: np.ndarray, y: Sequence[Label], ids: Sequence[str] | None = None) -> np.ndarray:
        """Test-then-train on labelled rows.

        Parameters
        ----------
        X
            ``(B, d)`` features of labelled items.
        y
            Their labels.
        ids
            Their item ids (no longer in flight once learned).

        Returns
        -------
        numpy.ndarray
            bool ``(B,)``: whether the model predicted each row correctly before learning it
            (the service turns this into prequential accuracy).
        """
        X = self._check(X)
        if len(y) != X.shape[0]:
            raise ValueError(f"got {X.shape[0]} rows but {len(y)} labels; pass one label per row")
        weights = self.importance_weights(ids) if ids is not None else None
        if ids is not None:
            self.forget(ids)
        correct = np.zeros(X.shape[0], dtype=bool)
        if X.shape[0] == 0:
            return correct
        classes = list(self._model.classes)
        if classes:
            proba = self._model.predict_proba(X)
            predicted = [classes[j] for j in np.asarray(proba).argmax(axis=1).tolist()]
            correct[:] = [p == label for p, label in zip(predicted, y, strict=True)]
            if self._drift is not None and self._drift.update(correct):
                self._boost.trigger()
        if weights is not None and getattr(self._model, "weighs_labels", False):
            self._model.learn(X, y, weights=weights)  # type: ignore[call-arg]
        else:
            self._model.learn(X, y)
        if self._warmup_per_class:
            new = {label for label in y if label not in self._label_counts}
            self._controller.add_warmup(self._warmup_per_class * len(new))
        self._label_counts.update(y)
        return correct

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able summary of the sampler's state (for metrics, logs and checkpoints)."""
        ctl = self._controller
        return {
            "seen": ctl.seen,
            "asked": ctl.asked,
            "budget": ctl.budget,
            "spend_ratio": ctl.spend_ratio,
            "deficit": ctl.deficit,
            "threshold": ctl.threshold,
            "promise": ctl.promise,
            "policy": self._policy_text,
            "strategy": self._policy_text,
            "model_version": int(self._model.version),
            "n_classes": len(self._model.classes),
            "in_flight": len(self._in_flight),
            "not_reasked": self._blocked,
            "forfeited": round(ctl.forfeited, 6),
            "drifts": 0 if self._drift is None else self._drift.drifts,
            "labels_per_second": None if self._bucket is None else self._bucket.rate,
            "asked_by_reason": {
                reason: self._by_reason[reason] for reason in REASONS if reason != SKIP
            },
        }

    def _check(self, X: np.ndarray) -> np.ndarray:
        return as_batch(X, self._model.n_features)

