"""`streamer feed sensors|video` against a real Tansu broker: what is fed is what is consumed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.integration.harness import ServiceProcess, consume_all

pytestmark = pytest.mark.integration


def require_av():
    return pytest.importorskip("av", reason="the video feeder needs PyAV (pip install 'streamer[video]')")


def feed(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamer.cli", "feed", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


async def records(bootstrap: str, topic: str, expect: int, timeout_s: float = 30.0) -> list[Any]:
    """Every record of ``topic`` (key, partition, offset and decoded value), from the start."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=10)
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(out) < expect and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                out += batch
        # anything beyond what was expected would be a duplicate: give it a moment to show
        for batch in (await consumer.getmany(timeout_ms=500)).values():
            out += batch
    finally:
        await consumer.stop()
    return out


def ts_ascend_within_each_partition(got: list[Any]) -> bool:
    by_partition: dict[int, list[float]] = {}
    for record in sorted(got, key=lambda r: (r.partition, r.offset)):
        by_partition.setdefault(record.partition, []).append(orjson.loads(record.value)["ts"])
    return all(ts == sorted(ts) for ts in by_partition.values())


def test_a_csv_is_fed_row_for_row_with_ids_features_and_ts(kafka, topics, tmp_path: Path) -> None:
    path = tmp_path / "plant.csv"
    rng = np.random.default_rng(3)
    values = rng.normal(size=(600, 3)).round(6)
    path.write_text("ts,temp,rpm,load,label\n" + "".join(
        f"{1000 + i * 0.5},{a},{b},{c},{i % 2}\n" for i, (a, b, c) in enumerate(values.tolist())))
    result = feed("sensors", str(path), "--bootstrap-servers", kafka.bootstrap_servers,
                  "--topic", topics["items-topic"], "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["sent"], report["acked"], report["skipped"]) == (600, 600, 0)
    assert "fed 600 items" in result.stderr

    got = asyncio.run(records(kafka.bootstrap_servers, topics["items-topic"], expect=600))
    items = {orjson.loads(r.value)["id"]: orjson.loads(r.value) for r in got}
    assert len(got) == len(items) == 600  # each row once
    assert all(r.key.decode() == orjson.loads(r.value)["id"] for r in got)
    assert sorted(items) == [f"plant-{i:07d}" for i in range(600)]
    assert items["plant-0000042"] == {"id": "plant-0000042", "features": values[42].tolist(),
                                      "ts": 1021.0, "stream": "plant"}
    assert {len(item["features"]) for item in items.values()} == {3}  # the label is not a feature
    assert ts_ascend_within_each_partition(got)


def test_a_bad_row_stops_the_feed_with_its_line_and_the_rows_before_it_are_on_the_topic(
        kafka, topics, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b,label\n" + "1,2,0\n" * 30 + "1,two,0\n" + "3,4,1\n" * 5)
    result = feed("sensors", str(path), "--bootstrap-servers", kafka.bootstrap_servers,
                  "--topic", topics["items-topic"])
    assert result.returncode == 1
    assert "line 32: column 'b' is not a number: 'two'" in result.stderr
    assert "--skip-bad" in result.stderr and "acknowledged before it: 30" in result.stderr
    got = asyncio.run(records(kafka.bootstrap_servers, topics["items-topic"], expect=30))
    assert len(got) == 30

    skipped = feed("sensors", str(path), "--bootstrap-servers", kafka.bootstrap_servers,
                   "--topic", topics["predictions-topic"], "--skip-bad", "--json")
    assert skipped.returncode == 0, skipped.stderr
    assert json.loads(skipped.stdout)["skipped"] == 1 and json.loads(skipped.stdout)["acked"] == 35
    assert "1 bad skipped:\n  line 32: column 'b'" in skipped.stderr


def test_json_lines_from_stdin_are_fed_at_the_asked_rate(kafka, topics) -> None:
    lines = "".join(json.dumps({"id": f"s-{i}", "x": i, "y": -i, "label": 1}) + "\n" for i in range(41))
    started = time.monotonic()
    result = feed("sensors", "-", "--bootstrap-servers", kafka.bootstrap_servers,
                  "--topic", topics["items-topic"], "--rate", "100", "--json", stdin=lines)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["acked"] == 41 and report["elapsed_s"] >= 0.39  # 40 gaps of 10 ms
    assert time.monotonic() - started >= 0.39
    got = asyncio.run(records(kafka.bootstrap_servers, topics["items-topic"], expect=41))
    assert sorted(orjson.loads(r.value)["features"][0] for r in got) == list(range(41))
    assert {orjson.loads(r.value)["stream"] for r in got} == {"stdin"}


def _clip(path: Path, frames: int = 40, fps: int = 10) -> Path:
    from streamer.feed.render import write_video

    def image(i: int) -> np.ndarray:
        out = np.zeros((48, 64, 3), np.uint8)
        out[..., i % 3] = 80
        out[(i * 2) % 36:(i * 2) % 36 + 12, (i * 3) % 52:(i * 3) % 52 + 12] = 255
        return out

    write_video(path, (image(i) for i in range(frames)), fps=fps)
    return path


def test_a_video_is_fed_one_item_per_sampled_frame_with_its_stored_frame(kafka, topics, tmp_path: Path) -> None:
    av = require_av()
    clip = _clip(tmp_path / "door.mp4")  # 4 s at 10 fps
    frames_dir = tmp_path / "frames"
    result = feed("video", str(clip), "--fps", "2", "--frames-dir", str(frames_dir),
                  "--bootstrap-servers", kafka.bootstrap_servers, "--topic", topics["items-topic"], "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["sent"], report["acked"], report["extractor"]) == (8, 8, "builtin")

    got = asyncio.run(records(kafka.bootstrap_servers, topics["items-topic"], expect=8))
    items = sorted((orjson.loads(r.value) for r in got), key=lambda item: item["ts"])
    assert len(got) == 8
    assert [i["id"] for i in items] == [f"door-{k:07d}" for k in range(0, 40, 5)]
    assert [i["ts"] for i in items] == pytest.approx([k / 2 for k in range(8)])
    assert [i["meta"] for i in items] == [{"frame": k} for k in range(0, 40, 5)]
    assert {len(i["features"]) for i in items} == {124} and {i["stream"] for i in items} == {"door"}
    assert all(abs(np.linalg.norm(i["features"]) - 1) < 1e-6 for i in items)
    for item in items:
        stored = Path(item["payload_uri"].removeprefix("file://"))
        assert stored.parent == frames_dir.resolve() and stored.name == f"{item['id']}.png"
        with av.open(str(stored)) as container:
            assert next(container.decode(video=0)).to_ndarray(format="rgb24").shape == (48, 64, 3)
    assert ts_ascend_within_each_partition(got)


async def test_annotators_get_label_requests_pointing_at_the_stored_frames(kafka, topics, tmp_path: Path) -> None:
    from streamer.feed.video import feed_video

    require_av()
    clip = _clip(tmp_path / "cam.mp4", frames=60)
    service = ServiceProcess(kafka.bootstrap_servers, {**topics, "budget": 0.3, "explore": 0.5},
                             tmp_path / "service.log")
    await asyncio.to_thread(service.start)
    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
        await producer.start()
        try:
            report = await feed_video(clip, producer, topics["items-topic"], fps=None,
                                      frames_dir=tmp_path / "frames", progress_out=None)
        finally:
            await producer.stop()
        assert report.acked == 60
        status = await asyncio.to_thread(service.wait_for, lambda s: s["items_seen"] >= 60, 60, "60 items")
        requests = await consume_all(kafka.bootstrap_servers, topics["label-requests-topic"],
                                     expect=status["label_requests"])
    finally:
        await asyncio.to_thread(service.stop)
    assert status["dead_letters"] == 0 and len(requests) >= 5
    for request in requests:
        assert request["payload_uri"] == (tmp_path / "frames" / f"{request['id']}.png").resolve().as_uri()
        assert Path(request["payload_uri"].removeprefix("file://")).is_file()
