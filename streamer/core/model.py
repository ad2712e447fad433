"""The model protocol every learner implements (river wrapper, torch head, ...).

Batch-native: one call scores a whole micro-batch. A single item is a batch of one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Hashable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

Label = Hashable  # int or str on the wire


def with_class(classes: list[Label], label: Label) -> list[Label]:
    """``classes`` with ``label`` added at its sorted place; ``classes`` itself if it is there.

    Mixed types (e.g. 1 and "cat") cannot be sorted: they keep their order of appearance.

    >>> with_class([1, 3], 2), with_class([1, "cat"], 0), with_class([1], 1)
    ([1, 2, 3], [1, 'cat', 0], [1])
    """
    if label in classes:
        return classes
    grown = [*classes, label]
    with contextlib.suppress(TypeError):
        grown.sort()
    return grown


@runtime_checkable
class Model(Protocol):
    """What the Sampler needs from a model.

    - ``classes``: the labels seen so far, in the column order of ``predict_proba``.
    - ``n_features``: the expected width of ``X`` (``None`` until known).
    - ``version``: increases by one for every ``learn`` call that changed the model.
    """

    classes: list[Label]
    n_features: int | None
    version: int

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Return a ``(B, len(classes))`` array of class probabilities (rows sum to 1).

        With no classes known yet, return an array of shape ``(B, 0)``.
        """
        ...

    def observe(self, X: np.ndarray) -> None:
        """Update unsupervised parts (scalers...) from every item, labelled or not."""
        ...

    def learn(self, X: np.ndarray, y: Sequence[Label]) -> None:
        """Update the model from labelled rows."""
        ...

    def to_bytes(self, key: bytes, *, weights_only: bool = False) -> bytes:
        """Serialize the full model state, signed with ``key`` (HMAC) for ``from_bytes``.

        ``weights_only``: what a learner publishes to scorers, without the state a process keeps
        of its own traffic (a torch head's novelty memory), which each scorer keeps across swaps.
        """
        ...

    @classmethod
    def from_bytes(cls, data: bytes, key: bytes) -> Model:
        """Restore a model written by ``to_bytes``; raise ``ValueError`` if the signature fails.

        State may come back from Redis or over the network: nothing is deserialized before
        its integrity is checked.
        """
        ...
