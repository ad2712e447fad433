"""PendingStore in Redis, shared by every replica of the service.

Layout (all keys share the hash tag ``{prefix}`` so the Lua scripts also run on a
Redis Cluster):

- ``{prefix}:p:<id>``  hash ``f`` (float64 little-endian bytes), ``r`` (requested_at),
  ``d`` (deadline), ``c`` (the claiming owner, once a label claimed it); it also gets a Redis TTL as a safety
  net if no sweep ever runs (a claim extends it to the applied TTL).
- ``{prefix}:deadlines`` ZSET id -> deadline, read by the sweep.
- ``{prefix}:a:<id>`` applied marker with a TTL: a second label is ``DUPLICATE``.
- ``{prefix}:x:<id>`` tombstone of an expired item with a TTL: its label is ``LATE``.
- ``{prefix}:expired`` expirations noticed by ``claim`` and not yet reported by a sweep.
- ``{prefix}:checkpoint`` the newest signed checkpoint (model, label offsets, counters).

``claim`` and ``sweep`` are Lua scripts and ``commit`` is one MULTI/EXEC transaction, so each is
atomic: an expiry is counted exactly once, and the applied marks of a batch of labels appear
together with the checkpoint whose model learned them -- never one without the other.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from streamer.store.base import Joined, JoinOutcome, LeaseLostError
from streamer.store.memory import check_put

log = logging.getLogger(__name__)

_FEATURES_DTYPE = "<f8"  # explicit byte order: replicas may run on different machines

# KEYS: pending hash, applied marker, tombstone, deadlines zset, expired counter
# ARGV: id, now, claimed ttl ms, tombstone ttl ms, owner
# A claim keeps the features (field 'c' marks the claim) until commit() deletes them with the
# checkpoint that includes the label, so a crash in between can re-claim the same item.
_CLAIM = """
if redis.call('EXISTS', KEYS[2]) == 1 then return {'duplicate'} end
local v = redis.call('HMGET', KEYS[1], 'f', 'r', 'd', 'c')
if not v[1] then
  if redis.call('EXISTS', KEYS[3]) == 1 then return {'late'} end
  -- the hash's safety-net TTL ran out before any sweep: still pending in the zset
  if redis.call('ZREM', KEYS[4], ARGV[1]) == 1 then
    redis.call('INCR', KEYS[5])
    redis.call('SET', KEYS[3], '1', 'PX', ARGV[4])
    return {'late'}
  end
  return {'unknown'}
end
if v[4] then
  if v[4] == ARGV[5] then return {'joined', v[1], v[2]} end
  return {'duplicate'}
end
if tonumber(ARGV[2]) >= tonumber(v[3]) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('INCR', KEYS[5])
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[4])
  return {'late'}
end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[1], 'c', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {'joined', v[1], v[2]}
"""

# KEYS: deadlines zset
# ARGV: key prefix, requested_at, deadline, expire ms, then id, features, id, features, ...
_PUT = """
local skipped = {}
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  local key = ARGV[1] .. 'p:' .. id
  if redis.call('EXISTS', ARGV[1] .. 'a:' .. id) == 1 or redis.call('HEXISTS', key, 'c') == 1 then
    skipped[#skipped + 1] = id
  else
    redis.call('HSET', key, 'f', ARGV[i + 1], 'r', ARGV[2], 'd', ARGV[3])
    redis.call('PEXPIRE', key, ARGV[4])
    redis.call('ZADD', KEYS[1], ARGV[3], id)
  end
end
return skipped
"""

# KEYS: lease, deadlines zset, checkpoint
# ARGV: lease token, applied ttl ms, key prefix, checkpoint ('' = none), then the applied ids
_FENCED_COMMIT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
for i = 5, #ARGV do
  redis.call('SET', ARGV[3] .. 'a:' .. ARGV[i], '1', 'PX', ARGV[2])
  redis.call('DEL', ARGV[3] .. 'p:' .. ARGV[i])
  redis.call('ZREM', KEYS[2], ARGV[i])
end
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[3], ARGV[4])
end
return 1
"""

# KEYS: deadlines zset, expired counter
# ARGV: now, max items per call, tombstone ttl ms, key prefix ("{prefix}:")
_SWEEP = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('DEL', ARGV[4] .. 'p:' .. id)
  redis.call('SET', ARGV[4] .. 'x:' .. id, '1', 'PX', ARGV[3])
end
local noticed = tonumber(redis.call('GET', KEYS[2]) or '0')
if noticed > 0 then redis.call('DECRBY', KEYS[2], noticed) end
return {#ids, noticed}
"""


class RedisPendingStore:
    """Pending items in Redis with atomic, replica-safe ``take`` and ``sweep``.

    Parameters
    ----------
    url
        ``redis://[:password@]host:port/db`` (or ``rediss://`` for TLS).
    prefix
        Namespace of every key, so several deployments can share one Redis.
    applied_ttl_seconds
        How long an applied id is remembered to report duplicates.
    tombstone_seconds
        How long an expired id is remembered so its label is ``LATE``, not ``UNKNOWN``.
    expiry_grace_seconds
        Pending hashes also get a Redis TTL of ``ttl + grace``, so items are not kept
        forever if no replica sweeps; the sweep normally removes them first.
    sweep_chunk
        Items expired per script call, so a large sweep never blocks Redis for long.
    socket_timeout
        Seconds before a Redis command fails instead of hanging the service.
    client_options
        More keyword arguments for ``redis.asyncio.Redis.from_url`` (TLS files, username,
        password), used as given.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "streamer",
        applied_ttl_seconds: float = 7 * 24 * 3600.0,
        tombstone_seconds: float = 3600.0,
        expiry_grace_seconds: float = 3600.0,
        sweep_chunk: int = 1000,
        socket_timeout: float = 5.0,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be non-empty and without braces, got {prefix!r}")
        self.prefix = prefix
        self._keys = f"{{{prefix}}}:"
        self._deadlines_key = self._keys + "deadlines"
        self._expired_key = self._keys + "expired"
        self._applied_ms = _ms(applied_ttl_seconds)
        self._tombstone_ms = _ms(tombstone_seconds)
        self._grace = expiry_grace_seconds
        self._sweep_chunk = sweep_chunk
        self._client = aioredis.Redis.from_url(
            url,
            decode_responses=False,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            **(client_options or {}),
        )
        self._claim = self._client.register_script(_CLAIM)
        self._put = self._client.register_script(_PUT)
        self._checkpoint_key = self._keys + "checkpoint"
        self._sweep = self._client.register_script(_SWEEP)
        self._fenced_commit = self._client.register_script(_FENCED_COMMIT)

    @property
    def client(self) -> aioredis.Redis:
        """The Redis client, shared with :mod:`streamer.store.coordination`."""
        return self._client

    def _pending_key(self, item_id: str) -> str:
        return f"{self._keys}p:{item_id}"

    async def put_many(
        self, ids: Sequence[str], X: np.ndarray, requested_at: float, ttl_seconds: float
    ) -> list[str]:
        """Store each row of ``X`` until ``requested_at + ttl_seconds``, in one script call.

        Returns the ids *not* stored because their label was already claimed or applied
        (an item decided again after a crash): asking for them again would waste a label.
        """
        X = check_put(ids, X).astype(_FEATURES_DTYPE, copy=False)
        if not len(ids):
            return []
        deadline = requested_at + ttl_seconds
        expire_ms = _ms(max(ttl_seconds, 0.0) + self._grace)
        args: list[Any] = [self._keys, repr(float(requested_at)), repr(float(deadline)), expire_ms]
        for item_id, row in zip(ids, X, strict=True):
            args += [item_id, row.tobytes()]
        skipped = await self._put(keys=[self._deadlines_key], args=args)
        return [item_id.decode() for item_id in skipped]

    durable = True  # survives a restart of the service

    async def claim(
        self, item_id: str, now: float, owner: str = "-"
    ) -> tuple[JoinOutcome, Joined | None]:
        """Claim the pending item for a label; the features stay until :meth:`commit`."""
        return (await self.claim_many([(item_id, owner)], now))[0]

    async def claim_many(
        self, claims: Sequence[tuple[str, str]], now: float
    ) -> list[tuple[JoinOutcome, Joined | None]]:
        """One claim script per label, all in one pipelined round trip (each script is atomic;
        the batch need not be)."""
        if not claims:
            return []
        keys = self._keys
        async with self._client.pipeline(transaction=False) as pipe:
            for item_id, owner in claims:
                await self._claim(
                    keys=[self._pending_key(item_id), f"{keys}a:{item_id}", f"{keys}x:{item_id}",
                          self._deadlines_key, self._expired_key],
                    args=[item_id, repr(float(now)), self._applied_ms, self._tombstone_ms, owner],
                    client=pipe,
                )
            replies = await pipe.execute()
        return [_claimed(item_id, reply) for (item_id, _), reply in zip(claims, replies, strict=True)]

    async def commit(
        self,
        applied_ids: Sequence[str],
        checkpoint: bytes | None = None,
        fence: tuple[str, bytes] | None = None,
    ) -> None:
        """Applied marks, deleted features and the checkpoint, in one MULTI/EXEC.

        With ``fence = (lease key, token)`` nothing is written unless the lease is still ours
        (one script): a learner whose lease was taken over raises :class:`LeaseLostError`.
        """
        if not applied_ids and checkpoint is None:
            return
        if fence is not None:
            key, token = fence
            written = await self._fenced_commit(
                keys=[key, self._deadlines_key, self._checkpoint_key],
                args=[token, self._applied_ms, self._keys, b"" if checkpoint is None else bytes(checkpoint),
                      *applied_ids],
            )
            if not written:
                raise LeaseLostError(
                    "the learner lease was taken over by another replica: this replica's "
                    "checkpoint was not written (its labels are learned again by the new learner)"
                )
            return
        async with self._client.pipeline(transaction=True) as pipe:
            for item_id in applied_ids:
                pipe.set(f"{self._keys}a:{item_id}", b"1", px=self._applied_ms)
                pipe.delete(self._pending_key(item_id))
            if applied_ids:
                pipe.zrem(self._deadlines_key, *applied_ids)
            if checkpoint is not None:
                pipe.set(self._checkpoint_key, bytes(checkpoint))
            await pipe.execute()

    async def take(self, item_id: str, now: float) -> tuple[JoinOutcome, Joined | None]:
        """Claim and commit at once, for callers without checkpoints."""
        outcome, joined = await self.claim(item_id, now, owner=uuid.uuid4().hex)
        if joined is not None:
            await self.commit([item_id])
        return outcome, joined

    async def load_checkpoint(self) -> bytes | None:
        data = await self._client.get(self._checkpoint_key)
        return None if data is None else bytes(data)

    async def sweep(self, now: float) -> int:
        """Expire items with deadline ``<= now``; each expiry is counted by exactly one caller."""
        total = 0
        while True:
            swept, noticed = await self._sweep(
                keys=[self._deadlines_key, self._expired_key],
                args=[repr(float(now)), self._sweep_chunk, self._tombstone_ms, self._keys],
            )
            total += int(swept) + int(noticed)
            if int(swept) < self._sweep_chunk:
                return total

    async def pending_count(self) -> int:
        return int(await self._client.zcard(self._deadlines_key))

    async def check_connection(self) -> None:
        """Raise the Redis client's error if Redis does not answer a PING."""
        await self._client.ping()

    async def eviction_policy(self) -> str | None:
        """Redis's maxmemory-policy, or None where this user may not read it (a managed Redis
        often refuses CONFIG: then it is logged, and checking it is the operator's)."""
        try:
            values = await self._client.config_get("maxmemory-policy")
        except ResponseError as exc:
            log.warning("cannot read Redis's maxmemory-policy (%s); make sure it is noeviction: an "
                        "evicting Redis drops pending items and checkpoints silently", exc)
            return None
        policy = values.get("maxmemory-policy") if isinstance(values, dict) else None
        return policy.decode() if isinstance(policy, bytes) else policy

    async def ping(self) -> bool:
        """True when Redis answers; False (not an exception) when it does not."""
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._client.aclose()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _claimed(item_id: str, reply: list[bytes]) -> tuple[JoinOutcome, Joined | None]:
    outcome = JoinOutcome(reply[0].decode())
    if outcome is not JoinOutcome.JOINED:
        return outcome, None
    features = np.frombuffer(reply[1], dtype=_FEATURES_DTYPE).astype(np.float64)
    return outcome, Joined(item_id, features, float(reply[2]))
