"""Consumer groups: timeouts that suit the broker, and a watch that says when a group joined.

On the embedded broker (Tansu) a joining member is held in JoinGroup for half its session
timeout, and a member that died is only evicted after about 1.8 session timeouts (Tansu's group
coordinator, ``tansu-broker/src/coordinator/group/administrator.rs``; nothing there can be
configured). With aiokafka's 10 s a new group waits 5 s for its partitions and a restart after
``kill -9`` waits 18 s; with 2 s they take about 1 s and 4 s. Apache Kafka refuses sessions
below its ``group.min.session.timeout.ms`` (6 s by default), so the short session is used only
where the broker says it is Tansu.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

__all__ = [
    "EMBEDDED_CLUSTER_ID", "EMBEDDED_SESSION_TIMEOUT_MS", "KAFKA_SESSION_TIMEOUT_MS",
    "GroupWatch", "broker_group_timeouts", "group_timeouts", "is_embedded_broker",
    "start_group_consumer",
]

EMBEDDED_CLUSTER_ID = "tansu_cluster"  # what Tansu reports unless started with --cluster-id
EMBEDDED_SESSION_TIMEOUT_MS = 2_000
KAFKA_SESSION_TIMEOUT_MS = 10_000
_WAITING_LOG_SECONDS = 5.0  # while a group has no partitions, say so this often


async def is_embedded_broker(**client: Any) -> bool:
    """Whether the cluster at ``bootstrap_servers`` is the embedded broker (Tansu).

    ``client`` are aiokafka connection arguments (:func:`streamer.kafka.client.client_kwargs`).
    A broker that cannot describe its cluster (Kafka before 2.8) counts as Apache Kafka.
    """
    admin = AIOKafkaAdminClient(**client)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
    except KafkaError:
        return False
    finally:
        await admin.close()
    return cluster.get("cluster_id") == EMBEDDED_CLUSTER_ID


def group_timeouts(session_timeout_ms: int | None, embedded: bool) -> dict[str, int]:
    """aiokafka's ``session_timeout_ms`` and ``heartbeat_interval_ms``: the given session, else
    2 s on the embedded broker and 10 s elsewhere; heartbeats four times per session.

    >>> group_timeouts(None, embedded=True)
    {'session_timeout_ms': 2000, 'heartbeat_interval_ms': 500}
    >>> group_timeouts(None, embedded=False)
    {'session_timeout_ms': 10000, 'heartbeat_interval_ms': 2500}
    """
    if session_timeout_ms is None:
        session_timeout_ms = EMBEDDED_SESSION_TIMEOUT_MS if embedded else KAFKA_SESSION_TIMEOUT_MS
    return {"session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": max(100, session_timeout_ms // 4)}


async def broker_group_timeouts(session_timeout_ms: int | None, client: dict[str, Any]) -> dict[str, int]:
    """:func:`group_timeouts` for the broker at ``client`` (asked only when no session is given)."""
    embedded = session_timeout_ms is None and await is_embedded_broker(**client)
    return group_timeouts(session_timeout_ms, embedded)


class GroupWatch(ConsumerRebalanceListener):
    """Logs "waiting for partitions" until a consumer's group assigns it some, then "joined
    after N s"; keeps what it holds for ``/status``.

    Pass it as the ``listener`` of ``consumer.subscribe`` and call :meth:`started` right before
    ``consumer.start()``.
    """

    def __init__(self, name: str, group: str | None, topics: Iterable[str],
                 log: logging.Logger | None = None,
                 before_revoke: Callable[[list[TopicPartition]], Awaitable[None]] | None = None) -> None:
        self.name = name
        # awaited before partitions move (e.g. commit what is done, so their next owner does not
        # redo it): the rebalance waits for it
        self.before_revoke = before_revoke
        self.group = group
        self.topics = list(topics)
        self.log = log or logging.getLogger(__name__)
        self.partitions: list[TopicPartition] = []
        self.assigned_at: float | None = None  # wall clock of the last assignment
        self.joined_after: float | None = None  # seconds from start to the first assignment
        self.assignments = 0
        self._started: float | None = None
        self._waiting: asyncio.Task[None] | None = None

    def started(self) -> None:
        """The consumer started: log that it waits, and again every few seconds until it joins."""
        self._started = time.monotonic()
        self.log.info("%s: waiting for partitions of %s (group %s)", self.name,
                      ", ".join(self.topics), self.group)
        self._waiting = asyncio.get_running_loop().create_task(self._remind())

    def assigned_manually(self, partitions: Iterable[TopicPartition]) -> None:
        """A consumer without a group took ``partitions`` itself (no join to wait for)."""
        self._record(list(partitions))
        self.log.info("%s: reading %s (assigned directly, no group join)", self.name,
                      _names(self.partitions))

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if self.before_revoke is not None:
            await self.before_revoke(list(revoked))
        gone = set(revoked)
        self.partitions = [tp for tp in self.partitions if tp not in gone]

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        first = self.joined_after is None
        self._record(list(assigned))
        if first and self._started is not None:
            self.joined_after = round(time.monotonic() - self._started, 3)
            self.log.info("%s: joined group %s after %.1f s: %s", self.name, self.group,
                          self.joined_after, _names(self.partitions))
        else:
            self.log.info("%s: group %s rebalanced: now %s", self.name, self.group,
                          _names(self.partitions) or "no partitions")
        if self._waiting is not None:
            self._waiting.cancel()

    def stop(self) -> None:
        if self._waiting is not None:
            self._waiting.cancel()

    def status(self) -> dict[str, Any]:
        """What ``/status`` shows: the group, its partitions and the time since they were given."""
        return {
            "group": self.group,
            "topics": self.topics,
            "partitions": _names(self.partitions),
            "joined_after_s": self.joined_after,
            "assignments": self.assignments,
            "since_assignment_s": None if self.assigned_at is None
            else round(time.time() - self.assigned_at, 3),
        }

    def _record(self, partitions: list[TopicPartition]) -> None:
        self.partitions = sorted(partitions)
        self.assigned_at = time.time()
        self.assignments += 1

    async def _remind(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while self.joined_after is None:
                await asyncio.sleep(_WAITING_LOG_SECONDS)
                if self.joined_after is None and self._started is not None:
                    self.log.info(
                        "%s: still waiting for partitions of group %s after %.0f s (a new member "
                        "waits for the group's rebalance; after a crash, for the dead member's "
                        "session to time out)", self.name, self.group,
                        time.monotonic() - self._started)


async def start_group_consumer(
    topics: list[str], *, group_id: str, name: str, client: dict[str, Any],
    log: logging.Logger | None = None, session_timeout_ms: int | None = None, **options: Any,
) -> tuple[AIOKafkaConsumer, GroupWatch]:
    """Start a consumer in ``group_id`` with the broker's timeouts and a :class:`GroupWatch`.

    ``client``: aiokafka connection arguments; ``options``: any other consumer argument. The
    consumer is started, not yet joined: the watch logs "waiting" now and "joined" later;
    ``watch.partitions`` tells what it holds.
    """
    consumer = AIOKafkaConsumer(group_id=group_id, **client, **options,
                                **await broker_group_timeouts(session_timeout_ms, client))
    watch = GroupWatch(name, group_id, topics, log)
    consumer.subscribe(topics, listener=watch)
    watch.started()  # before start(): aiokafka's start() may already wait for the first join
    await consumer.start()
    return consumer, watch


def _names(partitions: Iterable[TopicPartition]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in partitions]
