"""``Portfolio``: online learners raced on the same labels; the best one, by an unbiased
estimate, predicts.

Every member learns every joined label (labels are 1-10% of items, so K members cost little to
train). Before it learns a label, each member predicts it (test-then-train), and the
portfolio keeps, per member, an **importance-weighted** count of those predictions that were
right. The labels are not a random sample of the stream: uncertainty sampling picks the items
the leader was least sure of, where a member that is worse on the stream as a whole may look
better. The exploration share (uniformly random asks) is the unbiased part: an item asked for
exploration had probability ``explore_rate`` of being picked, one asked by the gate about 1,
so weighting each label by ``1 / its inclusion probability`` (Horvitz-Thompson) estimates each
member's accuracy over the *stream* without that bias (Beygelzimer, Dasgupta & Langford 2009,
"Importance weighted active learning"). The sampler passes those weights
(:meth:`Portfolio.learn` ``weights``); without them every label weighs 1.

The **leader** predicts (``vote="leader"``). It changes only when a challenger's weighted lead
over it is larger than ``switch_sigmas`` standard errors of the paired difference (labels on
which both were right or both wrong add nothing), so the estimate's noise at small budgets
does not make the leader flap. The first member (the default model) leads until evidence
says otherwise. ``vote="hedge"`` predicts with the exponentially weighted mixture of all
members instead (weights ``exp(-eta * weighted mistakes / weighted labels * n)``).

The members' probabilities are also a committee (:meth:`committee_proba`): the ``disagreement``
and ``kl`` policy terms work on a portfolio without asking for an ensemble.

Examples
--------
>>> import numpy as np
>>> from streamer.models import build_model
>>> p = Portfolio({"lr": build_model("StandardScaler | LogisticRegression"),
...                "nb": build_model("GaussianNB")})
>>> p.learn(np.array([[0.0, 1.0], [1.0, 0.0]]), [0, 1])
>>> p.classes, p.version, p.leader
([0, 1], 1, 'lr')
>>> p.committee_proba(np.zeros((3, 2))).shape
(2, 3, 2)
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from streamer.core.checks import as_batch
from streamer.core.model import Label, Model, with_class
from streamer.signed import seal, unseal

__all__ = ["VOTES", "Portfolio", "check_vote"]

_MAGIC = b"streamer.portfolio.v1\n"
VOTES = ("leader", "hedge")


def check_vote(vote: Any) -> None:
    if vote not in VOTES:
        raise ValueError(f"vote must be one of {', '.join(VOTES)}, got {vote!r}")


class Portfolio:
    """Members raced on the labels behind the :class:`~streamer.core.model.Model` protocol.

    Parameters
    ----------
    members
        Name -> model, in order of preference: the first leads until another is shown better.
    vote
        ``"leader"``: the leader's probabilities; ``"hedge"``: the weighted mixture.
    switch_sigmas
        A challenger takes the lead when its weighted lead is this many standard errors.
    eta
        Hedge's learning rate (per label-equivalent of weighted mistakes).
    spec
        The spec string the portfolio was built from (display and checkpoints).
    """

    def __init__(self, members: dict[str, Model], *, vote: str = "leader", switch_sigmas: float = 2.0,
                 eta: float = 0.5, spec: str = "auto") -> None:
        if not members:
            raise ValueError("a portfolio needs at least one member")
        check_vote(vote)
        self.members: dict[str, Model] = dict(members)
        self.vote = vote
        self.switch_sigmas = float(switch_sigmas)
        self.eta = float(eta)
        self.spec = spec
        self.weighs_labels = True  # learn() takes importance weights (the Sampler passes them)
        self.classes: list[Label] = []
        self.version = 0
        self.n_features: int | None = None
        self.leader = next(iter(self.members))
        self.switches = 0
        names = list(self.members)
        K = len(names)
        self._names = names
        self._weight = 0.0  # sum of importance weights of the labels scored
        self._labels = 0
        self._right = np.zeros(K)  # weighted count of labels each member predicted right
        # paired differences against every other member: sum of w * (c_a - c_b) and of its square
        self._diff = np.zeros((K, K))
        self._diff_sq = np.zeros((K, K))

    def __repr__(self) -> str:
        return f"Portfolio({self.spec!r}, leader={self.leader!r}, members={self._names})"

    # -- the Model protocol ------------------------------------------------------------------

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The leader's probabilities (``vote="leader"``) or the Hedge mixture, ``(B, C)``."""
        X = self._check(X)
        if not self.classes:
            return np.zeros((X.shape[0], 0))
        if self.vote == "leader":
            return self._aligned(self.leader, X)
        weights = self.hedge_weights()
        return np.einsum("k,kbc->bc", weights, self.committee_proba(X))

    def committee_proba(self, X: np.ndarray) -> np.ndarray:
        """``(K, B, C)``: every member's probabilities, columns in :attr:`classes` order."""
        X = self._check(X)
        if not self.classes:
            return np.zeros((len(self._names), X.shape[0], 0))
        return np.stack([self._aligned(name, X) for name in self._names])

    def observe(self, X: np.ndarray) -> None:
        X = self._check(X)
        for model in self.members.values():
            model.observe(X)

    def learn(self, X: np.ndarray, y: Sequence[Label], weights: Sequence[float] | None = None) -> None:
        """Score every member on each row before it learns it (test-then-train), row by row.

        ``weights``: each row's importance weight, ``1 / P(the row was asked)``; 1 if omitted.
        Row by row, so that a batch scores and learns exactly as its rows one at a time would
        (the race does not depend on how labels were batched). Scoring a whole batch first was
        tried: it saved little (the torch member's learning steps dominate, ~2 ms a label on
        a CPU) and broke that equality.
        """
        X = self._check(X)
        if len(y) != X.shape[0]:
            raise ValueError(f"got {X.shape[0]} rows but {len(y)} labels; pass one label per row")
        if X.shape[0] == 0:
            return
        w = np.ones(X.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (X.shape[0],) or not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError(f"weights must be {X.shape[0]} positive finite numbers, got {weights!r}")
        for i, label in enumerate(y):
            row = X[i:i + 1]
            if self.classes:
                self._score(row, [label], w[i:i + 1])
            for model in self.members.values():
                model.learn(row, [label])
            self.classes = with_class(self.classes, _key(label))
        self.version += 1

    # -- the race ------------------------------------------------------------------------

    def estimates(self) -> dict[str, float | None]:
        """Each member's estimated accuracy over the stream (None before any label was scored)."""
        if self._weight <= 0:
            return {name: None for name in self._names}
        return {name: round(float(r / self._weight), 4) for name, r in zip(self._names, self._right,
                                                                          strict=True)}

    def hedge_weights(self) -> np.ndarray:
        """Hedge's weights of the members, summing to 1."""
        if self._weight <= 0:
            return np.full(len(self._names), 1.0 / len(self._names))
        mistakes = (self._weight - self._right) / self._weight * self._labels  # label-equivalents
        logits = -self.eta * (mistakes - mistakes.min())
        weights = np.exp(logits)
        return weights / weights.sum()

    def race(self) -> dict[str, Any]:
        """What ``/status`` and label requests show: the leader, the estimates, the labels used."""
        return {"leader": self.leader, "vote": self.vote, "estimates": self.estimates(),
                "labels_scored": self._labels, "switches": self.switches}

    def _score(self, X: np.ndarray, y: list[Label], w: np.ndarray) -> None:
        right = np.stack([self._predicted(name, X) for name in self._names]) == np.array(
            [_key(label) for label in y], dtype=object)[None, :]
        c = right.astype(np.float64)  # (K, B)
        self._right += c @ w
        self._weight += float(w.sum())
        self._labels += len(y)
        delta = c[:, None, :] - c[None, :, :]  # (K, K, B)
        self._diff += delta @ w
        self._diff_sq += (delta**2) @ (w**2)
        self._maybe_switch()

    def _maybe_switch(self) -> None:
        lead = self._names.index(self.leader)
        best, best_z = lead, 0.0
        for k in range(len(self._names)):
            if k == lead or self._diff_sq[k, lead] <= 0:
                continue
            z = self._diff[k, lead] / math.sqrt(self._diff_sq[k, lead])
            if z > self.switch_sigmas and z > best_z:
                best, best_z = k, z
        if best != lead:
            self.leader = self._names[best]
            self.switches += 1

    def _predicted(self, name: str, X: np.ndarray) -> np.ndarray:
        model = self.members[name]
        if not model.classes:
            return np.array([None] * X.shape[0], dtype=object)
        top = np.asarray(model.predict_proba(X)).argmax(axis=1)
        return np.array([_key(model.classes[j]) for j in top.tolist()], dtype=object)

    def _aligned(self, name: str, X: np.ndarray) -> np.ndarray:
        """A member's probabilities with columns in the portfolio's class order."""
        model = self.members[name]
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
        if list(model.classes) == self.classes:
            return proba
        out = np.zeros((X.shape[0], len(self.classes)))
        index = {_key(c): j for j, c in enumerate(self.classes)}
        for j, c in enumerate(model.classes):
            out[:, index[_key(c)]] = proba[:, j]
        total = out.sum(axis=1, keepdims=True)
        return np.divide(out, total, out=np.full_like(out, 1.0 / len(self.classes)), where=total > 0)

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = as_batch(X, self.n_features)
        if self.n_features is None:
            self.n_features = X.shape[1]
        return X

    # -- state -----------------------------------------------------------------------------

    def to_bytes(self, key: bytes, *, weights_only: bool = False) -> bytes:
        """The race and every member's own signed state, under one HMAC-SHA256 signature;
        ``weights_only`` (the publication form) is passed on to the members."""
        blobs = [self.members[name].to_bytes(key, weights_only=weights_only) for name in self._names]
        header = {
            "spec": self.spec, "vote": self.vote, "switch_sigmas": self.switch_sigmas, "eta": self.eta,
            "names": self._names, "types": [_type_name(self.members[n]) for n in self._names],
            "sizes": [len(b) for b in blobs], "classes": self.classes, "version": self.version,
            "n_features": self.n_features, "leader": self.leader, "switches": self.switches,
            "weight": self._weight, "labels": self._labels, "right": self._right.tolist(),
            "diff": self._diff.tolist(), "diff_sq": self._diff_sq.tolist(),
        }
        head = json.dumps(header).encode()
        payload = struct.pack(">I", len(head)) + head + b"".join(blobs)
        return seal(_MAGIC, key, payload)

    @classmethod
    def from_bytes(cls, data: bytes, key: bytes) -> Portfolio:
        """Restore :meth:`to_bytes`; ``ValueError`` unless every signature matches ``key``."""
        payload = unseal(_MAGIC, key, data, "portfolio")
        (size,) = struct.unpack(">I", payload[:4])
        header = json.loads(payload[4:4 + size])
        offset, members = 4 + size, {}
        for name, type_name, length in zip(header["names"], header["types"], header["sizes"],
                                           strict=True):
            members[name] = _model_class(type_name).from_bytes(payload[offset:offset + length], key)
            offset += length
        portfolio = cls(members, vote=header["vote"], switch_sigmas=header["switch_sigmas"],
                        eta=header["eta"], spec=header["spec"])
        portfolio.classes = list(header["classes"])
        portfolio.version = int(header["version"])
        portfolio.n_features = header["n_features"]
        portfolio.leader = header["leader"]
        portfolio.switches = int(header["switches"])
        portfolio._weight = float(header["weight"])
        portfolio._labels = int(header["labels"])
        portfolio._right = np.asarray(header["right"], dtype=np.float64)
        portfolio._diff = np.asarray(header["diff"], dtype=np.float64)
        portfolio._diff_sq = np.asarray(header["diff_sq"], dtype=np.float64)
        return portfolio


def _key(label: Any) -> Any:
    """Labels compare as plain Python values (numpy scalars included)."""
    return label.item() if isinstance(label, np.generic) else label


def _type_name(model: Model) -> str:
    return type(model).__name__


def _model_class(name: str) -> Any:
    if name == "RiverModel":
        from streamer.models.river import RiverModel

        return RiverModel
    if name == "TorchHead":
        from streamer.models.torch_head import TorchHead

        return TorchHead
    raise ValueError(f"a portfolio member of unknown type {name!r}")

