"""The learner role: one replica learns at a time, the holder of the learner lease.

Without a shared store (one process) this replica always learns. With one, it takes the lease
when free, renews it every third of its length, and gives it back at close so a standby takes
over at once. A replica that finds the lease taken over stops learning: its checkpoints and
publications are fenced, so a deposed learner can never write over its successor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable

from streamer.metrics import Metrics
from streamer.runtime.health import STORE_ERRORS, Health
from streamer.store.base import LeaseLostError
from streamer.store.coordination import LearnerLease

__all__ = ["LearnerRole", "holder_died_here", "replica_token"]

log = logging.getLogger(__name__)


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:  # not Linux: no way to tell a process of this host's namespace
        return ""


def replica_token() -> str:
    """This replica's lease token: host, PID namespace, process id and a random part, so that a
    replica restarted on the same host can tell that the holder it finds has died."""
    return f"{socket.gethostname()}/{_pid_namespace()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"


def holder_died_here(holder: str) -> bool:
    """Whether ``holder`` (a :func:`replica_token`) was a process of this host and PID namespace
    that no longer runs. False whenever that cannot be known (another host, another container,
    a token given with --group-instance-id): then the lease is waited out."""
    host, namespace, pid, _ = ([*holder.split("/"), "", "", ""])[:4]
    if not (namespace and pid.isdigit() and host == socket.gethostname() and namespace == _pid_namespace()):
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, owned by another user
        return False
    return False


class LearnerRole:
    """Whether this replica learns now, and the lease that says so.

    ``role`` is the deployment's ``--role``: ``both`` (decide and learn), ``scorer`` (decide
    only) or ``learner`` (learn only).
    """

    def __init__(self, role: str, lease: LearnerLease | None, health: Health, metrics: Metrics) -> None:
        self.role = role
        self.lease = lease
        self.health = health
        self.metrics = metrics
        self.learning = False
        self.keeper: asyncio.Task[None] | None = None  # renews the lease while we hold it

    @property
    def may_learn(self) -> bool:
        return self.role != "scorer"

    @property
    def decides(self) -> bool:
        return self.role != "learner"

    def fence(self) -> tuple[str, bytes] | None:
        """What a store write must check to land only while we hold the lease."""
        return None if self.lease is None else self.lease.fence()

    def start_learning(self) -> None:
        self.learning = True
        self.metrics.learner.set(1)

    def deposed(self) -> None:
        """Another replica holds the lease now: stop learning here."""
        self.learning = False
        self.metrics.learner.set(0)

    async def regain(self, nobody_learned: Callable[[], Awaitable[bool]]) -> bool:
        """A fenced write found the lease not ours. If it merely expired while this replica was
        paused (frozen, a long pause, Redis away) and nobody took it, take it again and go on --
        unless ``nobody_learned()`` says another learner checkpointed meanwhile. Otherwise this
        replica is deposed; True when it learns on."""
        if self.lease is not None:
            try:
                if await self.lease.acquire() and await nobody_learned():
                    log.warning("the learner lease had expired unclaimed (this replica was paused): "
                                "taken again, learning goes on")
                    return True
            except STORE_ERRORS as exc:
                self.health.degrade("store", exc)
        self.deposed()
        return False

    async def try_lease(self) -> bool:
        """Take the learner lease if it is free (always True without a shared store)."""
        if self.lease is None:
            return True
        try:
            held = await self.lease.acquire()
            if not held:  # a learner killed on this host: no need to wait for its lease to expire
                holder = await self.lease.holder()
                if holder is not None and holder_died_here(holder) and await self.lease.take_from(holder):
                    log.warning("the learner lease was held by %s, which died on this host: taken over", holder)
                    held = True
        except STORE_ERRORS as exc:
            self.health.degrade("store", exc)
            return False
        if held:
            self.keeper = asyncio.create_task(self._keep(), name="lease")
        return held

    async def _keep(self) -> None:
        """Renew the lease until the service closes; raise when another replica took it."""
        assert self.lease is not None
        while True:
            await asyncio.sleep(self.lease.seconds / 3.0)
            if not await self._renew():
                raise LeaseLostError(
                    f"the learner lease {self.lease.key} was lost (another replica holds it): "
                    "this replica stops so that only one model learns; restart it"
                )

    async def _renew(self) -> bool:
        """Renew the lease; False only when another replica holds it.

        While Redis is down nobody can take the lease over, and nothing we write lands
        (checkpoints are fenced): the lease is renewed -- or taken again -- once it answers.
        """
        assert self.lease is not None
        try:
            return await self.lease.renew()
        except STORE_ERRORS as exc:
            self.health.degrade("store", exc)
            return True

    async def release(self) -> None:
        """Stop renewing and give the lease back, so a standby takes over at once."""
        if self.keeper is not None:
            self.keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, LeaseLostError):
                await self.keeper
        if self.learning and self.lease is not None:
            with contextlib.suppress(*STORE_ERRORS):
                await self.lease.release()
            self.deposed()
