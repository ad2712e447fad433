"""Choose and open the PendingStore: Redis when a URL is given, else in memory."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from redis.exceptions import AuthenticationError, RedisError

from streamer.store.base import PendingStore
from streamer.store.memory import MemoryPendingStore
from streamer.store.redis import RedisPendingStore


class StoreUnavailableError(ConnectionError):
    """The configured store cannot be reached when the service starts."""


def mask_url(url: str) -> str:
    """Hide the password of a URL (user info or ``?password=``) so it can be logged.

    Examples
    --------
    >>> mask_url("redis://default:s3cret@cache:6379/0")
    'redis://default:***@cache:6379/0'
    >>> mask_url("redis://localhost:6379")
    'redis://localhost:6379'
    >>> mask_url("rediss://cache:6380/0?password=s3cret&ssl_cert_reqs=required")
    'rediss://cache:6380/0?password=***&ssl_cert_reqs=required'
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable url>"
    if password is not None:
        user = parts.username or ""
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{user}:***@{host}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "password" for name, _ in query):
        masked = [(name, "***" if name == "password" else value) for name, value in query]
        parts = parts._replace(query=urlencode(masked, safe="*"))
    return urlunsplit(parts)


def url_secrets(url: str) -> list[str]:
    """The passwords a Redis URL carries, as written and decoded (to scrub them from text).

    Examples
    --------
    >>> url_secrets("redis://app:p%40ss@cache:6379/0?password=other")
    ['p%40ss', 'p@ss', 'other']
    >>> url_secrets("redis://cache:6379")
    []
    """
    try:
        parts = urlsplit(url)
        raw = parts.netloc.rpartition("@")[0].partition(":")[2] if "@" in parts.netloc else ""
    except ValueError:
        return []
    found = [raw, unquote(raw)]
    found += [value for name, value in parse_qsl(parts.query) if name == "password"]
    return list(dict.fromkeys(secret for secret in found if secret))


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret replaced by ``***`` (longest first).

    Examples
    --------
    >>> scrub("AUTH s3cret failed", ["s3cret", None])
    'AUTH *** failed'
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


async def open_store(
    redis_url: str | None,
    *,
    prefix: str = "streamer",
    max_pending: int = 100_000,
    client_options: Mapping[str, Any] | None = None,
) -> PendingStore:
    """Open the pending store and check that it answers.

    Parameters
    ----------
    redis_url
        ``redis://...`` for a store shared by replicas, ``rediss://...`` for TLS; ``None`` for
        an in-process store (single replica, lost on restart).
    prefix
        Redis key namespace.
    max_pending
        Bound of the in-memory store (Redis is bounded by its own ``maxmemory``).
    client_options
        More arguments of the Redis client: ``username``, ``password``, ``ssl_ca_certs``,
        ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs`` (``Settings.redis_client_options()``).
        The URL wins where both name the same thing.

    Raises
    ------
    StoreUnavailableError
        If Redis refuses the credentials or does not answer a PING; the message names the
        URL without its password and never contains a password.

    Examples
    --------
    >>> import asyncio
    >>> type(asyncio.run(open_store(None))).__name__
    'MemoryPendingStore'
    """
    if redis_url is None:
        return MemoryPendingStore(max_pending=max_pending)
    options = dict(client_options or {})
    secrets = [*url_secrets(redis_url), options.get("password"), options.get("ssl_password")]
    where = mask_url(redis_url)
    try:
        store = RedisPendingStore(redis_url, prefix=prefix, client_options=options)
    except (ValueError, TypeError) as e:  # a malformed URL or option
        raise StoreUnavailableError(scrub(f"bad Redis URL {where}: {e}", secrets)) from None
    try:
        await store.check_connection()
    except AuthenticationError as e:
        await store.close()
        raise StoreUnavailableError(scrub(
            f"Redis at {where} refused the credentials: {e} (check the password and username: "
            "in the URL, or redis_password / redis_username and their _FILE forms)", secrets
        )) from None
    except (RedisError, OSError) as e:
        await store.close()
        raise StoreUnavailableError(scrub(
            f"cannot reach Redis at {where}: {e} (check the URL, that Redis runs, the password, "
            "and for rediss:// the TLS settings redis_ssl_*)", secrets
        )) from None
    policy = await store.eviction_policy()
    if policy is not None and policy != "noeviction":
        await store.close()
        raise StoreUnavailableError(scrub(
            f"Redis at {where} evicts keys (maxmemory-policy={policy}): it would silently drop "
            "pending items, applied-label marks or the checkpoint. Set maxmemory-policy noeviction "
            "(CONFIG SET maxmemory-policy noeviction, or in redis.conf), and give Redis the memory "
            "the pending items need", secrets))
    return store
