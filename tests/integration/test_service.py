"""`streamer run` end to end against a real Tansu broker and a real Redis (no mocks)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from streamer.replay import Annotator, LabelledStream
from streamer.wire import encode_item, encode_label
from tests.integration.harness import ServiceProcess, annotate, consume_all, produce, sea_stream

pytestmark = pytest.mark.integration

BUDGET = 0.05


@pytest.fixture(scope="module")
def stream() -> LabelledStream:
    """A learnable binary stream: the first 8,000 items of SEA (before its drift)."""
    return sea_stream(8000, seed=7)


def _items(stream: LabelledStream, start: int = 0, stop: int | None = None):
    stop = len(stream) if stop is None else stop
    return [(stream.ids[i].encode(), encode_item(id=stream.ids[i], features=stream.X[i]))
            for i in range(start, stop)]


async def _wait(service: ServiceProcess, predicate, timeout: float, what: str):
    return await asyncio.to_thread(service.wait_for, predicate, timeout, what)


async def test_the_loop_holds_the_budget_joins_every_label_and_learns(
    kafka, topics, redis_url, redis_prefix, stream, tmp_path: Path
) -> None:
    service = ServiceProcess(kafka.bootstrap_servers, {
        **topics, "budget": BUDGET, "redis-url": redis_url, "redis-prefix": redis_prefix, "seed": 1,
    }, tmp_path / "service.log")
    await asyncio.to_thread(service.start)
    try:
        annotator = Annotator(stream.truth, delay=0.05)
        stop = asyncio.Event()
        annotating = asyncio.create_task(annotate(kafka.bootstrap_servers, topics, annotator, stop))
        # produce in slices so labels come back while items still flow, as in production
        for start in range(0, len(stream), 250):
            await produce(kafka.bootstrap_servers, topics["items-topic"], _items(stream, start, start + 250))
            await asyncio.sleep(0.1)
        status = await _wait(service, lambda s: s["items_seen"] >= len(stream), 90, "all items decided")
        await _wait(service, lambda s: sum(s["join_outcomes"].values()) >= annotator.sent > 0
                    and annotator.sent == len(annotator.answered), 60, "all labels counted")
        stop.set()
        await annotating
        status = service.status()

        requests = await consume_all(kafka.bootstrap_servers, topics["label-requests-topic"],
                                     expect=status["label_requests"])
        predictions = await consume_all(kafka.bootstrap_servers, topics["predictions-topic"],
                                        expect=len(stream))
        code, metrics = service.get("/metrics")
    finally:
        exit_code = await asyncio.to_thread(service.stop)

    share = len({r["id"] for r in requests}) / len(stream)
    assert abs(share - BUDGET) <= 0.1 * BUDGET, f"asked {share:.4f} of items, budget {BUDGET}"
    # every label sent is counted in exactly one join outcome, and all of them joined
    assert sum(status["join_outcomes"].values()) == annotator.sent
    assert status["join_outcomes"]["joined"] == annotator.sent == status["labels_applied"]
    # a learnable stream: prequential accuracy well above chance, and on the second half
    # (once the model had labels) well above always predicting the majority class
    truth = stream.truth
    hits = {p["id"]: p["prediction"] == truth[p["id"]] for p in predictions}
    accuracy = sum(hits.values()) / len(hits)
    later = [hits[i] for i in stream.ids[len(stream) // 2:]]
    majority = max((stream.y == c).mean() for c in set(stream.y.tolist()))
    assert accuracy > 0.65, f"prequential accuracy {accuracy:.3f} over all items"
    assert sum(later) / len(later) > majority + 0.1, f"second half {sum(later) / len(later):.3f}, majority class {majority:.3f}"
    # label requests carry what an annotation tool needs
    first = requests[0]
    assert {"id", "features", "prediction", "proba", "scores", "reason", "model_version",
            "requested_at"} <= first.keys()
    assert code == 200 and b"streamer_items_total 8000.0" in metrics
    assert status["budget"] == BUDGET and status["model_version"] >= 1
    assert exit_code == 0


async def test_malformed_messages_land_in_dead_letters_and_the_service_keeps_going(
    kafka, topics, redis_url, redis_prefix, stream, tmp_path: Path
) -> None:
    service = ServiceProcess(kafka.bootstrap_servers, {**topics, "redis-url": redis_url, "redis-prefix": redis_prefix},
                             tmp_path / "service.log")
    await asyncio.to_thread(service.start)
    d = stream.X.shape[1]
    bad_items = [
        b"not json at all",
        b'{"features": [1.0, 2.0, 3.0]}',  # no id
        b'{"id": 42, "features": [1.0, 2.0, 3.0]}',  # id not a string
        orjson.dumps({"id": "short", "features": [1.0] * (d - 1)}),
        b'{"id": "inf", "features": [1e999, 1.0, 2.0]}',
        b'{"id": "text", "features": ["a", "b", "c"]}',
        b"\xff\xfe garbage bytes",
    ]
    try:
        good = _items(stream, 0, 50)
        # the first items fix the feature schema; then garbage in between good items
        await produce(kafka.bootstrap_servers, topics["items-topic"], good[:10])
        await _wait(service, lambda s: s["items_seen"] >= 10, 30, "first items decided")
        mixed = [good[10], *[(b"bad", v) for v in bad_items], *good[11:]]
        await produce(kafka.bootstrap_servers, topics["items-topic"], mixed)
        await produce(kafka.bootstrap_servers, topics["labels-topic"], [
            (b"l1", b"{broken"),
            (b"l2", b'{"id": "x", "label": [1, 2]}'),
            (b"l3", b'{"label": 1}'),
            (b"l4", encode_label(id="never-requested", label=1)),
        ])
        status = await _wait(service, lambda s: s["items_seen"] >= 50
                             and sum(s["join_outcomes"].values()) >= 4, 60, "all messages handled")
        letters = await consume_all(kafka.bootstrap_servers, topics["dead-letters-topic"],
                                    expect=len(bad_items) + 3)
        alive = service.get("/healthz")[0]
    finally:
        exit_code = await asyncio.to_thread(service.stop)

    assert status["items_seen"] == 50  # no good item behind a bad one was lost
    assert status["join_outcomes"]["invalid"] == 3 and status["join_outcomes"]["unknown"] == 1
    assert len(letters) == len(bad_items) + 3
    for letter in letters:
        assert letter["source_topic"] in (topics["items-topic"], topics["labels-topic"])
        assert letter["error"] and isinstance(letter["offset"], int) and "raw" in letter
    assert alive == 200 and exit_code == 0


async def test_a_restarted_service_resumes_from_committed_offsets(
    kafka, topics, redis_url, redis_prefix, stream, tmp_path: Path
) -> None:
    flags = {**topics, "redis-url": redis_url, "redis-prefix": redis_prefix}
    first = ServiceProcess(kafka.bootstrap_servers, flags, tmp_path / "first.log")
    await asyncio.to_thread(first.start)
    try:
        await produce(kafka.bootstrap_servers, topics["items-topic"], _items(stream, 0, 3000))
        await _wait(first, lambda s: s["items_seen"] >= 3000, 60, "first 3000 items decided")
    finally:
        assert await asyncio.to_thread(first.stop) == 0  # SIGTERM: clean shutdown, offsets committed

    await produce(kafka.bootstrap_servers, topics["items-topic"], _items(stream, 3000, 4000))
    second = ServiceProcess(kafka.bootstrap_servers, flags, tmp_path / "second.log")
    await asyncio.to_thread(second.start)
    try:
        status = await _wait(second, lambda s: s["items_seen"] >= 1000, 60, "new items decided")
        time.sleep(2)  # would it go on re-deciding the old items?
        status = second.status()
    finally:
        await asyncio.to_thread(second.stop)
    assert status["items_seen"] == 1000, f"the restarted service decided {status['items_seen']} items"
    predictions = await consume_all(kafka.bootstrap_servers, topics["predictions-topic"], expect=4000)
    assert len({p["id"] for p in predictions}) == 4000


def test_invalid_settings_fail_at_start_with_a_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "streamer.cli", "run", "--budget", "1.5",
         "--bootstrap-servers", "nohostport", "--redis-url", "http://user:hunter2@x"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "--budget" in result.stderr and "--bootstrap-servers" in result.stderr
    assert "hunter2" not in result.stderr  # secrets never printed


def test_an_unreachable_broker_is_a_clear_error_not_a_traceback() -> None:
    import subprocess
    import sys

    from streamer.broker import free_port

    result = subprocess.run(
        [sys.executable, "-m", "streamer.cli", "run", "--bootstrap-servers",
         f"127.0.0.1:{free_port()}", "--metrics-port", "0"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert "cannot use Kafka at 127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr
