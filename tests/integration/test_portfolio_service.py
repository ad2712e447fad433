"""`streamer run --model auto` against the real broker and Redis: the race is shown, labelled on
the requests, checkpointed, and restored after kill -9."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streamer.replay import Annotator
from tests.integration.harness import (
    ServiceProcess,
    annotate,
    consume_all,
    produce_steadily,
    sea_stream,
)

pytestmark = pytest.mark.integration

MODEL = "auto(members=('logistic', 'gaussian_nb'))"  # river members: quick to start


async def test_an_auto_model_races_its_members_and_survives_kill_9(
    kafka, topics, redis_url, redis_prefix, tmp_path: Path
) -> None:
    stream = sea_stream(3000, seed=3)
    flags = {**topics, "model": MODEL, "budget": 0.1, "redis-url": redis_url,
             "redis-prefix": redis_prefix, "checkpoint-every-seconds": 1.0, "seed": 1}
    log = tmp_path / "service.log"
    service = await asyncio.to_thread(ServiceProcess(kafka.bootstrap_servers, flags, log).start)
    annotator = Annotator(stream.truth, delay=0.05)
    stop = asyncio.Event()
    annotating = asyncio.create_task(annotate(kafka.bootstrap_servers, topics, annotator, stop))
    try:
        await produce_steadily(kafka.bootstrap_servers, topics["items-topic"], stream, 3000, 1000)
        before = await asyncio.to_thread(
            service.wait_for, lambda s: s["labels_applied"] >= 200
            and s["checkpoints"]["written"] >= 1 and s["labels_applied"] >= annotator.sent - 5,
            60, "labels applied and checkpointed")
        metrics = service.get("/metrics")[1].decode()
        await asyncio.sleep(1.5)  # a checkpoint after the last labels (every second)
        before = service.status()
        await asyncio.to_thread(service.kill9)
        restarted = await asyncio.to_thread(ServiceProcess(kafka.bootstrap_servers, flags, log).start)
        after = restarted.status()
        exit_code = await asyncio.to_thread(restarted.stop)
    finally:
        stop.set()
        await annotating

    race = before["model_race"]
    assert before["model"] == MODEL and race["vote"] == "leader"
    assert set(race["estimates"]) == {"logistic", "gaussian_nb"}
    assert race["labels_scored"] > 150 and all(0.5 < a <= 1 for a in race["estimates"].values())
    assert f'streamer_model_member_leads{{member="{race["leader"]}"}} 1.0' in metrics
    assert 'streamer_model_member_accuracy{member="gaussian_nb"}' in metrics
    # the race came back with the checkpoint: same leader, the labels it had scored
    assert after["checkpoints"]["restored"] is not None
    assert after["model_race"]["leader"] == race["leader"]
    assert after["model_race"]["labels_scored"] >= race["labels_scored"] - 50
    assert exit_code == 0
    requests = await consume_all(kafka.bootstrap_servers, topics["label-requests-topic"], idle_s=2.0)
    leaders = [r.get("model_leader") for r in requests]
    # every request names the member that predicted it (the leader may change mid-stream)
    assert set(leaders) <= {"logistic", "gaussian_nb"} and race["leader"] in leaders
