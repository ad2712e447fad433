"""Choose and open the PendingStore: Redis when a URL is given, else in memory."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from redis.exceptions import RedisError

from streamer.store.base import PendingStore
from streamer.store.memory import MemoryPendingStore
from streamer.store.redis import RedisPendingStore


class StoreUnavailableError(ConnectionError):
    """The configured store cannot be reached when the service starts."""


def mask_url(url: str) -> str:
    """Hide the password of a URL so it can be logged.

    Examples
    --------
    >>> mask_url("redis://default:s3cret@cache:6379/0")
    'redis://default:***@cache:6379/0'
    >>> mask_url("redis://localhost:6379")
    'redis://localhost:6379'
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable url>"
    if password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


async def open_store(
    redis_url: str | None,
    *,
    prefix: str = "streamer",
    max_pending: int = 100_000,
) -> PendingStore:
    """Open the pending store and check that it answers.

    Parameters
    ----------
    redis_url
        ``redis://...`` for a store shared by replicas; ``None`` for an in-process
        store (single replica, lost on restart).
    prefix
        Redis key namespace.
    max_pending
        Bound of the in-memory store (Redis is bounded by its own ``maxmemory``).

    Raises
    ------
    StoreUnavailableError
        If Redis does not answer a PING; the message names the URL without its password.

    Examples
    --------
    >>> import asyncio
    >>> type(asyncio.run(open_store(None))).__name__
    'MemoryPendingStore'
    """
    if redis_url is None:
        return MemoryPendingStore(max_pending=max_pending)
    try:
        store = RedisPendingStore(redis_url, prefix=prefix)
    except ValueError as e:  # a malformed URL
        raise StoreUnavailableError(f"bad Redis URL {mask_url(redis_url)}: {e}") from None
    try:
        await store.check_connection()
    except (RedisError, OSError) as e:
        await store.close()
        raise StoreUnavailableError(
            f"cannot reach Redis at {mask_url(redis_url)}: {e} "
            "(check the URL, that Redis runs, and the password)"
        ) from None
    return store
