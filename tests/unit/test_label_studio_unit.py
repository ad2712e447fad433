"""The bridge's pure parts and its Label Studio client, against a local HTTP server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.label.payload import PayloadRefused, payload_file, payload_url
from streamer.label.requests import LabelRequest
from streamer.label.studio_api import BridgeStopped, LabelStudioClient, LabelStudioError
from streamer.label.studio_config import answer_of, config_classes, labelling_config, task_for

class_names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(class_names, max_size=8, unique=True), st.booleans())
def test_the_derived_config_offers_exactly_the_classes_escaped(classes, frames) -> None:
    config = labelling_config(classes, frames)
    assert config_classes(config) == classes
    assert ("<Image" in config) == frames
    assert ("<Choices" in config) == bool(classes)  # Label Studio refuses an empty Choices


def test_a_task_carries_the_item_and_its_pre_annotation() -> None:
    request = LabelRequest("cam-1", "dog", {"dog": 0.55, "cat": 0.45}, 12, 100.0, reason="uncertainty",
                           features=[0.5, 1.5], payload_uri="https://x/1.png")
    task = task_for(request, "https://x/1.png")
    assert task["data"]["item_id"] == "cam-1" and task["data"]["features"] == {"f0": 0.5, "f1": 1.5}
    assert task["data"]["image"] == "https://x/1.png"
    prediction = task["predictions"][0]
    assert prediction["model_version"] == "12" and prediction["score"] == pytest.approx(0.1)
    assert prediction["result"][0]["value"] == {"choices": ["dog"]}
    assert "predictions" not in task_for(LabelRequest("a", None, {}, 0, 1.0), None)


def test_the_answer_prefers_a_choice_then_the_typed_class() -> None:
    both = {"result": [{"type": "textarea", "from_name": "new_class", "value": {"text": ["x"]}},
                       {"type": "choices", "from_name": "label", "value": {"choices": ["y"]}}]}
    assert answer_of(both) == "y"
    assert answer_of({"result": [{"type": "textarea", "from_name": "new_class", "value": {"text": ["  "]}}]}) is None
    assert answer_of({"result": None}) is None
    assert answer_of({"result": ["junk", {"type": "choices"}]}) is None


def test_file_payloads_are_served_only_from_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "frames").mkdir()
    frame = tmp_path / "frames" / "1.png"
    frame.write_bytes(b"\x89PNG")
    (tmp_path / "secret.txt").write_text("x")
    assert payload_file(frame.as_uri(), tmp_path / "frames") == (frame.resolve(), "image/png")
    for uri, root in [((tmp_path / "frames" / ".." / "secret.txt").as_uri(), tmp_path / "frames"),
                      ((tmp_path / "secret.txt").as_uri(), tmp_path),  # not an image
                      (frame.as_uri(), None),  # no root set
                      ("file://otherhost/x.png", tmp_path)]:
        with pytest.raises(PayloadRefused):
            payload_file(uri, root)
    assert payload_url("ftp://x/1.png") is None


async def _server(handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


def test_5xx_answers_are_retried_until_label_studio_answers(monkeypatch) -> None:
    monkeypatch.setattr("streamer.label.studio_api._BACKOFF_START", 0.01)
    calls: list[str] = []

    async def flaky(request: web.Request) -> web.Response:
        calls.append(request.headers["Authorization"])
        if len(calls) <= 2:
            return web.Response(status=503, text="restarting")
        return web.json_response({"results": [{"id": 4, "title": "p"}, {"id": 2, "title": "p"}]})

    async def go() -> None:
        runner, url = await _server(flaky)
        errors: list[int] = []
        try:
            async with LabelStudioClient(url, "tok", asyncio.Event(), on_error=lambda: errors.append(1)) as client:
                assert (await client.project("p"))["id"] == 2  # the oldest of two with the title
                assert client.up and client.last_error is None and len(errors) == 2
        finally:
            await runner.cleanup()

    asyncio.run(go())
    assert calls == ["Token tok"] * 3


def test_a_refusal_is_not_retried_and_says_why() -> None:
    async def refuse(_: web.Request) -> web.Response:
        return web.Response(status=401, text='{"detail":"Invalid token."}')

    async def go() -> None:
        runner, url = await _server(refuse)
        try:
            async with LabelStudioClient(url, "bad", asyncio.Event()) as client:
                with pytest.raises(LabelStudioError, match="Invalid token.*check --label-studio-token") as info:
                    await client.project("p")
                assert info.value.status == 401
        finally:
            await runner.cleanup()

    asyncio.run(go())


def test_stopping_ends_the_wait_for_a_label_studio_that_is_down(monkeypatch) -> None:
    monkeypatch.setattr("streamer.label.studio_api._BACKOFF_START", 5.0)

    async def go() -> None:
        stop = asyncio.Event()
        async with LabelStudioClient("http://127.0.0.1:9", "tok", stop) as client:  # nothing listens
            call = asyncio.create_task(client.project("p"))
            await asyncio.sleep(0.2)
            assert not client.up and "Cannot connect" in (client.last_error or "")
            stop.set()
            with pytest.raises(BridgeStopped):
                await asyncio.wait_for(call, timeout=2)

    asyncio.run(go())


def test_a_personal_access_token_is_exchanged_and_renewed() -> None:
    seen: list[str] = []

    async def api(request: web.Request) -> web.Response:
        if request.path == "/api/token/refresh":
            body = await request.json()
            assert body == {"refresh": "a.b.c"}
            seen.append("refresh")
            return web.json_response({"access": f"access{len(seen)}"})
        seen.append(request.headers["Authorization"])
        if request.headers["Authorization"] == "Bearer access1":
            return web.Response(status=401, text="expired")
        return web.json_response({"results": []})

    async def go() -> None:
        runner, url = await _server(api)
        try:
            async with LabelStudioClient(url, "a.b.c", asyncio.Event()) as client:
                assert await client.project("p") is None
        finally:
            await runner.cleanup()

    asyncio.run(go())
    assert seen == ["refresh", "Bearer access1", "refresh", "Bearer access3"]


def test_an_import_whose_answer_was_lost_is_not_repeated(monkeypatch) -> None:
    """Label Studio created the tasks but its answer never arrived (a 503 from a proxy, a
    timeout): the bridge reads the project's item ids again and creates no second task."""
    from aiokafka import TopicPartition

    from streamer.config import load_settings
    from streamer.label.edge import LabelEdge, ReadRequest
    from streamer.label.studio import StudioBridge

    monkeypatch.setattr("streamer.label.studio_api._BACKOFF_START", 0.01)
    stored: list[dict] = []
    imports: list[int] = []

    async def fake_label_studio(request: web.Request) -> web.Response:
        if request.path == "/api/projects/1/import":
            batch = await request.json()
            imports.append(len(batch))
            stored.extend({"id": len(stored) + i + 1, **task} for i, task in enumerate(batch))
            if len(imports) == 1:
                return web.Response(status=503, text="the answer is lost on the way")
            return web.json_response({"task_count": len(batch)})
        if request.path == "/api/tasks/":
            return web.json_response({"tasks": stored, "total": len(stored)})
        if request.path == "/api/projects/1/":
            return web.json_response({"id": 1})
        return web.Response(status=404)

    async def go() -> None:
        runner, url = await _server(fake_label_studio)
        settings = load_settings(label_studio_url=url, label_studio_token="tok")
        edge = LabelEdge(settings, "label-studio")
        partition = TopicPartition("label-requests", 0)
        read = []
        for i in range(5):
            edge.offsets.opened(partition, i)
            read.append(ReadRequest(partition, i, LabelRequest(f"item-{i}", 1, {"0": 0.4, "1": 0.6}, 2,
                                                               time.time())))
        try:
            async with LabelStudioClient(url, "tok", asyncio.Event()) as client:
                bridge = StudioBridge(settings, client, edge)
                bridge.project_id = 1
                await bridge.add_requests(read)
                await bridge.add_requests(read[:2])  # a redelivery after a restart of the consumer
        finally:
            await runner.cleanup()
        assert sorted(t["data"]["item_id"] for t in stored) == [f"item-{i}" for i in range(5)]
        assert imports == [5], "imported once, then found in Label Studio, not imported again"
        assert edge.offsets.committable() == {partition: 5}
        assert bridge.counts["duplicates"] == 2

    asyncio.run(go())


def test_a_task_is_written_back_only_when_its_record_changes() -> None:
    """Each write moves a task's updated_at: an unanswered task rewritten at every poll would
    come back at every poll, and Label Studio's SQLite would do nothing else."""
    from streamer.config import load_settings
    from streamer.label.edge import LabelEdge
    from streamer.label.studio import StudioBridge

    writes: list[dict] = []

    async def fake_label_studio(request: web.Request) -> web.Response:
        if request.method == "PATCH" and request.path.startswith("/api/tasks/"):
            writes.append(await request.json())
            return web.json_response({})
        return web.Response(status=404)

    async def go() -> None:
        runner, url = await _server(fake_label_studio)
        settings = load_settings(label_studio_url=url, label_studio_token="tok")
        try:
            async with LabelStudioClient(url, "tok", asyncio.Event()) as client:
                bridge = StudioBridge(settings, client, LabelEdge(settings, "label-studio"))
                open_task = {"id": 5, "data": {"item_id": "a"}, "meta": {}, "annotations": []}
                assert await bridge.sync_task(open_task) == 0
                assert writes == [], "an unanswered task is not written"
                skipped = {**open_task, "annotations": [{"id": 9, "was_cancelled": True, "result": []}]}
                await bridge.sync_task(skipped)
                assert writes == [{"meta": {"streamer": {"skipped": ["9"]}}}]
                await bridge.sync_task({**skipped, "meta": writes[-1]["meta"]})  # the next poll
                assert len(writes) == 1 and bridge.counts["skipped"] == 1
        finally:
            await runner.cleanup()

    asyncio.run(go())


def test_a_correction_after_label_studio_wrote_back_an_older_meta_is_still_a_correction(monkeypatch) -> None:
    """Label Studio's annotation PATCH saves the task it loaded before the bridge recorded the
    first answer: the task comes back with its old meta. The bridge remembers what it wrote, so
    the corrected answer goes out as a correction (not a second first answer), and the record
    is written again."""
    from streamer.config import load_settings
    from streamer.label.edge import LabelEdge
    from streamer.label.studio import StudioBridge

    writes: list[dict] = []
    sent: list[tuple[str, str | int, bool]] = []

    async def fake_label_studio(request: web.Request) -> web.Response:
        if request.method == "PATCH" and request.path == "/api/tasks/5/":
            writes.append((await request.json())["meta"])
            return web.json_response({})
        return web.Response(status=404)

    def annotation(choice: str) -> dict:
        return {"id": 9, "result": [{"type": "choices", "value": {"choices": [choice]}}]}

    async def go() -> None:
        runner, url = await _server(fake_label_studio)
        settings_ = load_settings(label_studio_url=url, label_studio_token="tok")
        edge = LabelEdge(settings_, "label-studio")

        async def send_label(request, item_id, label, annotator, correction=False, requested_at=None):
            sent.append((item_id, label, correction))

        monkeypatch.setattr(edge, "send_label", send_label)
        try:
            async with LabelStudioClient(url, "tok", asyncio.Event()) as client:
                bridge = StudioBridge(settings_, client, edge)
                task = {"id": 5, "data": {"item_id": "a"}, "meta": {"other": 1}}
                assert await bridge.sync_task({**task, "annotations": [annotation("0")]}) == 1
                assert writes == [{"other": 1, "streamer": {"sent": {"9": "0"}}}]
                # the stale save: the old meta, with the annotation corrected
                assert await bridge.sync_task({**task, "annotations": [annotation("1")]}) == 1
                assert writes[-1] == {"other": 1, "streamer": {"sent": {"9": "1"}}}
                # a stale save with nothing new to send: the record alone is written again
                assert await bridge.sync_task({**task, "annotations": [annotation("1")]}) == 0
                assert writes[-1] == {"other": 1, "streamer": {"sent": {"9": "1"}}} and len(writes) == 3
                assert bridge.counts["records_restored"] == 2
                # once the record is back, the next poll writes nothing
                await bridge.sync_task({**task, "meta": writes[-1], "annotations": [annotation("1")]})
                assert len(writes) == 3
        finally:
            await runner.cleanup()
        assert sent == [("a", 0, False), ("a", 1, True)]
        assert bridge.counts["created"] == 1 and bridge.counts["updated"] == 1

    asyncio.run(go())


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from("123456"), st.sampled_from("abc"), max_size=4),
       st.dictionaries(st.sampled_from("123456"), st.sampled_from("abc"), max_size=4),
       st.sets(st.sampled_from("123456")), st.sets(st.sampled_from("123456")))
def test_a_merged_record_keeps_everything_either_side_holds_and_the_newer_answer(
        old_sent, new_sent, old_deleted, new_deleted) -> None:
    from streamer.label.studio_record import TaskRecord

    old = TaskRecord.from_meta({"streamer": {"sent": old_sent, "deleted": sorted(old_deleted)}})
    new = TaskRecord.from_meta({"streamer": {"sent": new_sent, "deleted": sorted(new_deleted)}})
    merged = old.merged(new)
    assert merged.sent == {**old_sent, **new_sent}
    assert merged.seen["deleted"] == old_deleted | new_deleted
    assert TaskRecord.from_meta({"streamer": merged.as_meta()}).as_meta() == merged.as_meta()


def test_remembered_records_are_forgotten_after_the_keep_time() -> None:
    from streamer.label.studio_record import RecentRecords, TaskRecord

    now = [0.0]
    recent = RecentRecords(keep_seconds=60, clock=lambda: now[0])
    record = TaskRecord({"9": "0"})
    recent.remember(1, record)
    record.sent["9"] = "changed after"  # remembered as it was
    now[0] = 30.0
    recent.remember(2, TaskRecord({"10": "1"}))
    assert recent.recall(1).sent == {"9": "0"}
    now[0] = 61.0
    assert recent.recall(1) is None and recent.recall(2).sent == {"10": "1"} and len(recent) == 1
