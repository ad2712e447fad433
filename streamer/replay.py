"""Replay a labelled stream through Kafka: the items producer and a simulated annotator.

Both are used by ``make demo`` and by the integration tests, and are CLI commands
(``streamer produce``, ``streamer annotate``) for docker-compose.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streamer.data import iter_csv_batches, synthetic_stream
from streamer.wire import encode_item, encode_label

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LabelledStream:
    """A whole stream in memory: ids, features and the ground truth."""

    name: str
    ids: list[str]
    X: np.ndarray
    y: np.ndarray
    source: Path | None = None  # the CSV it was read from; None = synthetic (seeded)
    seed: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def truth(self) -> dict[str, int]:
        return dict(zip(self.ids, self.y.tolist(), strict=True))


def load_stream(data: str | Path | None, max_items: int | None = None, seed: int = 0,
                synthetic_items: int = 20_000) -> LabelledStream:
    """Read a CSV(.gz) stream, or a river synthetic drifting stream when ``data`` is None."""
    if data is None:
        batches = synthetic_stream(max_items or synthetic_items, seed=seed)
        name = "synthetic-sea-drift"
    else:
        batches = iter_csv_batches(data, batch_size=4096)
        name = Path(data).name.split(".")[0]
    xs, ys = [], []
    count = 0
    for X, y, *_ in batches:
        xs.append(X)
        ys.append(np.asarray(y))
        count += len(X)
        if max_items is not None and count >= max_items:
            break
    X = np.vstack(xs)[:max_items]
    y = np.concatenate(ys)[:max_items]
    ids = [f"{name}-{i:07d}" for i in range(len(X))]
    return LabelledStream(name, ids, X, y, Path(data) if data is not None else None, seed)


async def produce_items(
    producer: AIOKafkaProducer,
    topic: str,
    stream: LabelledStream,
    rate: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Send every item of the stream at ``rate`` items/s (None = as fast as possible)."""
    sent = 0
    started = time.monotonic()
    chunk = 200 if rate is None else max(1, int(rate / 50))  # ~20 ms of items per step
    for start in range(0, len(stream), chunk):
        if stop is not None and stop.is_set():
            break
        futures = [
            await producer.send(
                topic, encode_item(id=stream.ids[i], features=stream.X[i]),
                key=stream.ids[i].encode(),
            )
            for i in range(start, min(start + chunk, len(stream)))
        ]
        await asyncio.gather(*futures)
        sent += len(futures)
        if on_progress is not None:
            on_progress(sent)
        if rate is not None:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
    return sent


@dataclass
class Annotator:
    """Answers label requests from the ground truth after ``delay`` seconds, like a person would.

    Every request is answered exactly once per id; requests for ids it has no truth for
    are counted in ``unknown``.
    """

    truth: dict[str, int]
    delay: float = 0.5
    sent: int = 0
    requests: int = 0
    unknown: int = 0
    answered: set[str] = field(default_factory=set)

    async def run(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        labels_topic: str,
        stop: asyncio.Event,
    ) -> None:
        queue: asyncio.Queue[tuple[float, str]] = asyncio.Queue()
        sender = asyncio.create_task(self._send(queue, producer, labels_topic, stop))
        import orjson

        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        self.requests += 1
                        try:
                            item_id = orjson.loads(record.value)["id"]
                        except (orjson.JSONDecodeError, KeyError, TypeError):
                            self.unknown += 1
                            continue
                        if item_id not in self.truth:
                            self.unknown += 1
                        elif item_id not in self.answered:
                            self.answered.add(item_id)
                            queue.put_nowait((time.monotonic() + self.delay, item_id))
        finally:
            await queue.join() if not sender.done() else None
            sender.cancel()

    async def _send(self, queue: asyncio.Queue[tuple[float, str]], producer: AIOKafkaProducer,
                    topic: str, stop: asyncio.Event) -> None:
        while True:
            due, item_id = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await producer.send_and_wait(
                topic, encode_label(id=item_id, label=self.truth[item_id], annotator="simulated"),
                key=item_id.encode(),
            )
            self.sent += 1
            queue.task_done()
