"""``streamer feed sensors``: replay a CSV or JSON Lines file, or stdin, onto the items topic.

Rows are read (:mod:`streamer.feed.row_files`) and encoded in a background thread
(:mod:`streamer.feed.rows` says which columns are what), paced at the file's own timestamps,
at a fixed rate, or sent as fast as the broker takes them, in record batches; the feed ends
when every item is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import orjson
from aiokafka import AIOKafkaProducer

from streamer.feed.background import in_background
from streamer.feed.pacing import Pacer
from streamer.feed.progress import Progress
from streamer.feed.report import FeedReport
from streamer.feed.row_files import count_lines, read_rows
from streamer.feed.rows import BadRow, RowSpec, default_stream_name
from streamer.feed.sending import Outgoing, Skipped, send_all
from streamer.feed.sink import ItemSink
from streamer.wire import FLOAT32, JSON, encode_item, normalize_content_type

__all__ = ["encoded_rows", "feed_sensors", "is_live"]


def is_live(source: str | Path) -> bool:
    """Whether rows arrive as they happen (stdin from a pipe or terminal, a FIFO), not from a file."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode if str(source) == "-" else os.stat(source).st_mode
    except (OSError, ValueError):
        return str(source) == "-"
    return not stat.S_ISREG(mode)


def encoded_rows(
    source: str | Path,
    spec: RowSpec,
    fmt: str | None = None,
    content_type: str = JSON,
    stop: threading.Event | None = None,
) -> Iterator[Outgoing | Skipped]:
    """Each row of ``source`` as an encoded item, or the reason it cannot be one."""
    kind = normalize_content_type(content_type)
    dumps = orjson.dumps
    for row in read_rows(source, spec, fmt, stop):
        if isinstance(row, BadRow):
            yield Skipped(str(row))
            continue
        try:
            if kind == JSON and type(row.features) is list and row.payload_uri is None and row.meta is None:
                # what encode_item writes, without its per-item option handling (a third of the cost)
                item = {"id": row.id, "features": row.features}
                if row.ts is not None:
                    item["ts"] = row.ts
                item["stream"] = row.stream or spec.stream
                value = dumps(item)
            elif kind == FLOAT32:  # features only: the id is the key, ts paces but is not sent
                value = encode_item(row.id, row.features, content_type=FLOAT32)
            else:
                value = encode_item(row.id, row.features, ts=row.ts, stream=row.stream or spec.stream,
                                    payload_uri=row.payload_uri, meta=row.meta, content_type=content_type)
        except ValueError as exc:
            yield Skipped(f"line {row.line}: {exc}")
            continue
        yield Outgoing(row.id.encode(), value, row.ts, f"line {row.line}")


async def feed_sensors(
    source: str | Path,
    producer: AIOKafkaProducer,
    topic: str,
    *,
    spec: RowSpec | None = None,
    fmt: str | None = None,
    rate: float | None = None,
    speed: float | None = None,
    content_type: str = JSON,
    skip_bad: bool = False,
    max_items: int | None = None,
    max_request_size: int = 1_048_576,
    progress_out: TextIO | None = sys.stderr,
    stop: asyncio.Event | None = None,
) -> FeedReport:
    """Send every row of ``source`` to ``topic`` and wait until all are acknowledged.

    Parameters
    ----------
    source
        A CSV or JSON Lines file (``.gz`` or not), or ``-`` for stdin.
    producer
        A started producer.
    topic
        The items topic.
    spec
        Which columns are what (default: stream named after the file, ``label`` dropped).
    fmt
        ``csv`` or ``jsonl`` (default: from the name or the first character).
    rate, speed
        Pace: ``rate`` items/s, or the rows' own ``ts`` ``speed`` times faster; neither =
        as fast as possible.
    content_type
        Item format (JSON, msgpack, or raw float32: features only).
    skip_bad
        Skip bad rows, count them and list the first ten, instead of stopping at the first.
    max_items
        Stop after this many items.
    max_request_size
        The producer's request limit (larger items are bad rows).
    progress_out
        Where the progress line goes (None: nowhere).
    stop
        Set it to end the feed early, cleanly (what was read is sent and acknowledged).

    Returns
    -------
    FeedReport
        Items sent and acknowledged, rows skipped, time taken.

    Raises
    ------
    FeedError
        A missing file, a header that cannot work, a bad row (without ``skip_bad``), a row
        without ``ts`` when pacing by it, or a batch the broker failed.
    """
    spec = spec or RowSpec(stream=default_stream_name(source))
    pacer = Pacer(rate=rate, speed=speed)
    total = count_lines(source, fmt)
    if max_items is not None:
        total = min(total, max_items) if total is not None else max_items
    report = FeedReport(source="stdin" if str(source) == "-" else str(source), topic=topic)
    sink = ItemSink(producer, topic, content_type=content_type, max_request_size=max_request_size)
    batches = in_background(lambda halt: encoded_rows(source, spec, fmt, content_type, halt),
                            live=is_live(source))
    async with contextlib.aclosing(batches):
        return await send_all(batches, sink, report, pacer=pacer,
                              progress=Progress(total, progress_out), skip_bad=skip_bad,
                              max_items=max_items, stop=stop)
