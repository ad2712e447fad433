"""``streamer.faust_sampling.sampling_agent`` in a real Faust worker, against the real broker and Redis.

One run (module fixture) of the user's app ``faust_app.py`` as a ``faust worker`` subprocess:
3,000 labelled items (SEA, before its drift) with malformed ones among them are produced in
slices while a simulated annotator answers the label requests; then the worker is stopped
with SIGTERM. Each test states one thing the run must show.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from aiokafka import AIOKafkaConsumer

pytest.importorskip("faust", reason="the Faust integration needs faust-streaming: "
                    "pip install -e '.[faust]'")

from streamer.config import Settings  # noqa: E402
from streamer.kafka.client import ensure_topics  # noqa: E402
from streamer.replay import Annotator, LabelledStream  # noqa: E402
from streamer.wire import encode_item  # noqa: E402
from tests.integration.harness import (  # noqa: E402
    ServiceProcess,
    annotate,
    consume_all,
    produce,
    sea_stream,
)

pytestmark = pytest.mark.integration

APP = Path(__file__).with_name("faust_app.py")
N_ITEMS = 3000
BUDGET = 0.1
PARTITIONS = 4
BAD_ITEMS = [
    b"not json at all",
    b'{"features": [1.0, 2.0, 3.0]}',  # no id
    orjson.dumps({"id": "short", "features": [1.0, 2.0]}),  # one feature missing
    b"\xff\xfe garbage bytes",
]


class FaustWorker(ServiceProcess):
    """``python faust_app.py worker``: the user's app, ready when ``/readyz`` answers 200."""

    def __init__(self, config: dict[str, Any], log_path: Path) -> None:
        super().__init__("unused", {}, log_path)
        self.args = [sys.executable, str(APP), "worker", "--loglevel", "warn"]
        self.config = {**config, "http_port": self.port}

    def start(self, ready_timeout: float = 90.0) -> ServiceProcess:
        with pytest.MonkeyPatch.context() as env:  # the app reads its configuration from here
            env.setenv("SAMPLING_APP", json.dumps(self.config))
            return super().start(ready_timeout)


def _deployment(bootstrap: str, redis_url: str, prefix: str,
                n_features: int) -> tuple[dict[str, str], dict[str, Any]]:
    """Fresh topics (created, 4 partitions) and the app's configuration for them."""
    tag = uuid.uuid4().hex[:8]
    topics = {name: f"{name.removesuffix('-topic')}-{tag}" for name in (
        "items-topic", "label-requests-topic", "labels-topic", "predictions-topic",
        "dead-letters-topic")}
    asyncio.run(ensure_topics(Settings(bootstrap_servers=bootstrap, topic_partitions=PARTITIONS),
                              list(topics.values())))
    config = {
        "bootstrap": bootstrap, "group": f"faust-sampling-{tag}", "partitions": PARTITIONS,
        "items": topics["items-topic"], "labels": topics["labels-topic"],
        "requests": topics["label-requests-topic"], "predictions": topics["predictions-topic"],
        "dead_letters": topics["dead-letters-topic"], "redis_url": redis_url,
        "settings": {"budget": BUDGET, "seed": 1, "n_features": n_features, "redis_prefix": prefix},
    }
    return topics, config


@pytest.fixture(scope="module")
def stream() -> LabelledStream:
    """A learnable binary stream: the first 3,000 items of SEA (before its drift)."""
    return sea_stream(N_ITEMS, seed=7)


def _items(stream: LabelledStream) -> list[tuple[bytes, bytes]]:
    return [(stream.ids[i].encode(), encode_item(id=stream.ids[i], features=stream.X[i]))
            for i in range(len(stream))]


@dataclass
class Run:
    """What the run left behind: the outputs, the worker's last status and metrics."""

    stream: LabelledStream
    topics: dict[str, str]
    status: dict[str, Any]
    metrics: str
    predictions: list[dict[str, Any]]
    requests: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]
    annotator: Annotator
    applied_in_redis: int
    started: float
    stopped: float
    exit_code: int


async def _produce_in_slices(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]]) -> None:
    for start in range(0, len(items), 250):  # slices: labels come back while items flow
        await produce(bootstrap, topic, items[start:start + 250])
        await asyncio.sleep(0.1)


async def _wait(worker: FaustWorker, predicate: Any, timeout: float, what: str) -> dict[str, Any]:
    return await asyncio.to_thread(worker.wait_for, predicate, timeout, what)


async def _run_scenario(worker: FaustWorker, bootstrap: str, topics: dict[str, str],
                        stream: LabelledStream) -> tuple[dict[str, Any], str, Annotator]:
    await asyncio.to_thread(worker.start, 90.0)
    annotator = Annotator(stream.truth, delay=0.05)
    stop = asyncio.Event()
    annotating = asyncio.create_task(annotate(bootstrap, topics, annotator, stop))
    try:
        items = _items(stream)
        items[100:100] = [(b"bad", value) for value in BAD_ITEMS]
        await _produce_in_slices(bootstrap, topics["items-topic"], items)
        await _wait(worker, lambda s: s["items_seen"] + s["dead_letters"] >= N_ITEMS + len(BAD_ITEMS),
                    90, "every item decided or dead-lettered")
        # every request read and answered, and every answer counted (a busy machine lets the
        # annotator's reading lag behind the service)
        await _wait(worker, lambda s: sum(s["join_outcomes"].values()) >= annotator.sent > 0
                    and annotator.sent == len(annotator.answered) >= s["label_requests"], 60,
                    "every label counted")
    finally:
        stop.set()
        await annotating
    # the annotator's last batch may have been sent while it stopped: counted too before reading
    status = await _wait(worker, lambda s: sum(s["join_outcomes"].values()) >= annotator.sent
                         and s["labels_applied"] >= s["join_outcomes"].get("joined", 0), 60,
                         "the last labels counted and learned")
    return status, worker.get("/metrics")[1].decode(), annotator


@pytest.fixture(scope="module")
def run(kafka, redis_url: str, stream: LabelledStream,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    bootstrap = kafka.bootstrap_servers
    workdir = tmp_path_factory.mktemp("faust")
    prefix = f"test-faust-{uuid.uuid4().hex[:8]}"
    topics, config = _deployment(bootstrap, redis_url, prefix, stream.X.shape[1])
    worker = FaustWorker(config, workdir / "worker.log")
    started = time.time()
    try:
        status, metrics, annotator = asyncio.run(_run_scenario(worker, bootstrap, topics, stream))
    finally:
        exit_code = worker.stop()
    stopped = time.time()

    async def outputs() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(*(
            consume_all(bootstrap, topics[name], expect=expect) for name, expect in (
                ("predictions-topic", N_ITEMS), ("label-requests-topic", status["label_requests"]),
                ("dead-letters-topic", len(BAD_ITEMS)))
        ))

    predictions, requests, dead_letters = asyncio.run(outputs())
    client = redis.Redis.from_url(redis_url)
    try:
        applied = sum(1 for _ in client.scan_iter(match=f"{{{prefix}}}:a:*", count=1000))
        for key in client.scan_iter(match=f"{{{prefix}}}:*", count=1000):
            client.delete(key)
    finally:
        client.close()
    yield Run(stream, topics, status, metrics, predictions, requests, dead_letters, annotator,
              applied, started, stopped, exit_code)


def test_every_item_gets_exactly_one_prediction(run: Run) -> None:
    counts = Counter(p["id"] for p in run.predictions)
    assert set(counts) == set(run.stream.ids)
    assert [item for item, n in counts.items() if n > 1] == []
    assert set(run.predictions[0]) == {"id", "prediction", "confidence", "model_version"}


def test_label_requests_carry_the_contract_fields(run: Run) -> None:
    assert run.requests
    for request in run.requests:
        assert {"id", "features", "prediction", "proba", "scores", "reason", "model_version",
                "requested_at"} <= request.keys()
        assert request["id"] in run.stream.truth
        assert len(request["features"]) == run.stream.X.shape[1]
        assert run.started <= request["requested_at"] <= run.stopped


def test_the_query_share_holds_the_budget(run: Run) -> None:
    share = len({r["id"] for r in run.requests}) / N_ITEMS
    assert abs(share - BUDGET) <= 0.1 * BUDGET, f"asked {share:.4f} of items, budget {BUDGET}"
    assert run.status["label_requests"] == len(run.requests)


def test_malformed_items_are_dead_letters_with_their_reason(run: Run) -> None:
    assert len(run.dead_letters) == len(BAD_ITEMS) == run.status["dead_letters"]
    assert {letter["source_topic"] for letter in run.dead_letters} == {run.topics["items-topic"]}
    for letter in run.dead_letters:
        assert letter["error"] and letter["reason"] and isinstance(letter["offset"], int)
        assert "raw" in letter


def test_every_label_is_joined_once_and_learned(run: Run) -> None:
    outcomes = run.status["join_outcomes"]
    assert run.annotator.sent == len(run.requests)  # every request answered once
    assert outcomes["joined"] == run.annotator.sent == run.status["labels_applied"]
    assert sum(outcomes.values()) == outcomes["joined"]
    assert run.applied_in_redis == outcomes["joined"]  # the store is the service's Redis store
    versions = [r["model_version"] for r in run.requests]
    assert run.status["model_version"] > min(versions) and max(versions) > min(versions)


def test_a_learnable_stream_is_predicted_well_above_chance(run: Run) -> None:
    truth, second_half = run.stream.truth, set(run.stream.ids[N_ITEMS // 2:])
    later = [p["prediction"] == truth[p["id"]] for p in run.predictions if p["id"] in second_half]
    majority = max((run.stream.y == c).mean() for c in set(run.stream.y.tolist()))
    assert sum(later) / len(later) > majority + 0.05


def test_the_metrics_endpoint_counts_items_labels_and_dead_letters(run: Run) -> None:
    joined = run.status["join_outcomes"]["joined"]
    assert f"streamer_items_total {N_ITEMS}.0" in run.metrics
    assert f'streamer_labels_total{{outcome="joined"}} {joined}.0' in run.metrics
    assert f"streamer_label_requests_total {len(run.requests)}.0" in run.metrics
    dead = [line for line in run.metrics.splitlines()
            if line.startswith('streamer_dead_letters_total{') and 'source="items"' in line]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in dead) == len(BAD_ITEMS)


def test_the_worker_stops_cleanly_on_sigterm(run: Run) -> None:
    assert run.exit_code == 0


async def _predicted(bootstrap: str, topic: str, ids: set[str], timeout: float) -> Counter[str]:
    """How often each item was predicted, read until every one of ``ids`` was (or timeout)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=10)
    await consumer.start()
    counts: Counter[str] = Counter()
    try:
        deadline = time.monotonic() + timeout
        while not ids <= counts.keys() and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                counts.update(orjson.loads(r.value)["id"] for r in records)
    finally:
        await consumer.stop()
    return counts


def test_a_worker_killed_midway_loses_no_item(kafka, redis_url: str, redis_prefix: str,
                                              stream: LabelledStream, tmp_path: Path) -> None:
    bootstrap = kafka.bootstrap_servers
    topics, config = _deployment(bootstrap, redis_url, redis_prefix, stream.X.shape[1])
    first = FaustWorker(config, tmp_path / "first.log")
    second = FaustWorker(config, tmp_path / "second.log")

    async def scenario() -> tuple[int, Counter[str]]:
        await asyncio.to_thread(first.start)
        feeding = asyncio.create_task(_produce_in_slices(bootstrap, topics["items-topic"], _items(stream)))
        status = await _wait(first, lambda s: s["items_seen"] >= N_ITEMS // 4, 60, "a quarter decided")
        first.kill9()  # no handler runs: the offsets since Faust's last commit stay uncommitted
        await asyncio.to_thread(second.start)
        await feeding
        predicted = await _predicted(bootstrap, topics["predictions-topic"], set(stream.ids), 90)
        return status["items_seen"], predicted

    try:
        seen_by_first, predicted = asyncio.run(scenario())
    finally:
        exit_codes = [worker.stop() for worker in (first, second) if worker.process is not None]
    assert seen_by_first < N_ITEMS  # the kill came midway
    assert set(predicted) == set(stream.ids)  # each item predicted, some twice (at least once)
    assert exit_codes[-1] == 0  # the second worker stopped cleanly


def test_an_unreachable_store_stops_the_worker_saying_what_to_check(kafka, tmp_path: Path) -> None:
    _, config = _deployment(kafka.bootstrap_servers, "redis://127.0.0.1:1/0", "unused", 3)
    worker = FaustWorker(config, tmp_path / "worker.log")
    try:
        with pytest.raises(RuntimeError, match=r"exited with 1") as failure:
            worker.start(60.0)
    finally:
        worker.stop()
    assert "cannot reach Redis at redis://127.0.0.1:1/0" in str(failure.value)
