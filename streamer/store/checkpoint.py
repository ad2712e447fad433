"""Signed checkpoints: the sampler (model included), the label offsets it consumed, counters.

A checkpoint is written to the store together with the ids of the labels it includes
(:meth:`~streamer.store.base.PendingStore.commit`, one atomic step), so after a crash the
restored service re-reads exactly the labels its model has not learned yet.

Format: ``streamer-checkpoint/<format>\n + HMAC-SHA256(key, payload) + payload`` (a
:mod:`streamer.signed` blob whose magic is the header); the payload is a pickle and is unpickled
only after the signature matched. A checkpoint that was modified, truncated or signed with
another key is refused with :class:`CheckpointError` -- never loaded.

The sampler's in-flight ids (up to ``max_in_flight``, 100,000 by default: megabytes) travel
beside it as pickled chunks of ``IN_FLIGHT_CHUNK`` ids. :func:`snapshot` takes the checkpoint at
one moment (the sampler pickled without them, the ids copied: milliseconds), and the service
serializes the ids chunk by chunk, yielding to its event loop between chunks, and signs them in
a thread (:func:`dumps_yielding`): a checkpoint no longer holds decisions up for the tens of
milliseconds that pickling 100,000 ids took.

Versions: the header names the format (``FORMAT``). A checkpoint of a newer format than this
code knows is refused with what to do. One of an older format (or written by a release whose
objects lacked attributes added since) is upgraded at load: every attribute that a fresh Sampler
with the checkpoint's settings has and the restored one lacks is filled in from the fresh one,
in the Sampler and in the objects it holds, so the restored sampler works at once instead of
failing at its first use.

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

import asyncio
import inspect
import logging
import pickle
import time
from dataclasses import dataclass, field
from typing import Any

from streamer.core.sampler import Sampler
from streamer.signed import SignatureError, seal, unseal

__all__ = ["FORMAT", "Checkpoint", "CheckpointError", "Snapshot", "dumps", "dumps_yielding", "loads", "snapshot"]

log = logging.getLogger(__name__)

# 3: the in-flight ids travel beside the sampler, in chunks; 2: the header carries the format,
# loads upgrades objects that lack attributes
FORMAT = 3
IN_FLIGHT_CHUNK = 8192  # in-flight ids pickled between two yields to the event loop
_HEADER = b"streamer-checkpoint/"
MAGIC = _HEADER + f"{FORMAT}\n".encode()


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


@dataclass(slots=True)
class Snapshot:
    """A checkpoint taken at one moment, not yet serialized in full."""

    state: bytes  # the checkpoint's fields pickled, its sampler without the in-flight ids
    in_flight: tuple[list[str], list[float]]  # the sampler's in-flight ids and propensities, copied


def snapshot(checkpoint: Checkpoint) -> Snapshot:
    """Take ``checkpoint`` now: everything but the in-flight ids pickled, those copied."""
    with checkpoint.sampler.in_flight_detached() as in_flight:
        state = pickle.dumps({name: getattr(checkpoint, name) for name in Checkpoint.__slots__},
                             protocol=pickle.HIGHEST_PROTOCOL)
    return Snapshot(state, in_flight)


def dumps(checkpoint: Checkpoint, key: bytes) -> bytes:
    """Serialize and sign ``checkpoint`` with ``key`` (at least 16 bytes)."""
    _check_key(key)
    taken = snapshot(checkpoint)
    return _sealed(taken, [_chunk(taken, start) for start in _chunk_starts(taken)], key)


async def dumps_yielding(taken: Snapshot, key: bytes) -> bytes:
    """:func:`dumps` of a :func:`snapshot`, yielding to the event loop between chunks of
    in-flight ids and signing in a thread."""
    _check_key(key)
    chunks = []
    for start in _chunk_starts(taken):
        chunks.append(_chunk(taken, start))
        await asyncio.sleep(0)
    return await asyncio.to_thread(_sealed, taken, chunks, key)


def _chunk_starts(taken: Snapshot) -> range:
    return range(0, len(taken.in_flight[0]), IN_FLIGHT_CHUNK)


def _chunk(taken: Snapshot, start: int) -> bytes:
    ids, propensities = taken.in_flight
    end = start + IN_FLIGHT_CHUNK
    return pickle.dumps((ids[start:end], propensities[start:end]), protocol=pickle.HIGHEST_PROTOCOL)


def _sealed(taken: Snapshot, chunks: list[bytes], key: bytes) -> bytes:
    payload = pickle.dumps({"state": taken.state, "in_flight": chunks}, protocol=pickle.HIGHEST_PROTOCOL)
    return seal(MAGIC, key, payload)


def loads(data: bytes, key: bytes) -> Checkpoint:
    """Verify and restore a checkpoint written by :func:`dumps` with the same ``key``.

    Raises
    ------
    CheckpointError
        If the bytes are not a streamer checkpoint, their signature does not match (nothing
        is unpickled then), or they were written in a newer format than this code knows.
    """
    _check_key(key)
    version, header = _format(data)
    try:
        payload = unseal(header, key, data, "service")
    except SignatureError:
        raise CheckpointError(
            "checkpoint failed its integrity check: it was modified, truncated or signed with "
            "a different key (checkpoint_key); refusing to load it"
        ) from None
    if version > FORMAT:
        raise CheckpointError(
            f"checkpoint format {version} was written by a newer streamer (this one reads formats "
            f"up to {FORMAT}): run that release, or start fresh with a new --redis-prefix")
    fields = pickle.loads(payload)  # noqa: S301 - the signature was verified above
    chunks: list[bytes] = []
    if version >= 3:  # the in-flight ids beside the sampler; before, inside it
        chunks = fields["in_flight"]
        fields = pickle.loads(fields["state"])  # noqa: S301 - inside the verified payload
    checkpoint = Checkpoint(**{name: value for name, value in fields.items() if name in Checkpoint.__slots__})
    if chunks:
        parts = [pickle.loads(chunk) for chunk in chunks]  # noqa: S301 - verified above
        checkpoint.sampler.restore_in_flight((i for ids, _ in parts for i in ids),
                                             (p for _, ps in parts for p in ps))
    upgraded = _fill_missing(checkpoint.sampler, _fresh_sampler(checkpoint))
    if upgraded:
        log.warning("checkpoint %d (format %d) lacked %s: filled in with their defaults",
                    checkpoint.sequence, version, ", ".join(upgraded))
    return checkpoint


def _fresh_sampler(checkpoint: Checkpoint) -> Sampler:
    """A Sampler built now with the checkpoint's model and the settings this code still takes."""
    accepted = inspect.signature(Sampler).parameters
    config = {k: v for k, v in checkpoint.sampler_config.items() if k in accepted}
    return Sampler(checkpoint.sampler.model, **config)


def _format(data: Any) -> tuple[int, bytes]:
    """The format number in a checkpoint's header, and the header (the blob's magic)."""
    if isinstance(data, bytes | bytearray) and bytes(data).startswith(_HEADER):
        number, newline, _ = bytes(data[len(_HEADER) : len(_HEADER) + 9]).partition(b"\n")
        if newline and number.isdigit():
            return int(number), _HEADER + number + b"\n"
    raise CheckpointError("not a streamer checkpoint (wrong header); refusing to load it")


def _fill_missing(restored: Any, fresh: Any, path: str = "sampler", depth: int = 3) -> list[str]:
    """Give ``restored`` every attribute ``fresh`` (the same class, built now) has and it lacks,
    down the objects of the same class it holds; return the names filled in."""
    filled = []
    if depth == 0 or type(restored) is not type(fresh) or not hasattr(fresh, "__dict__"):
        return filled
    have = vars(restored)
    for name, value in vars(fresh).items():
        if name not in have:
            have[name] = value
            filled.append(f"{path}.{name}")
        else:
            filled += _fill_missing(have[name], value, f"{path}.{name}", depth - 1)
    return filled


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) < 16:
        raise ValueError("the checkpoint key must be at least 16 bytes")
