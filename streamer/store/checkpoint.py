"""Signed checkpoints: the sampler (model included), the label offsets it consumed, counters.

A checkpoint is written to the store together with the ids of the labels it includes
(:meth:`~streamer.store.base.PendingStore.commit`, one atomic step), so after a crash the
restored service re-reads exactly the labels its model has not learned yet.

Format: ``MAGIC + HMAC-SHA256(key, payload) + payload``; the payload is a pickle and is
unpickled only after the signature matched. A checkpoint that was modified, truncated or
signed with another key is refused with :class:`CheckpointError` -- never loaded.

Examples
--------
>>> from streamer.core.sampler import Sampler
>>> from streamer.models import build_model
>>> key = b"0123456789abcdef"
>>> state = Checkpoint(Sampler(build_model("StandardScaler | LogisticRegression")), {("labels", 0): 42})
>>> data = dumps(state, key)
>>> loads(data, key).label_offsets
{('labels', 0): 42}
>>> loads(data[:-1] + bytes([data[-1] ^ 1]), key)
Traceback (most recent call last):
...
streamer.store.checkpoint.CheckpointError: checkpoint failed its integrity check: it was modified, truncated or signed with a different key (checkpoint_key); refusing to load it
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import time
from dataclasses import dataclass, field
from typing import Any

from streamer.core.sampler import Sampler

__all__ = ["Checkpoint", "CheckpointError", "dumps", "loads"]

MAGIC = b"streamer-checkpoint/1\n"
_DIGEST = hashlib.sha256().digest_size


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: tampered, foreign, or for another model."""


@dataclass(slots=True)
class Checkpoint:
    """What a restarted service needs to go on exactly where the checkpoint was taken."""

    sampler: Sampler
    label_offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # next to read
    applied: int = 0  # labels learned since the deployment began
    correct: int = 0  # of those, predicted right before learning (prequential accuracy)
    outcomes: dict[str, int] = field(default_factory=dict)  # label join outcomes, cumulative
    model_spec: str = ""
    sampler_config: dict[str, Any] = field(default_factory=dict)
    sequence: int = 0  # 1, 2, ... per deployment
    written_at: float = field(default_factory=time.time)


def dumps(checkpoint: Checkpoint, key: bytes) -> bytes:
    """Serialize and sign ``checkpoint`` with ``key`` (at least 16 bytes)."""
    _check_key(key)
    payload = pickle.dumps(
        {name: getattr(checkpoint, name) for name in Checkpoint.__slots__},
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    return MAGIC + _sign(key, payload) + payload


def loads(data: bytes, key: bytes) -> Checkpoint:
    """Verify and restore a checkpoint written by :func:`dumps` with the same ``key``.

    Raises
    ------
    CheckpointError
        If the bytes are not a streamer checkpoint or their signature does not match.
        Nothing is unpickled then.
    """
    _check_key(key)
    if not isinstance(data, bytes | bytearray) or not bytes(data).startswith(MAGIC):
        raise CheckpointError("not a streamer checkpoint (wrong header); refusing to load it")
    body = bytes(data[len(MAGIC) :])
    signature, payload = body[:_DIGEST], body[_DIGEST:]
    if len(signature) != _DIGEST or not hmac.compare_digest(signature, _sign(key, payload)):
        raise CheckpointError(
            "checkpoint failed its integrity check: it was modified, truncated or signed with "
            "a different key (checkpoint_key); refusing to load it"
        )
    fields = pickle.loads(payload)  # noqa: S301 - the signature was verified above
    return Checkpoint(**fields)


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) < 16:
        raise ValueError("the checkpoint key must be at least 16 bytes")


def _sign(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()
