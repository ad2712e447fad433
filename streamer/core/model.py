"""The model protocol every learner implements (river wrapper, torch head, ...).

Batch-native: one call scores a whole micro-batch. A single item is a batch of one.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

Label = Hashable  # int or str on the wire


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

    def to_bytes(self, key: bytes) -> bytes:
        """Serialize the full model state, signed with ``key`` (HMAC) for ``from_bytes``."""
        ...

    @classmethod
    def from_bytes(cls, data: bytes, key: bytes) -> Model:
        """Restore a model written by ``to_bytes``; raise ``ValueError`` if the signature fails.

        State may come back from Redis or over the network: nothing is deserialized before
        its integrity is checked.
        """
        ...
