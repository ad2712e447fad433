"""Faust events as the runtime reads them, and how a batch is held back from Faust's commits."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import ConsumerRecord

if TYPE_CHECKING:
    from faust.types import AppT, EventT
    from faust.types.tuples import Message

__all__ = ["as_record", "hold", "run_batch"]

log = logging.getLogger("streamer.faust_sampling")


async def run_batch(app: AppT, events: Sequence[EventT], work: Awaitable[Any]) -> None:
    """Await one batch's ``work``; if it fails, :func:`hold` its events so Faust never commits
    past them, and crash ``app`` (a restarted worker reads them again). A batch cancelled
    midway (the worker stopping) is held too, without the crash."""
    try:
        await work
    except asyncio.CancelledError:  # stopping mid-batch: its outputs may not all be delivered
        hold(events)
        raise
    except Exception as exc:
        hold(events)
        log.exception("sampling agent failed (%d messages held, not acknowledged); stopping "
                      "the app so that a restarted worker reads them again", len(events))
        await app.crash(exc)
        raise


def hold(events: Sequence[EventT]) -> None:
    """Keep ``events`` from ever being acknowledged, so Faust commits no offset past them.

    ``stream.take_events`` acknowledges a batch's events when the agent asks for the next
    batch, whether or not the batch was processed; one more reference on each message keeps
    that acknowledgement from being the last one.
    """
    for event in events:
        event.message.incref()


def as_record(message: Message) -> ConsumerRecord:
    """A Faust message as the aiokafka record the service reads (timestamp in milliseconds)."""
    stamp = message.timestamp
    headers = message.headers or ()
    if isinstance(headers, Mapping):
        headers = list(headers.items())
    return ConsumerRecord(
        topic=message.topic, partition=message.partition, offset=message.offset,
        timestamp=round((time.time() if stamp is None else stamp) * 1000.0),
        timestamp_type=message.timestamp_type, key=message.key, value=message.value,
        checksum=message.checksum, serialized_key_size=message.serialized_key_size,
        serialized_value_size=message.serialized_value_size, headers=headers,
    )
