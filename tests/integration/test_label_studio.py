"""The Label Studio bridge against a real Label Studio, a real broker and a real `streamer run`.

An annotator answers tasks through Label Studio's own REST API, as its UI does. Checked: every
annotation becomes exactly one label and the service applies it; every task carries the model's
prediction and a score; a bridge killed mid-stream and restarted creates no second task; what a
correction, a deletion, a skip and a class the model never saw each do; Label Studio unreachable
loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streamer.broker import free_port
from streamer.wire import encode_item
from tests.integration.harness import CliProcess, ServiceProcess, consume_all, produce, sea_stream

pytestmark = pytest.mark.timeout(600)

STREAM = sea_stream(4_000, seed=7)


class BridgeProcess(CliProcess):
    """`streamer label-studio ...` in a subprocess (the token in its environment)."""

    def __init__(self, bootstrap: str, topics: dict[str, str], url: str, token: str, project: str,
                 log: Path, **flags: Any) -> None:
        names = ("label-requests-topic", "labels-topic", "dead-letters-topic")
        super().__init__("label-studio", bootstrap, {
            "label-studio-url": url, "project": project, "poll-seconds": 0.5, "metrics-host": "127.0.0.1",
            "group-id": f"label-studio-{topics['group-id']}",  # a group of this test's own
            **{name: topics[name] for name in names}, **{k.replace("_", "-"): v for k, v in flags.items()},
        }, log, port_flag="--port", env={"STREAMER_LABEL_STUDIO_TOKEN": token})

    def start(self) -> BridgeProcess:
        self.launch()
        return self

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status")
        return json.loads(body) if code == 200 else {}  # {} until its endpoints are up

    def wait_for(self, predicate, timeout: float = 90.0, what: str = "condition") -> dict[str, Any]:
        return super().wait_for(predicate, timeout, what)  # Label Studio is slower than the broker


def _topics() -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {"items-topic": f"items-{tag}", "label-requests-topic": f"label-requests-{tag}",
            "labels-topic": f"labels-{tag}", "predictions-topic": f"predictions-{tag}",
            "dead-letters-topic": f"dead-letters-{tag}", "group-id": f"streamer-{tag}"}


def _send_items(bootstrap: str, topic: str, start: int, stop: int) -> None:
    asyncio.run(produce(bootstrap, topic, [
        (STREAM.ids[i].encode(), encode_item(id=STREAM.ids[i], features=STREAM.X[i])) for i in range(start, stop)]))


def _wait(predicate, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.3)
    raise TimeoutError(f"{what} not reached in {timeout} s")


@pytest.fixture(scope="module")
def loop(kafka, label_studio, tmp_path_factory):
    """The service and the bridge on one project, with their topics."""
    logs = tmp_path_factory.mktemp("label-studio-loop")
    topics = _topics()
    service = ServiceProcess(kafka.bootstrap_servers, {**topics, "budget": 0.1, "seed": 3},
                             logs / "service.log").start()
    title = f"streamer-test-{topics['group-id'][-8:]}"
    bridge = BridgeProcess(kafka.bootstrap_servers, topics, label_studio.url, label_studio.token, title,
                           logs / "bridge.log")
    try:
        bridge.start().wait_for(lambda s: (s["edge"]["group"] or {}).get("partitions"), what="bridge joined")
        yield {"service": service, "bridge": bridge, "topics": topics, "title": title, "logs": logs}
    finally:  # also when the setup failed: no process outlives its test
        if bridge.process is not None:
            bridge.stop()
        service.stop()


def _open_tasks(label_studio, project_id: int) -> list[dict]:
    return [t for t in label_studio.tasks(project_id) if not t["annotations"]]


def test_annotations_become_labels_once_and_a_restarted_bridge_makes_no_duplicate_task(
        kafka, label_studio, loop):
    service, bridge, topics = loop["service"], loop["bridge"], loop["topics"]
    bootstrap = kafka.bootstrap_servers
    _send_items(bootstrap, topics["items-topic"], 0, 300)
    project = _wait(lambda: label_studio.project(loop["title"]), 60, "project created")
    _wait(lambda: len(label_studio.tasks(project["id"])) >= 15, 90, "15 tasks")
    answered: dict[str, int] = {}

    def answer_open(limit: int | None = None) -> None:
        for task in _open_tasks(label_studio, project["id"])[:limit]:
            item_id = task["data"]["item_id"]
            label_studio.annotate(task["id"], str(STREAM.truth[item_id]))
            answered[item_id] = STREAM.truth[item_id]

    answer_open(limit=10)
    bridge.wait_for(lambda s: s.get("edge", {}).get("labels_sent", 0) >= 10, what="10 labels sent")
    bridge.kill9()  # a crash mid-stream: requests read but not committed are read again
    _send_items(bootstrap, topics["items-topic"], 300, 600)
    time.sleep(1.0)
    bridge.start()
    bridge.wait_for(lambda s: (s["edge"]["group"] or {}).get("partitions"), what="bridge rejoined")

    requests = asyncio.run(consume_all(bootstrap, topics["label-requests-topic"], idle_s=4.0))
    requested = {r["id"] for r in requests}
    _wait(lambda: {t["data"]["item_id"] for t in label_studio.tasks(project["id"])} >= requested, 90,
          "a task for every request")
    answer_open()
    service.wait_for(lambda s: s["labels_applied"] >= len(answered), timeout=90, what="labels applied")
    bridge.wait_for(lambda s: s["edge"]["labels_sent"] >= len(answered) - 10, what="labels sent after restart")

    tasks = label_studio.tasks(project["id"])
    ids = [t["data"]["item_id"] for t in tasks]
    assert len(ids) == len(set(ids)), "a second task for one item"
    assert set(ids) == requested
    by_id = {r["id"]: r for r in requests}
    for task in tasks:
        if by_id[task["data"]["item_id"]]["prediction"] is None:
            continue  # the model knew no class yet: nothing to pre-annotate
        prediction = task["predictions"][0]
        assert 0.0 <= prediction["score"] <= 1.0 and prediction["model_version"] != ""
        assert prediction["result"][0]["value"]["choices"] == [str(by_id[task["data"]["item_id"]]["prediction"])]
    with_prediction = [t for t in tasks if by_id[t["data"]["item_id"]]["prediction"] is not None]
    assert with_prediction and all(t["predictions"] for t in with_prediction)

    labels = asyncio.run(consume_all(bootstrap, topics["labels-topic"], expect=len(answered), idle_s=4.0))
    assert sorted(m["id"] for m in labels) == sorted(answered), "each annotation is exactly one label"
    assert all(m["label"] == answered[m["id"]] and m["annotator"] == "annotator@example.com" for m in labels)
    status = service.status()
    assert status["join_outcomes"].get("joined") == len(answered)
    assert status["labels_applied"] == len(answered)


def test_correction_deletion_skip_and_a_new_class(kafka, label_studio, loop):
    service, bridge, topics = loop["service"], loop["bridge"], loop["topics"]
    bootstrap = kafka.bootstrap_servers
    project = label_studio.project(loop["title"])
    before = {t["id"] for t in label_studio.tasks(project["id"])}
    _send_items(bootstrap, topics["items-topic"], 600, 900)
    fresh = _wait(lambda: [t for t in _open_tasks(label_studio, project["id"]) if t["id"] not in before][:5]
                  if len([t for t in _open_tasks(label_studio, project["id"]) if t["id"] not in before]) >= 5
                  else None, 90, "5 new tasks")
    corrected, deleted, skipped, novel, overwritten = fresh
    base = bridge.status()
    joined_before = service.status()["join_outcomes"].get("joined", 0)
    labels_before = Counter((m["id"], m["label"]) for m in asyncio.run(
        consume_all(bootstrap, topics["labels-topic"], idle_s=3.0)))

    truth = STREAM.truth[corrected["data"]["item_id"]]
    first = label_studio.annotate(corrected["id"], str(truth))
    bridge.wait_for(lambda s: s["created"] == base["created"] + 1, what="first answer sent")
    label_studio.update(first["id"], str(1 - truth))
    bridge.wait_for(lambda s: s["updated"] == base["updated"] + 1, what="correction sent")

    # Label Studio's annotation endpoints save the whole task they loaded: a PATCH that loaded the
    # task before the bridge recorded the first answer writes the old meta back (seen in a run)
    truth_overwritten = STREAM.truth[overwritten["data"]["item_id"]]
    first = label_studio.annotate(overwritten["id"], str(truth_overwritten))
    bridge.wait_for(lambda s: s["created"] == base["created"] + 2, what="first answer sent")
    _wait(lambda: (label_studio.task(overwritten["id"])["meta"] or {}).get("streamer"), 30, "record written")
    label_studio.write_task_meta(overwritten["id"], overwritten["meta"] or {})
    label_studio.update(first["id"], str(1 - truth_overwritten))
    bridge.wait_for(lambda s: s["updated"] == base["updated"] + 2, what="correction after a stale save sent")
    assert bridge.status()["created"] == base["created"] + 2, "the correction was taken for a first answer"
    _wait(lambda: ((label_studio.task(overwritten["id"])["meta"] or {}).get("streamer") or {}).get("sent")
          == {str(first["id"]): str(1 - truth_overwritten)}, 30, "the bridge's record written again")

    gone = label_studio.annotate(deleted["id"], str(STREAM.truth[deleted["data"]["item_id"]]))
    bridge.wait_for(lambda s: s["created"] == base["created"] + 3, what="third answer sent")
    label_studio.delete(gone["id"])
    bridge.wait_for(lambda s: s["deleted"] == base["deleted"] + 1, what="deletion seen")

    label_studio.skip(skipped["id"])
    bridge.wait_for(lambda s: s["skipped"] == base["skipped"] + 1, what="skip seen")

    label_studio.annotate_new_class(novel["id"], "zebra")
    bridge.wait_for(lambda s: "zebra" in s["classes"], what="new class offered")

    labels = asyncio.run(consume_all(bootstrap, topics["labels-topic"],
                                     expect=sum(labels_before.values()) + 6, idle_s=4.0))
    new = Counter((m["id"], m["label"]) for m in labels) - labels_before
    assert new == Counter([
        (corrected["data"]["item_id"], truth), (corrected["data"]["item_id"], 1 - truth),
        (overwritten["data"]["item_id"], truth_overwritten), (overwritten["data"]["item_id"], 1 - truth_overwritten),
        (deleted["data"]["item_id"], STREAM.truth[deleted["data"]["item_id"]]),
        (novel["data"]["item_id"], "zebra")]), "correction sent again; deletion and skip send nothing"
    status = service.wait_for(lambda s: s["join_outcomes"].get("joined", 0) >= joined_before + 4,
                              timeout=60, what="four labels joined")
    assert status["join_outcomes"].get("duplicate", 0) >= 2, "a correction counts as a duplicate"
    assert "zebra" in status["classes"], "the model learned the class it had never seen"
    assert 'value="zebra"' in label_studio.project(loop["title"])["label_config"]
    metrics = bridge.get("/metrics")[1].decode()
    assert 'streamer_labelling_labels_sent_total{kind="correction"} 2.0' in metrics
    assert 'streamer_labelling_annotations_total{event="skipped"} 1.0' in metrics


def test_label_studio_unreachable_loses_nothing(kafka, label_studio, tmp_path):
    """Requests wait in Kafka while Label Studio cannot be reached; /readyz says not ready."""
    topics = _topics()
    bootstrap = kafka.bootstrap_servers
    asyncio.run(produce(bootstrap, topics["label-requests-topic"], _requests(12, "x") + [(b"bad", b"{not json")]))
    title = f"streamer-down-{topics['group-id'][-8:]}"
    down = BridgeProcess(bootstrap, topics, f"http://127.0.0.1:{free_port()}", label_studio.token, title,
                         tmp_path / "down.log").start()
    try:
        time.sleep(8.0)
        assert down.get("/readyz")[0] == 503
        assert down.status()["label_studio"]["up"] is False
    finally:
        assert down.stop() == 0, "a bridge waiting for Label Studio stops cleanly on SIGTERM"
    assert label_studio.project(title) is None

    up = BridgeProcess(bootstrap, topics, label_studio.url, label_studio.token, title, tmp_path / "up.log").start()
    try:
        status = up.wait_for(lambda s: s.get("tasks", 0) >= 12, what="every waiting request became a task")
        assert up.get("/readyz")[0] == 200
        assert status["tasks"] == 12
        dead = asyncio.run(consume_all(bootstrap, topics["dead-letters-topic"], expect=1))
        assert dead[0]["reason"] == "bad_json" and dead[0]["source_topic"] == topics["label-requests-topic"]
    finally:
        up.stop()


def _requests(count: int, prefix: str) -> list[tuple[bytes, bytes]]:
    return [(f"{prefix}{i}".encode(), (
        b'{"id":"%s%d","prediction":0,"proba":{"0":0.6,"1":0.4},"scores":{"margin":0.8},'
        b'"reason":"uncertainty","model_version":1,"requested_at":%f}' % (prefix.encode(), i, time.time())))
        for i in range(count)]


def test_webhook_mode_sends_a_label_without_waiting_for_the_reconcile_poll(kafka, label_studio, tmp_path):
    """Label Studio calls the bridge's /webhook; the label follows at once (the reconcile poll
    runs only once a minute)."""
    topics = _topics()
    bootstrap = kafka.bootstrap_servers
    asyncio.run(produce(bootstrap, topics["label-requests-topic"], _requests(3, "w")))
    title = f"streamer-hook-{topics['group-id'][-8:]}"
    bridge = BridgeProcess(bootstrap, topics, label_studio.url, label_studio.token, title, tmp_path / "hook.log",
                           annotations="webhook")
    bridge.args += ["--webhook-url", f"http://127.0.0.1:{bridge.port}/webhook"]
    bridge.start()
    try:
        bridge.wait_for(lambda s: s.get("tasks", 0) == 3 and s["label_studio"]["up"], what="3 tasks")
        project = label_studio.project(title)
        hooks = label_studio.api("GET", f"/api/webhooks/?project={project['id']}")
        assert [h["url"] for h in hooks] == [f"http://127.0.0.1:{bridge.port}/webhook"]
        task = label_studio.tasks(project["id"])[0]
        label_studio.annotate(task["id"], "1")
        bridge.wait_for(lambda s: s["edge"]["labels_sent"] == 1, timeout=30, what="label sent on the webhook")
        labels = asyncio.run(consume_all(bootstrap, topics["labels-topic"], expect=1))
        assert [(m["id"], m["label"]) for m in labels] == [(task["data"]["item_id"], 1)]
    finally:
        bridge.stop()
