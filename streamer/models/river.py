"""``RiverModel``: the :class:`~streamer.core.model.Model` protocol around any river classifier.

How a river estimator is driven here (and why):

- A pipeline is split into its transformer steps and its final classifier, and the wrapper walks
  them itself. Unsupervised steps (scalers...) learn in :meth:`RiverModel.observe` from every
  item; supervised steps and the classifier learn in :meth:`RiverModel.learn` from labelled
  items only. Calling river's ``Pipeline.learn_one(x, y)`` instead would update the scalers a
  second time for every labelled item, and ``compose.learn_during_predict`` flips a class-wide
  flag that every other pipeline in the process would see.
- Binary-only classifiers (``LogisticRegression``, ``Perceptron``...) are wrapped in
  ``multiclass.OneVsRestClassifier`` from the start. Wrapping only when a third class appears
  would throw away everything learned so far, and river's binary models read any truthy label
  as the positive class, so even a two-class stream labelled ``{1, 2}`` would be learned wrong.
  An ensemble of binary-only members (``BaggingClassifier(model=LogisticRegression)``) gets its
  *member* wrapped instead, so that it stays an ensemble whose members can be asked apart.
- :meth:`RiverModel.committee_proba` gives the ``(K, B, C)`` probabilities of the members of an
  ensemble (bagging, ARF, SRP, boosting...), for committee disagreement scores. The transformer
  steps run once per row, exactly as in ``predict_proba``; the members then score that row.
- ``classes`` are the labels seen so far, sorted when they are comparable (else in order of
  appearance); ``predict_proba`` columns follow that order. Classes the river model leaves out
  of its dict get probability 0; a model that returns nothing (e.g. a tree before its first
  split) gets a uniform row.
- State round-trips through pickle, but only behind an HMAC-SHA256 of the bytes: the payload is
  never unpickled unless the signature made with the caller's key matches.

Examples
--------
>>> import numpy as np
>>> from river import naive_bayes
>>> model = RiverModel(naive_bayes.GaussianNB())
>>> model.predict_proba(np.zeros((2, 3))).shape
(2, 0)
>>> model.learn(np.array([[0.0, 0, 0], [1.0, 1, 1]]), [0, 1])
>>> model.classes, model.version
([0, 1], 1)
>>> model.predict_proba(np.array([[0.0, 0, 0]])).argmax(axis=1).tolist()
[0]
>>> model.committee_proba(np.zeros((2, 3))) is None  # one model, not a committee
True
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from river import base, compose, multiclass

from streamer.core.checks import as_batch
from streamer.core.model import Label, with_class
from streamer.models.fast import FastPath, compile_fast
from streamer.signed import seal, unseal

__all__ = ["RiverModel"]

_MAGIC = b"streamer.river.v1\n"


class RiverModel:
    """A river classifier (or pipeline ending in one) behind the batch-native Model protocol.

    Parameters
    ----------
    estimator
        A river classifier or a ``compose.Pipeline`` whose last step is a classifier.
    feature_names
        Names of the ``X`` columns as river sees them; ``x0..x{d-1}`` when omitted.
    spec
        The spec string the model was built from (kept for display and checkpoints).
    fast
        Score and observe whole batches in numpy when the pipeline is one
        :mod:`streamer.models.fast` supports (the same numbers as river's per-item path);
        ``False`` always walks river's ``*_one`` methods.
    """

    def __init__(
        self,
        estimator: base.Estimator,
        *,
        feature_names: Sequence[str] | None = None,
        spec: str | None = None,
        fast: bool = True,
    ) -> None:
        steps = list(estimator.steps.values()) if isinstance(estimator, compose.Pipeline) else [estimator]
        final = steps[-1]
        if not isinstance(final, base.Classifier):
            raise ValueError(
                f"the last step of the model must be a river classifier, got "
                f"{type(final).__name__}; end the pipeline with e.g. LogisticRegression"
            )
        for step in steps[:-1]:
            if not isinstance(step, base.Transformer):
                raise ValueError(
                    f"every step before the classifier must be a river transformer, got "
                    f"{type(step).__name__}"
                )
        if not final._multiclass:
            final = _one_vs_rest(final)
        self._transformers: list[base.Transformer] = steps[:-1]
        self._classifier: base.Classifier = final
        self.spec = spec or _describe(steps)
        self.feature_names: list[str] | None = list(feature_names) if feature_names else None
        self.n_features: int | None = len(self.feature_names) if self.feature_names else None
        self.classes: list[Label] = []
        self.version = 0
        self.fast = fast
        self._fast: FastPath | None | bool = False  # False: not compiled yet

    def __repr__(self) -> str:
        return f"RiverModel({self.spec!r}, classes={self.classes}, version={self.version})"

    # -- the Model protocol -------------------------------------------------------------------

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Return ``(B, len(classes))`` probabilities; ``(B, 0)`` before any label was seen."""
        fast = self._fast_path(X)
        if fast is not None:
            X = self._array(X)
            if not self.classes:
                return np.zeros((X.shape[0], 0), dtype=np.float64)
            return fast.predict_proba(X, self.classes)
        rows = self._rows(X)
        C = len(self.classes)
        out = np.zeros((len(rows), C), dtype=np.float64)
        if C == 0:
            return out
        for i, x in enumerate(self._transformed(rows)):
            out[i] = _aligned(self._classifier.predict_proba_one(x), self.classes)
        return out

    def committee_proba(self, X: np.ndarray) -> np.ndarray | None:
        """Return the ``(K, B, len(classes))`` probabilities of the ``K`` ensemble members.

        Columns follow :attr:`classes` with the rules of :meth:`predict_proba`: a class a member
        leaves out gets 0, a member that returns nothing gets a uniform row. The model does not
        change (nothing learns, ``version`` stays).

        Parameters
        ----------
        X
            ``(B, d)`` features.

        Returns
        -------
        numpy.ndarray or None
            ``(K, B, C)`` probabilities (``(K, B, 0)`` before any label was seen), or ``None``
            when the classifier is not an ensemble and there is no committee to ask.

        Examples
        --------
        >>> import numpy as np
        >>> from river import ensemble, naive_bayes
        >>> model = RiverModel(ensemble.BaggingClassifier(naive_bayes.GaussianNB(), n_models=3))
        >>> model.committee_proba(np.zeros((2, 1))).shape
        (3, 2, 0)
        >>> model.learn(np.array([[0.0], [1.0], [0.1], [0.9]]), [0, 1, 0, 1])
        >>> model.committee_proba(np.zeros((2, 1))).shape
        (3, 2, 2)
        """
        ensemble = self._classifier
        if not isinstance(ensemble, base.Ensemble):
            return None
        fast = self._fast_path(X)
        if fast is not None and self.classes:
            return fast.committee_proba(self._array(X), self.classes)
        members = list(ensemble)
        rows = self._rows(X)
        C = len(self.classes)
        # ARF and SRP create their members on the first item learned: count the ones to come.
        K = len(members) or int(getattr(ensemble, "n_models", 0))
        out = np.zeros((K, len(rows), C), dtype=np.float64)
        if C == 0:
            return out
        if not members:
            out[:] = 1.0 / C
            return out
        for i, x in enumerate(self._transformed(rows)):
            for k, member in enumerate(members):
                out[k, i] = _aligned(member.predict_proba_one(x), self.classes)
        return out

    def observe(self, X: np.ndarray) -> None:
        """Let the unsupervised steps (scalers...) learn from every item, labelled or not."""
        fast = self._fast_path(X)
        if fast is not None:
            fast.observe(self._array(X))
            return
        if not any(not step._supervised for step in self._transformers):
            self._array(X)  # still validate and fix the width (no per-row dicts: nothing learns)
            return
        for x in self._rows(X):
            for step in self._transformers:
                if not step._supervised:
                    step.learn_one(x)
                x = step.transform_one(x)

    def learn(self, X: np.ndarray, y: Sequence[Label]) -> None:
        """Learn from labelled rows: supervised transformers and the classifier."""
        rows = self._rows(X)
        labels = [_plain(label) for label in y]
        if len(labels) != len(rows):
            raise ValueError(f"got {len(rows)} rows but {len(labels)} labels; pass one label per row")
        if not rows:
            return
        for x, label in zip(rows, labels, strict=True):
            self.classes = with_class(self.classes, label)
            for step in self._transformers:
                x_before = x
                x = step.transform_one(x)
                if step._supervised:
                    step.learn_one(x_before, label)
            self._classifier.learn_one(x, label)
        self.version += 1

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fast"] = False  # closures over river objects: compiled again after loading
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("fast", True)  # checkpoints written before the fast paths
        state["_fast"] = False
        self.__dict__.update(state)

    def to_bytes(self, key: bytes, *, weights_only: bool = False) -> bytes:
        """Serialize the full state, signed with HMAC-SHA256 under ``key``.

        ``weights_only`` (the publication form) changes nothing: a river model keeps no
        process-local state.
        """
        payload = pickle.dumps(self.__getstate__(), protocol=pickle.HIGHEST_PROTOCOL)
        return seal(_MAGIC, key, payload)

    @classmethod
    def from_bytes(cls, data: bytes, key: bytes) -> RiverModel:
        """Restore a model written by :meth:`to_bytes` with the same ``key``.

        Raises
        ------
        ValueError
            If the bytes are not a streamer river checkpoint or their signature does not match
            (tampered, truncated, or signed with another key). Nothing is unpickled then.
        """
        payload = unseal(_MAGIC, key, data, "river model")
        model = cls.__new__(cls)
        model.__setstate__(pickle.loads(payload))  # noqa: S301 - signature verified above
        return model

    # -- helpers ------------------------------------------------------------------------------

    @property
    def fast_path(self) -> FastPath | None:
        """The numpy fast path in use, or ``None`` (river's per-item path; known once the
        feature width is)."""
        return self._fast if isinstance(self._fast, FastPath) else None

    def _fast_path(self, X: np.ndarray) -> FastPath | None:
        if self._fast is False:
            if not self.fast:
                self._fast = None
            elif self.feature_names is None:
                self._array(X)  # fixes the width and the names
            if self._fast is False:
                self._fast = compile_fast(self._transformers, self._classifier, self.feature_names or [])
        return self._fast if isinstance(self._fast, FastPath) else None

    def _array(self, X: np.ndarray) -> np.ndarray:
        arr = as_batch(X, self.n_features)
        d = arr.shape[1]
        if self.n_features is None:
            self.n_features = d
        if self.feature_names is None:
            self.feature_names = [f"x{j}" for j in range(d)]
        return arr

    def _rows(self, X: np.ndarray) -> list[dict[str, float]]:
        arr = self._array(X)
        names = self.feature_names
        assert names is not None
        return [dict(zip(names, row, strict=True)) for row in arr.tolist()]

    def _transformed(self, rows: list[dict[str, float]]) -> Iterator[dict[str, Any]]:
        """The rows as the classifier sees them: through every transformer step, nothing learned."""
        for x in rows:
            for step in self._transformers:
                x = step.transform_one(x)
            yield x


def _one_vs_rest(classifier: base.Classifier) -> base.Classifier:
    """Make a binary-only classifier multi-class; an ensemble gets its member wrapped instead."""
    member = getattr(classifier, "model", None)
    if isinstance(classifier, base.Ensemble) and isinstance(member, base.Classifier):
        committee = classifier.clone({"model": multiclass.OneVsRestClassifier(member)})
        if committee._multiclass:
            return committee
    return multiclass.OneVsRestClassifier(classifier)


def _aligned(proba: dict[Label, float], classes: list[Label]) -> list[float]:
    """One probability per class in ``classes`` order; uniform when ``proba`` has no mass."""
    # dict.get also finds bool keys for 0/1 labels (False == 0, same hash)
    row = [float(proba.get(c, 0.0)) for c in classes]
    total = sum(row)
    C = len(classes)
    return [p / total for p in row] if total > 0 else [1.0 / C] * C


def _plain(label: Any) -> Label:
    """Turn numpy scalars into plain Python values so labels hash, compare and pickle simply."""
    return label.item() if isinstance(label, np.generic) else label


def _describe(steps: list[base.Estimator]) -> str:
    return " | ".join(type(step).__name__ for step in steps)
