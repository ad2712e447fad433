"""Which store errors an outage explains (retry) and which no retry can fix (stop and say why).

An outage (connection refused, a timeout, a replica still loading, a failover) passes: labels
wait in Kafka and the service retries. A refusal does not: a key of the wrong type (another
program writes under our prefix), a missing ACL permission, Redis out of memory under
``noeviction``, wrong credentials. Retrying those for ever would hide them behind a degraded
service; they stop it with Redis's own message instead.
"""

from __future__ import annotations

from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    NoPermissionError,
    OutOfMemoryError,
    ResponseError,
)

_REFUSALS = (AuthenticationError, AuthorizationError, NoPermissionError, OutOfMemoryError)
_REFUSED_PREFIXES = ("WRONGTYPE", "NOPERM", "OOM", "NOAUTH", "WRONGPASS", "ERR unknown command")


class StoreRefusedError(RuntimeError):
    """The store refused a command in a way no retry can fix; the message says which and why."""


def refused(exc: BaseException) -> bool:
    """Whether ``exc`` is a refusal (no retry helps) rather than an outage.

    >>> from redis.exceptions import ConnectionError, ResponseError
    >>> refused(ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"))
    True
    >>> refused(ConnectionError("Connection refused")), refused(ResponseError("LOADING Redis is loading"))
    (False, False)
    """
    if isinstance(exc, _REFUSALS):
        return True
    return isinstance(exc, ResponseError) and str(exc).startswith(_REFUSED_PREFIXES)


def refusal(exc: BaseException) -> StoreRefusedError:
    return StoreRefusedError(
        f"Redis refused a command: {exc} -- no retry can fix this: check Redis's maxmemory and "
        "maxmemory-policy (noeviction), the ACL user's permissions, and that nothing else writes "
        "under this --redis-prefix; then restart")
