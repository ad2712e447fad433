"""What replicas share through Redis: the learner lease, the published model, the budget ledger.

Scale-out uses Kafka consumer groups and Redis only -- no home-made coordination protocol:

- :class:`LearnerLease` -- one key ``{prefix}:learner`` set with ``NX PX``: the replica holding
  it is the only one that consumes labels, learns and checkpoints. It renews the lease every
  third of its length; a standby takes it over once it expired (the holder died) and restores
  the newest checkpoint first, so no label is lost. Checkpoints are *fenced*: a replica whose
  lease was taken over can no longer write one (:meth:`fence`).
- :class:`ModelBoard` -- the learner publishes each new model version, signed like a
  checkpoint, as ``{prefix}:model`` (bytes) and ``{prefix}:model:meta`` (publish counter,
  model version, time), and announces the counter on the channel ``{prefix}:model:published``.
  Scorers fetch the bytes when a notice arrives, and poll the small meta key as a fallback
  (a notice is lost while a subscriber reconnects): a poll is one ``GET`` of a few bytes.
- :class:`BudgetLedger` -- a hash ``{prefix}:budget`` of ``planned`` and ``asked`` labels
  summed over every replica, and a sorted set of the replicas seen lately. Each replica adds
  what it decided since its last sync, a few times a second (one script call, not one per
  item), and gets the totals back to correct its own threshold.

Every key carries the ``{prefix}`` hash tag, so the scripts also run on a Redis Cluster.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from streamer.store.base import LeaseLostError

__all__ = ["BudgetLedger", "LearnerLease", "LedgerTotals", "ModelBoard", "PublishedModel"]

# KEYS[1] lease, ARGV: token, ttl ms. Take a free lease, or renew our own; 1 = held by us.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS[1] lease, ARGV: dead holder's token, our token, ttl ms. Take the lease from a holder
# known to be dead, only if it still holds it; 1 = ours now.
_TAKE_FROM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""

# KEYS[1] lease, ARGV: token. Give the lease up only if it is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: budget hash, replicas zset. ARGV: planned delta, asked delta, replica, now, horizon s.
_SYNC = """
local planned = redis.call('HINCRBYFLOAT', KEYS[1], 'planned', ARGV[1])
local asked = redis.call('HINCRBY', KEYS[1], 'asked', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[4]) - tonumber(ARGV[5]))
return {planned, asked, redis.call('ZCARD', KEYS[2])}
"""


class LearnerLease:
    """The right to learn: one holder at a time, taken over when it expires.

    Parameters
    ----------
    client
        A ``redis.asyncio.Redis`` client (bytes responses).
    prefix
        The deployment's key prefix (``--redis-prefix``).
    token
        This replica's identity; a restarted replica with the same token (static group
        membership) gets its own unexpired lease back at once.
    seconds
        Lease length; renewed every third of it.
    """

    def __init__(self, client: Any, prefix: str, token: str, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"the lease must last > 0 s, got {seconds!r}")
        self.key = f"{{{prefix}}}:learner"
        self.token = token
        self.seconds = float(seconds)
        self._client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._take_from = client.register_script(_TAKE_FROM)

    async def acquire(self) -> bool:
        """Take the lease if it is free (or renew it if ours); True when we hold it."""
        ms = max(1, int(self.seconds * 1000))
        return bool(await self._acquire(keys=[self.key], args=[self.token, ms]))

    renew = acquire  # renewing is acquiring what is already ours

    async def take_from(self, dead: str) -> bool:
        """Take the lease from ``dead`` (a holder known to have died) if it still holds it."""
        ms = max(1, int(self.seconds * 1000))
        return bool(await self._take_from(keys=[self.key], args=[dead, self.token, ms]))

    async def release(self) -> None:
        """Give the lease up (at shutdown) so a standby takes over without waiting."""
        await self._release(keys=[self.key], args=[self.token])

    async def holder(self) -> str | None:
        value = await self._client.get(self.key)
        return None if value is None else bytes(value).decode()

    def fence(self) -> tuple[str, bytes]:
        """``(key, token)`` for a store write that must fail unless we still hold the lease."""
        return self.key, self.token.encode()


@dataclass(frozen=True, slots=True)
class PublishedModel:
    """One model version as the learner published it."""

    sequence: int  # publish counter: increases with every publish, across learner failovers
    version: int  # the model's own version (labels learned), stamped on decisions
    published_at: float  # the learner's clock, seconds since the epoch
    blob: bytes | None = None  # the signed model; None when only the meta was read


# KEYS: lease, sequence, model, meta, channel. ARGV: token, fenced (1/0), version, stamp, blob.
# 0 = the lease is not ours (nothing written); else the new sequence.
_PUBLISH = """
if ARGV[2] == '1' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local sequence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[3], ARGV[5])
redis.call('SET', KEYS[4], sequence .. ' ' .. ARGV[3] .. ' ' .. ARGV[4])
redis.call('PUBLISH', KEYS[5], sequence)
return sequence
"""


class ModelBoard:
    """Where the learner publishes model versions and scorers pick them up."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self.model_key = f"{{{prefix}}}:model"
        self.meta_key = f"{{{prefix}}}:model:meta"
        self.sequence_key = f"{{{prefix}}}:model:sequence"
        self.channel = f"{{{prefix}}}:model:published"
        self.lease_key = f"{{{prefix}}}:learner"  # no lease given: a key nobody holds
        self._publish = client.register_script(_PUBLISH)

    async def publish(self, version: int, blob: bytes, now: float | None = None,
                      fence: tuple[str, bytes] | None = None) -> int:
        """Publish ``blob`` (a model's signed bytes) as ``version``; return its sequence.

        The sequence, the bytes and the meta are written in one step, so a newer sequence
        always carries the newer model. With ``fence = (lease key, token)`` nothing is written
        unless the lease is still ours.

        Raises
        ------
        LeaseLostError
            The lease of ``fence`` is another replica's now: this one no longer learns.
        """
        stamp = time.time() if now is None else now
        key, token = fence if fence is not None else (self.lease_key, b"")
        sequence = int(await self._publish(
            keys=[key, self.sequence_key, self.model_key, self.meta_key, self.channel],
            args=[token, "1" if fence is not None else "0", int(version), repr(stamp), bytes(blob)]))
        if sequence == 0:
            raise LeaseLostError("another replica holds the learner lease: this model is not published")
        return sequence

    async def listeners(self) -> int:
        """Subscribers to the publication notices (scorers), as the Redis node answering counts
        them (a cluster node counts its own clients only)."""
        ((_, count),) = await self._client.pubsub_numsub(self.channel)
        return int(count)

    async def subscribe(self) -> Any:
        """A subscription to the publication notices (``get_message``; ``aclose`` it)."""
        notices = self._client.pubsub()
        try:
            await notices.subscribe(self.channel)
        except BaseException:
            await notices.aclose()
            raise
        return notices

    async def latest(self) -> PublishedModel | None:
        """The newest publication's meta (one small GET), or None before the first."""
        return _meta(await self._client.get(self.meta_key))

    async def fetch(self) -> PublishedModel | None:
        """The newest publication with its bytes (meta and bytes read together)."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.get(self.meta_key)
            pipe.get(self.model_key)
            meta, blob = await pipe.execute()
        published = _meta(meta)
        if published is None or blob is None:
            return None
        return PublishedModel(published.sequence, published.version, published.published_at, bytes(blob))


def _meta(raw: Any) -> PublishedModel | None:
    if raw is None:
        return None
    try:
        sequence, version, stamp = bytes(raw).decode().split()
        return PublishedModel(int(sequence), int(version), float(stamp))
    except ValueError as exc:
        raise ValueError(f"the published model's meta is corrupt: {bytes(raw)[:64]!r}") from exc


@dataclass(frozen=True, slots=True)
class LedgerTotals:
    """The budget summed over every replica, as of one sync."""

    planned: float  # labels the budget allowed for every item decided so far
    asked: int  # labels asked
    replicas: int  # replicas that synced within the horizon (at least this one)

    @property
    def deficit(self) -> float:
        return self.planned - self.asked


class BudgetLedger:
    """The label budget of the whole deployment, summed in Redis a few times a second."""

    def __init__(self, client: Any, prefix: str, replica: str, horizon_seconds: float = 10.0) -> None:
        self.key = f"{{{prefix}}}:budget"
        self.replicas_key = f"{{{prefix}}}:budget:replicas"
        self.replica = replica
        self.horizon = float(horizon_seconds)
        self._sync = client.register_script(_SYNC)

    async def sync(self, planned: float, asked: int, now: float | None = None) -> LedgerTotals:
        """Add this replica's ``planned``/``asked`` since its last sync; return the totals."""
        stamp = time.time() if now is None else now
        reply = await self._sync(
            keys=[self.key, self.replicas_key],
            args=[repr(float(planned)), int(asked), self.replica, repr(stamp), repr(self.horizon)],
        )
        return LedgerTotals(float(reply[0]), int(reply[1]), max(1, int(reply[2])))
