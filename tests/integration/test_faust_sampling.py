"""``streamer.faust.sampling_agent`` in a real Faust worker, against the real broker and Redis.

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

pytest.importorskip("faust", reason="the Faust integration needs faust-streaming: "
                    "pip install -e '.[faust]'")

from streamer.config import Settings  # noqa: E402
from streamer.kafka.client import ensure_topics  # noqa: E402
from streamer.kafka.codecs import encode_item  # noqa: E402
from streamer.replay import Annotator, LabelledStream, load_stream  # noqa: E402
from tests.integration.harness import ServiceProcess, annotate, consume_all, produce  # noqa: E402

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

    def __init__(self, log_path: Path) -> None:
        super().__init__("unused", {}, log_path)
        self.args = [sys.executable, str(APP), "worker", "--loglevel", "warn"]


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


async def _produce_with_bad_items(bootstrap: str, topic: str, stream: LabelledStream) -> None:
    items = [(stream.ids[i].encode(), encode_item(id=stream.ids[i], features=stream.X[i]))
             for i in range(len(stream))]
    items[100:100] = [(b"bad", value) for value in BAD_ITEMS]
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
        await _produce_with_bad_items(bootstrap, topics["items-topic"], stream)
        await _wait(worker, lambda s: s["items_seen"] + s["dead_letters"] >= N_ITEMS + len(BAD_ITEMS),
                    90, "every item decided or dead-lettered")
        await _wait(worker, lambda s: sum(s["join_outcomes"].values()) >= annotator.sent > 0
                    and annotator.sent == len(annotator.answered), 60, "every label counted")
    finally:
        stop.set()
        await annotating
    return worker.status(), worker.get("/metrics")[1].decode(), annotator


@pytest.fixture(scope="module")
def run(kafka, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    from streamer.demo import default_demo_data

    stream = load_stream(default_demo_data(), max_items=N_ITEMS, seed=7)
    tag = uuid.uuid4().hex[:8]
    topics = {name: f"{name.removesuffix('-topic')}-{tag}" for name in (
        "items-topic", "label-requests-topic", "labels-topic", "predictions-topic",
        "dead-letters-topic")}
    prefix = f"test-faust-{tag}"
    bootstrap = kafka.bootstrap_servers
    asyncio.run(ensure_topics(Settings(bootstrap_servers=bootstrap, topic_partitions=PARTITIONS),
                              list(topics.values())))
    workdir = tmp_path_factory.mktemp("faust")
    worker = FaustWorker(workdir / "worker.log")
    config = {
        "bootstrap": bootstrap, "group": f"faust-sampling-{tag}", "partitions": PARTITIONS,
        "items": topics["items-topic"], "labels": topics["labels-topic"],
        "requests": topics["label-requests-topic"], "predictions": topics["predictions-topic"],
        "dead_letters": topics["dead-letters-topic"], "redis_url": redis_url,
        "http_port": worker.port, "datadir": str(workdir / "{conf.id}-data"),
        "settings": {"budget": BUDGET, "seed": 1, "n_features": stream.X.shape[1],
                     "redis_prefix": prefix},
    }
    started = time.time()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SAMPLING_APP", json.dumps(config))
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
