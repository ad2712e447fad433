"""Novelty: how far an item is from everything already labelled or requested.

:class:`NoveltyMemory` keeps the feature vectors of the last ``capacity`` labelled/requested
items in a preallocated ring buffer (first in, first out) and scores a batch with one matrix
product against it. Asking for novel items spreads the labels over the feature space
(diversity) instead of spending them on near-duplicates of what was already asked.

A novel item may also be an outlier that teaches the model nothing. :meth:`NoveltyMemory.density_weight`
weighs a score by how *typical* an item is among recent unlabelled items, so uncertain and
typical items beat uncertain outliers (the information-density idea of Settles & Craven 2008).

Examples
--------
>>> import numpy as np
>>> memory = NoveltyMemory(capacity=100, dim=2)
>>> memory.score(np.array([[1.0, 0.0]])).tolist()  # nothing asked yet: everything is novel
[1.0]
>>> memory.add(np.array([[1.0, 0.0]]))
>>> memory.score(np.array([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])).round(2).tolist()
[0.0, 0.5, 1.0]
"""

from __future__ import annotations

import numpy as np

__all__ = ["METRICS", "NoveltyMemory"]

METRICS = ("cosine", "euclidean")

# Rows of (query x memory) similarities computed at once: bounds the temporary to ~32 MB.
_CHUNK_CELLS = 4_000_000


class _VectorRing:
    """A preallocated first-in, first-out buffer of at most ``capacity`` vectors."""

    def __init__(self, capacity: int, dim: int) -> None:
        self.data = np.zeros((capacity, dim), dtype=np.float64)
        self.size = 0
        self._next = 0  # row the next vector is written to

    def add(self, X: np.ndarray) -> None:
        capacity = self.data.shape[0]
        if X.shape[0] > capacity:  # only the newest `capacity` rows survive anyway
            X = X[-capacity:]
        n = X.shape[0]
        rows = (self._next + np.arange(n)) % capacity
        self.data[rows] = X
        self._next = (self._next + n) % capacity
        self.size = min(self.size + n, capacity)

    def stored(self) -> np.ndarray:
        """The rows in use (any order)."""
        return self.data[: self.size]

    def oldest_first(self) -> np.ndarray:
        """A copy of the stored vectors in insertion order, oldest first."""
        if self.size < self.data.shape[0]:
            return self.data[: self.size].copy()
        return np.roll(self.data, -self._next, axis=0)


class NoveltyMemory:
    """Distance of each item to the nearest of the last ``capacity`` labelled/requested vectors.

    Parameters
    ----------
    capacity
        Vectors kept; the oldest is dropped first when full.
    dim
        Length of every vector.
    metric
        ``"cosine"``: score ``(1 - max cosine similarity) / 2``, so 0 for the same direction,
        0.5 for orthogonal, 1 for the opposite direction. A zero vector has no direction and
        counts as orthogonal to everything. ``"euclidean"``: score ``d / (d + s)`` with ``d`` the
        distance to the nearest stored vector and ``s`` the memory's *spread*, the root mean
        squared distance between two stored vectors (``sqrt(2 * total variance)``), recomputed
        at every :meth:`add`. An item as far from its nearest neighbour as two typical stored
        items are from each other scores 0.5, whatever the units of the features. While the
        memory holds one distinct point (``s == 0``) any other point scores 1.
    reservoir
        Recent unlabelled vectors kept for :meth:`density_weight` (``0`` disables it).
    k
        Neighbours averaged by :meth:`density_weight`.

    Examples
    --------
    >>> import numpy as np
    >>> memory = NoveltyMemory(capacity=2, dim=1, metric="euclidean")
    >>> memory.add(np.array([[0.0], [2.0]]))  # variance 1, spread s = sqrt(2)
    >>> memory.score(np.array([[2.0], [3.414214]])).round(3).tolist()  # d = 0 and d = s
    [0.0, 0.5]
    """

    def __init__(
        self,
        capacity: int,
        dim: int,
        metric: str = "cosine",
        *,
        reservoir: int = 0,
        k: int = 10,
    ) -> None:
        if not (isinstance(capacity, int) and capacity >= 1):
            raise ValueError(f"capacity must be a positive number of vectors, got {capacity!r}")
        if not (isinstance(dim, int) and dim >= 1):
            raise ValueError(f"dim must be a positive vector length, got {dim!r}")
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        if not (isinstance(reservoir, int) and reservoir >= 0):
            raise ValueError(f"reservoir must be a number of vectors >= 0, got {reservoir!r}")
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"k must be a positive number of neighbours, got {k!r}")
        self._dim = dim
        self._metric = metric
        self._k = k
        self._memory = _VectorRing(capacity, dim)
        self._recent = _VectorRing(reservoir, dim) if reservoir else None
        self._spread = 0.0
        self._recent_spread = 0.0

    @property
    def capacity(self) -> int:
        """The most vectors the memory keeps."""
        return int(self._memory.data.shape[0])

    @property
    def metric(self) -> str:
        return self._metric

    def __len__(self) -> int:
        return self._memory.size

    def vectors(self) -> np.ndarray:
        """A copy of the stored vectors, oldest first (unit-normalised for ``cosine``)."""
        return self._memory.oldest_first()

    def add(self, X: np.ndarray) -> None:
        """Remember the vectors of items just labelled or requested.

        Parameters
        ----------
        X
            ``(B, dim)`` vectors; once full, each new row evicts the oldest one.
        """
        self._memory.add(self._prepare(X))
        self._spread = _spread(self._memory.stored())

    def observe(self, X: np.ndarray) -> None:
        """Remember recent unlabelled vectors for :meth:`density_weight`.

        Parameters
        ----------
        X
            ``(B, dim)`` vectors of items as they stream by, asked or not.
        """
        if self._recent is None:
            raise ValueError("this memory keeps no reservoir; create it with reservoir=N > 0")
        self._recent.add(self._prepare(X))
        self._recent_spread = _spread(self._recent.stored())

    def score(self, X: np.ndarray) -> np.ndarray:
        """Novelty of each row in ``[0, 1]``; 1.0 for every row while the memory is empty.

        Parameters
        ----------
        X
            ``(B, dim)`` vectors.

        Returns
        -------
        numpy.ndarray
            ``(B,)`` distance to the nearest stored vector, scaled as described by ``metric``.
        """
        Q = self._prepare(X)
        stored = self._memory.stored()
        if stored.shape[0] == 0:
            return np.ones(Q.shape[0], dtype=np.float64)
        if self._metric == "cosine":
            best = _top_similarities(Q, stored, 1)[:, 0]
            return np.clip((1.0 - best) / 2.0, 0.0, 1.0)
        d = self._nearest_distances(Q, stored, 1)[:, 0]
        return _distance_to_unit(d, self._spread)

    def density_weight(self, X: np.ndarray) -> np.ndarray:
        """Mean similarity in ``[0, 1]`` of each row to its ``k`` nearest recent unlabelled items.

        Multiply an uncertainty or novelty score by it so that, of two equally uncertain
        items, the one in a dense region (typical) beats the outlier.

        Parameters
        ----------
        X
            ``(B, dim)`` vectors.

        Returns
        -------
        numpy.ndarray
            ``(B,)`` weights; similarity is ``(1 + cos) / 2`` for ``cosine`` and ``s / (d + s)``
            for ``euclidean`` (``s`` the reservoir's spread). 1.0 (neutral) while the
            reservoir is empty.
        """
        if self._recent is None:
            raise ValueError("this memory keeps no reservoir; create it with reservoir=N > 0")
        Q = self._prepare(X)
        recent = self._recent.stored()
        if recent.shape[0] == 0:
            return np.ones(Q.shape[0], dtype=np.float64)
        k = min(self._k, recent.shape[0])
        if self._metric == "cosine":
            sims = (1.0 + _top_similarities(Q, recent, k)) / 2.0
        else:
            d = self._nearest_distances(Q, recent, k)
            sims = 1.0 - _distance_to_unit(d, self._recent_spread)
        return np.clip(sims.mean(axis=1), 0.0, 1.0)

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        Q = np.asarray(X, dtype=np.float64)
        if Q.ndim != 2 or Q.shape[1] != self._dim:
            hint = "; wrap a single vector as x[None, :]" if Q.ndim == 1 else ""
            raise ValueError(
                f"vectors must be a 2-d (batch, {self._dim}) array, got shape {Q.shape}{hint}"
            )
        if not np.all(np.isfinite(Q)):
            raise ValueError("vectors contain NaN or infinite values; impute or drop those rows")
        if self._metric == "cosine":
            norms = np.linalg.norm(Q, axis=1, keepdims=True)
            Q = np.divide(Q, norms, out=np.zeros_like(Q), where=norms > 0.0)
        return Q

    def _nearest_distances(self, Q: np.ndarray, stored: np.ndarray, k: int) -> np.ndarray:
        """``(B, k)`` Euclidean distances to the ``k`` nearest stored vectors, nearest first."""
        stored_sq = np.einsum("ij,ij->i", stored, stored)
        out = np.empty((Q.shape[0], k), dtype=np.float64)
        for start, stop in _chunks(Q.shape[0], stored.shape[0]):
            q = Q[start:stop]
            # -2 q.m + |m|^2 ranks neighbours like the squared distance; |q|^2 is constant per row
            partial = stored_sq[None, :] - 2.0 * (q @ stored.T)
            idx = _top_k(-partial, k)
            # Recompute the winners' distances exactly: the expansion cancels badly near 0.
            diff = q[:, None, :] - stored[idx]
            out[start:stop] = np.sqrt(np.einsum("bkd,bkd->bk", diff, diff))
        out.sort(axis=1)
        return out


def _chunks(n_rows: int, n_stored: int) -> list[tuple[int, int]]:
    step = max(1, _CHUNK_CELLS // max(n_stored, 1))
    return [(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest values of each row (unordered)."""
    if k >= values.shape[1]:
        return np.broadcast_to(np.arange(values.shape[1]), values.shape).copy()
    return np.argpartition(values, values.shape[1] - k, axis=1)[:, -k:]


def _top_similarities(Q: np.ndarray, stored: np.ndarray, k: int) -> np.ndarray:
    """``(B, k)`` largest dot products of unit rows with the stored unit vectors, largest first."""
    out = np.empty((Q.shape[0], k), dtype=np.float64)
    for start, stop in _chunks(Q.shape[0], stored.shape[0]):
        sims = Q[start:stop] @ stored.T
        idx = _top_k(sims, k)
        out[start:stop] = np.take_along_axis(sims, idx, axis=1)
    return -np.sort(-out, axis=1)


def _spread(stored: np.ndarray) -> float:
    """Root mean squared distance between two stored vectors: ``sqrt(2 * total variance)``."""
    if stored.shape[0] < 2:
        return 0.0
    return float(np.sqrt(2.0 * stored.var(axis=0).sum()))


def _distance_to_unit(d: np.ndarray, spread: float) -> np.ndarray:
    """Map distances in ``[0, inf)`` to ``[0, 1)`` as ``d / (d + spread)``."""
    if spread <= 0.0:
        return (d > 0.0).astype(np.float64)
    return d / (d + spread)
