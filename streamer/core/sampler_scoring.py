"""How :class:`~streamer.core.sampler.Sampler` scores a batch: the model's probabilities, the
signals its policy names, class balance and randomised selection.

A model that scores on its own device (``score_batch(X, terms) -> {"proba", term: scores}``
and ``remember(X)``, e.g. :class:`~streamer.models.torch_head.TorchHead`) gives the
probabilities and every policy term it lists in ``score_terms`` from one pass; the sampler
uses those arrays instead of computing the same terms in numpy, and hands the rows it asks for
to ``remember`` (the model's novelty bank) instead of its own memory. Everything else --
ranking, class balance, budget, reasons -- is the same code for every model.

:class:`SamplerScoring` is a part of the Sampler, not a class of its own: the Sampler inherits
it, and the state it reads (the model, the policy, the novelty memory, the running moments and
ranks) lives on the Sampler, so a checkpointed sampler pickles as one object.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from streamer.core.model import Label, Model
from streamer.core.moments import RunningMoments
from streamer.core.policy import COMMITTEE_TERMS, Node, RunningRank
from streamer.core.scores import SCORES

__all__ = ["SamplerScoring", "top_predictions"]

_MAX_CLASS_BOOST = 10.0


def top_predictions(proba: np.ndarray, classes: list[Label]) -> tuple[np.ndarray, np.ndarray, list[Label | None]]:
    """``(top, confidence, prediction)`` of each row: the index of its most likely class, that
    class's probability, and the class (``None`` while the model knows none)."""
    B = proba.shape[0]
    if not classes:
        return np.zeros(B, dtype=np.int64), np.zeros(B), [None] * B
    top = proba.argmax(axis=1)
    return top, proba[np.arange(B), top], [classes[j] for j in top.tolist()]


class SamplerScoring:
    """The Sampler's scoring methods (mixed into :class:`~streamer.core.sampler.Sampler`)."""

    # set by Sampler.__init__
    _model: Model
    _policy: Node | None
    _policy_text: str
    _terms: list[str]
    _egl: Any
    _rank_window: int
    _memory: Any
    _memory_args: tuple[int, str, int]
    _standardize: bool
    _moments: RunningMoments
    _rank: RunningRank
    _rng: np.random.Generator
    _power: float
    _class_balance: float
    _randomize: bool
    _label_counts: Counter[Label]

    def _predict(self, X: np.ndarray, classes: list[Label]) -> tuple[np.ndarray, dict[str, np.ndarray], frozenset[str]]:
        """``(proba, device_scores, device_terms)``: the model's ``(B, C)`` probabilities, and the
        policy terms a model that scores on its own device computed in the same pass."""
        model = self._model
        device_terms = self._device_terms()
        device_scores: dict[str, np.ndarray] = {}
        if device_terms is not None:
            wanted = self._terms if len(classes) >= 2 else []
            device_scores = dict(model.score_batch(X, terms=wanted))  # type: ignore[attr-defined]
            proba = np.asarray(device_scores.pop("proba"), dtype=np.float64)
        else:
            proba = np.asarray(model.predict_proba(X), dtype=np.float64)
            device_terms = frozenset()
        B, C = X.shape[0], len(classes)
        if proba.shape != (B, C):
            raise ValueError(
                f"model.predict_proba returned shape {proba.shape}, expected {(B, C)} "
                "(one column per class in model.classes); the model breaks the Model protocol"
            )
        return proba, device_scores, device_terms

    def _policy_score(
        self, X: np.ndarray, Z: np.ndarray, proba: np.ndarray, memory: Any,
        device_scores: dict[str, np.ndarray], top: np.ndarray, classes: list[Label],
    ) -> tuple[np.ndarray, list[str | None], dict[str, np.ndarray]]:
        """``(score, term_reasons, scores)``: the policy's score per item (after class balance and
        randomisation), the term behind each, and the signals to report."""
        assert self._policy is not None
        signals = self._signals(X, Z, proba, memory, device_scores)
        scores = dict(signals)
        score, term_reasons = self._policy.evaluate(signals)
        if len(signals) > 1 or len(self._terms) > 1:
            scores["policy"] = score
        if self._class_balance > 0 and self._label_counts:
            score = self._balance(score, top, classes)
        if self._randomize:
            score = self._randomised(score)
        return score, term_reasons, scores

    def _signals(
        self, X: np.ndarray, Z: np.ndarray, proba: np.ndarray, memory: Any,
        device_scores: dict[str, np.ndarray],
    ) -> dict[str, np.ndarray]:
        signals: dict[str, np.ndarray] = {}
        committee = None
        for name in self._terms:
            if name in device_scores:
                signals[name] = np.asarray(device_scores[name], dtype=np.float64)
            elif name in SCORES:
                signals[name] = SCORES[name](proba)
            elif name in COMMITTEE_TERMS:
                if committee is None:
                    committee = self._committee(X)
                from streamer.gates.committee import mean_kl, vote_entropy

                signals[name] = vote_entropy(committee) if name == "disagreement" else mean_kl(committee)
            elif name == "novelty":
                signals[name] = memory.score(Z)
            elif name == "egl":
                if self._egl is None:
                    from streamer.gates.model_change import ExpectedGradientLength

                    self._egl = ExpectedGradientLength(self._rank_window)
                signals[name] = self._egl(X, proba)
            elif name == "density":
                signals[name] = memory.density_weight(Z)
        return signals

    def _device_terms(self) -> frozenset[str] | None:
        """The policy terms the model scores itself (``score_batch``), or ``None`` if it does not."""
        if not callable(getattr(self._model, "score_batch", None)):
            return None
        return frozenset(getattr(self._model, "score_terms", ()))

    def _committee(self, X: np.ndarray) -> np.ndarray:
        members = self._model.committee_proba(X)  # type: ignore[attr-defined]
        if members is None:
            raise ValueError(
                f"policy {self._policy_text!r} needs a committee, but the model "
                f"{getattr(self._model, 'spec', type(self._model).__name__)!r} is not an "
                "ensemble; use e.g. streamer.models.COMMITTEE_MODEL"
            )
        return np.asarray(members, dtype=np.float64)

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        """Standardise rows with the running mean and variance of every item seen (Euclidean
        memories only: one feature in the hundreds must not drown the others), then update them.
        Cosine memories (embeddings) see the rows as they are."""
        if self._memory_args[1] != "euclidean" or not self._standardize:
            return X
        if "_moments" not in self.__dict__:  # a sampler checkpointed before RunningMoments
            self._moments = RunningMoments(self.__dict__.pop("_feature_count", 0),
                                           self.__dict__.pop("_feature_mean", 0.0),
                                           self.__dict__.pop("_feature_m2", 0.0))
        return self._moments.standardise(X)

    def _memory_for(self, X: np.ndarray) -> Any:
        if self._memory is None:
            from streamer.gates.novelty import NoveltyMemory

            capacity, metric, reservoir = self._memory_args
            self._memory = NoveltyMemory(capacity, X.shape[1], metric, reservoir=reservoir)
        return self._memory

    def _randomised(self, score: np.ndarray) -> np.ndarray:
        """A score whose top share ``b`` is a random draw that favours high scores.

        With ``r`` the running rank of the score (uniform on [0, 1]) and ``u`` a uniform draw,
        ``r >= u ** (1 / k)`` happens with probability ``r ** k``; ``k = 1 / b - 1`` makes its
        mean ``b``. The returned score ``(1 + r - u ** (1 / k)) / 2`` clears 0.5 exactly then,
        so the controller's threshold settles near 0.5 and the cap, catch-up and deficit
        correction work as for any score. Asking with a probability that rises steeply with
        the uncertainty, instead of always above a threshold, spreads the labels over the
        uncertain region rather than piling them on the boundary (river's EntropySampler and
        Žliobaitė's randomised variable uncertainty do the same; on our benchmark it was worth
        several accuracy points).
        """
        r = self._rank(score)
        u = self._rng.random(r.shape[0])
        return 0.5 * (1.0 + r - u ** (1.0 / self._power)) if self._power > 0 else r

    def _balance(self, score: np.ndarray, top: np.ndarray, classes: list[Label]) -> np.ndarray:
        """Raise the scores of items predicted as classes rare among the labels so far."""
        total = sum(self._label_counts.values())
        share = np.array([self._label_counts.get(c, 0) / total for c in classes])
        weight = np.minimum(_MAX_CLASS_BOOST, 1.0 / (len(classes) * np.maximum(share, 1e-9)))
        weight = np.maximum(1.0, weight) ** self._class_balance
        w = weight[top]
        return 1.0 - (1.0 - np.clip(score, 0.0, 1.0)) / w
