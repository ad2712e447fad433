"""``streamer label-studio``: label requests become Label Studio tasks, annotations become labels.

Requests to tasks
    Each request becomes one task with the model's prediction as a pre-annotation. The bridge
    knows every task's item id (it lists the project at start), so a restarted bridge or a
    redelivered request never creates a second task for an item. A request's offset is committed
    only once its task exists. A request older than the pending TTL gets no task (the service
    has forgotten the item): it is counted as expired.

Annotations to labels (what each event does)
    created   One label (``id``, ``label``, ``annotator`` = the Label Studio user's email, ``ts``).
    updated   A correction: the new answer is sent again as a label for the same id, counted as
              ``kind="correction"``. The service applies one label per item, so it counts the
              correction as ``duplicate``: the model keeps what it learned from the first answer,
              and the labels topic keeps both for offline retraining.
    second    Another person's annotation of the same task is sent the same way (a correction).
    deleted   Nothing is sent (a label on the topic cannot be taken back); counted as deleted.
    skipped   Nothing is sent; counted as skipped. The item waits in the service until its pending
              TTL, then expires; another annotator may still answer the task.
    new class An answer the model has never seen (a choice added in a config of your own) is sent
              as is: the model learns the new class, and the derived config offers it from then on.
    no choice An annotation with no ``choices`` result cannot be a label: it goes to the
              dead-letter topic with reason ``no_choice``.

    What was sent is recorded in the task's ``meta`` (``streamer.sent``: annotation id -> answer),
    so annotations are re-read after a restart and each is sent once. Only a crash between the
    label's acknowledgement and that record sends one again, and the service applies it once.
    Label Studio can write an older ``meta`` back (see :mod:`streamer.label.studio_record`); the
    bridge remembers what it wrote for an hour and restores it.

How annotations come back: ``poll`` asks for tasks updated since the last poll every
``label_studio_poll_seconds``; ``webhook`` registers a webhook, and each call (its body is not
trusted: it only wakes the bridge) starts a poll at once, with a full poll every minute as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from streamer.config import Settings
from streamer.http import json_response, serve
from streamer.label.edge import EdgeMetrics, LabelEdge, ReadRequest, keep_committing
from streamer.label.http import edge_app
from streamer.label.payload import payload_url
from streamer.label.requests import ClassBook
from streamer.label.studio_api import (
    BridgeStopped,
    LabelStudioClient,
    LabelStudioError,
    MaybeDone,
    iso,
)
from streamer.label.studio_config import answer_of, config_classes, labelling_config, task_for
from streamer.label.studio_record import RecentRecords, TaskRecord

log = logging.getLogger("streamer.label.studio")

WEBHOOK_ACTIONS = ["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED"]
_WEBHOOK_RECONCILE_SECONDS = 60.0
_POLL_OVERLAP_SECONDS = 2.0
_STOP_SECONDS = 15.0  # Label Studio's Date header has whole seconds


class StudioBridge:
    """One bridge between the Kafka topics of ``settings`` and a Label Studio project."""

    def __init__(self, settings: Settings, client: LabelStudioClient, edge: LabelEdge) -> None:
        self.settings = settings
        self.client = client
        self.edge = edge
        self.metrics: EdgeMetrics = edge.metrics
        self.book = ClassBook(settings.declared_classes)
        self.own_config = Path(settings.label_config).read_text() if settings.label_config else None
        self.project_id: int | None = None
        self.frames = False
        self.items: set[str] = set()  # item ids that have a task
        self.open_items: set[str] = set()  # ... and no answer yet
        self.counts = {"tasks_created": 0, "duplicates": 0, "expired": 0, "created": 0,
                       "updated": 0, "deleted": 0, "skipped": 0, "no_choice": 0, "records_restored": 0}
        self.watermark: str | None = None
        self._users: dict[int, str] = {}
        self._wake = asyncio.Event()
        self._unreadable: set[Any] = set()  # task ids already dead-lettered
        self._shown_config: str | None = None
        self.recent = RecentRecords()

    # ------------------------------------------------------------------ project and tasks

    async def prepare(self) -> None:
        """Find or create the project; learn its classes and every task's item id; sync once."""
        title = self.settings.label_studio_project
        project = await self.client.project(title)
        if project is None:
            config = self.own_config or labelling_config(self.book.names, frames=False)
            project = await self.client.create_project(title, config)
            log.info("created Label Studio project %r (id %s)", title, project["id"])
        self.project_id = project["id"]
        shown = project.get("label_config") or ""
        self._shown_config = shown
        self.frames = "<Image" in shown
        for name in config_classes(shown):
            self.book.add(name)
        await self._read_item_ids()
        log.info("project %r (id %s): %d tasks, %d without an answer", title, self.project_id,
                 len(self.items), len(self.open_items))
        if self.settings.label_studio_annotations == "webhook":
            assert self.settings.label_studio_webhook_url is not None  # checked by Settings
            await self.client.ensure_webhook(self.project_id, self.settings.label_studio_webhook_url,
                                             WEBHOOK_ACTIONS)
        await self.sync_annotations()
        self._gauge()

    async def _show_classes(self) -> None:
        """Update the project's derived config when a class or the first frame appeared."""
        if self.own_config is not None or self.project_id is None:
            return
        config = labelling_config(self.book.names, self.frames)
        if config != self._shown_config:
            await self.client.set_label_config(self.project_id, config)
            self._shown_config = config
            log.info("labelling config now offers %s%s", ", ".join(self.book.names),
                     " with the frame" if self.frames else "")

    async def add_requests(self, read: list[ReadRequest]) -> None:
        """Create the tasks of ``read`` that do not exist yet; then their offsets may commit."""
        tasks, new_ids = [], []
        now = time.time()
        for done in read:
            request = done.request
            self.book.see(request)
            if request.id in self.items or request.id in new_ids:
                self.counts["duplicates"] += 1
            elif self.edge.expired(request, now):
                self.counts["expired"] += 1
                self.metrics.expired.inc()
            else:
                base = self.settings.label_studio_public_url or ""
                image = payload_url(request.payload_uri, base)
                self.frames = self.frames or image is not None
                # once frames are shown, a task without one gets an empty image, not an error
                tasks.append((done, task_for(request, image if image is not None or not self.frames else "")))
                new_ids.append(request.id)
        await self._show_classes()
        if tasks:
            created = await self._import(tasks)
            new_ids = [request_id for request_id in new_ids if request_id in created]
            self.items.update(new_ids)
            self.open_items.update(new_ids)
            self.counts["tasks_created"] += len(new_ids)
            self.metrics.tasks.inc(len(new_ids))
        for done in read:
            self.edge.finished(done)
        self._gauge()

    async def _import(self, tasks: list[tuple[ReadRequest, dict[str, Any]]]) -> set[str]:
        """Import ``tasks`` in one call; return the item ids that have a task now.

        An import is not repeated blindly: when its answer was lost, the project's item ids are
        read again and only the tasks still missing are imported. If Label Studio refuses the
        batch, the tasks go one by one, and one it refuses alone goes to the dead-letter topic.
        """
        assert self.project_id is not None
        while True:
            missing = [(done, task) for done, task in tasks if done.request.id not in self.items]
            if not missing:
                return {done.request.id for done, _ in tasks}
            try:
                await self.client.import_tasks(self.project_id, [task for _, task in missing])
                return {done.request.id for done, _ in tasks}
            except MaybeDone:
                await self._read_item_ids()
            except LabelStudioError as exc:
                if exc.status in (401, 403):
                    raise
                log.warning("Label Studio refused %d task(s) (%s); importing one by one", len(missing), exc)
                return await self._import_each(missing) | {d.request.id for d, _ in tasks if d.request.id in self.items}

    async def _import_each(self, tasks: list[tuple[ReadRequest, dict[str, Any]]]) -> set[str]:
        created = set()
        for done, task in tasks:
            while done.request.id not in self.items:
                try:
                    await self.client.import_tasks(self.project_id, [task])  # type: ignore[arg-type]
                    created.add(done.request.id)
                    break
                except MaybeDone:
                    await self._read_item_ids()
                except LabelStudioError as exc:
                    if exc.status in (401, 403):
                        raise
                    await self.edge.dead_letter(done.partition, done.offset, str(exc), None,
                                                reason="refused_by_label_studio")
                    break
        return created

    async def _read_item_ids(self) -> None:
        """Every task's item id, from Label Studio (at start, and after a lost import answer)."""
        assert self.project_id is not None
        async for task in self.client.tasks(self.project_id, fields="task_only"):
            item_id = (task.get("data") or {}).get("item_id")
            if isinstance(item_id, str) and item_id not in self.items:
                self.items.add(item_id)
                if not task.get("is_labeled"):
                    self.open_items.add(item_id)

    # ------------------------------------------------------------------ annotations

    async def sync_annotations(self) -> int:
        """Send a label for every annotation not sent yet, in tasks updated since the last sync;
        return how many labels were sent."""
        assert self.project_id is not None
        since = self.watermark
        started = self.client.server_time
        sent = 0
        async for task in self.client.tasks(self.project_id, updated_after=since):
            try:
                sent += await self.sync_task(task)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a task we cannot read
                if task.get("id") not in self._unreadable:
                    self._unreadable.add(task.get("id"))
                    log.exception("task %s cannot be read; it is skipped", task.get("id"))
                    await self.edge.dead_letter(None, int(task.get("id") or -1), f"task {task.get('id')}: "
                                                f"{type(exc).__name__}: {exc}", None, reason="bad_task")
        if self.client.server_time is not None:
            self.watermark = iso((started or self.client.server_time) - _POLL_OVERLAP_SECONDS)
        return sent

    async def sync_task(self, task: dict[str, Any]) -> int:
        """Turn one task's new, changed and deleted annotations into labels and counts."""
        data = task.get("data") or {}
        item_id = data.get("item_id")
        if not isinstance(item_id, str):
            return 0  # a task someone added by hand: not ours
        meta = dict(task.get("meta") or {})
        stored = TaskRecord.from_meta(meta)
        remembered = self.recent.recall(task["id"])
        record = stored.copy() if remembered is None else stored.merged(remembered)
        if remembered is not None and record.as_meta() != stored.as_meta():
            self.counts["records_restored"] += 1
            log.warning("task %s: its meta lacks part of what the bridge sent (a write that failed, "
                        "or an older meta written back by Label Studio); restored from memory", task["id"])
        sent_answers, seen = record.sent, record.seen
        live, labels = set(), 0
        for annotation in sorted(task.get("annotations") or [], key=lambda a: a.get("id", 0)):
            key = str(annotation.get("id"))
            live.add(key)
            if annotation.get("was_cancelled"):
                if key not in seen["skipped"]:
                    seen["skipped"].add(key)
                    self._count("skipped")
                    self.open_items.discard(item_id)
                continue
            answer = answer_of(annotation)
            if answer is None:
                if key not in seen["no_choice"]:
                    seen["no_choice"].add(key)
                    self._count("no_choice")
                    await self.edge.dead_letter(None, int(task.get("id", -1)),
                                                f"annotation {key} of task {task.get('id')} (item "
                                                f"{item_id}) chose no class", None, reason="no_choice")
                continue
            if sent_answers.get(key) == answer:
                continue
            correction = key in sent_answers or bool(sent_answers)
            self._count("updated" if key in sent_answers else "created")
            if self.book.add(answer):
                await self._show_classes()
            annotator = await self._user(annotation.get("completed_by"))
            await self.edge.send_label(None, item_id, self.book.label(answer), annotator,
                                       correction=correction, requested_at=data.get("requested_at"))
            sent_answers[key] = answer
            self.recent.remember(task["id"], record)  # before the meta write, which may fail or be lost
            labels += 1
            self.open_items.discard(item_id)
        for key in set(sent_answers) - live - seen["deleted"]:
            seen["deleted"].add(key)
            self._count("deleted")
        # written only when it differs from what the task holds: a write moves the task's
        # updated_at, and an unanswered task rewritten at every poll would be read at every poll
        if record.as_meta() != stored.as_meta():
            self.recent.remember(task["id"], record)
            await self.client.set_task_meta(task["id"], {**meta, "streamer": record.as_meta()})
        self._gauge()
        return labels

    def _count(self, event: str) -> None:
        self.counts[event] += 1
        if event != "no_choice":
            self.metrics.annotations.labels(event=event).inc()

    async def _user(self, user_id: Any) -> str | None:
        if not isinstance(user_id, int):
            return None
        if user_id not in self._users:
            self._users[user_id] = await self.client.user_name(user_id)
        return self._users[user_id]

    def _gauge(self) -> None:
        self.metrics.queue.set(len(self.open_items))

    # ------------------------------------------------------------------ loops

    async def requests_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            read = await self.edge.read(timeout_ms=200)
            if read:
                await self.add_requests(read)

    async def annotations_loop(self, stop: asyncio.Event) -> None:
        webhook = self.settings.label_studio_annotations == "webhook"
        every = _WEBHOOK_RECONCILE_SECONDS if webhook else self.settings.label_studio_poll_seconds
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=every)
            self._wake.clear()
            if not stop.is_set():
                await self.sync_annotations()

    def wake(self) -> None:
        """A webhook arrived: poll now."""
        self._wake.set()

    def ready(self) -> bool:
        return self.client.up and self.edge.joined and self.project_id is not None

    def status(self) -> dict[str, Any]:
        return {
            "label_studio": {"url": self.client.url, "up": self.client.up,
                             "last_error": self.client.last_error, "project": self.project_id,
                             "title": self.settings.label_studio_project,
                             "annotations_from": self.settings.label_studio_annotations},
            "classes": self.book.names, "queue_depth": len(self.open_items),
            "tasks": len(self.items), **self.counts, "edge": self.edge.status(),
            "watermark": self.watermark,
        }


async def run_bridge(settings: Settings, stop: asyncio.Event) -> None:
    """The bridge process: endpoints, the Kafka edge, Label Studio, until ``stop``."""
    assert settings.label_studio_url and settings.label_studio_token is not None
    edge = LabelEdge(settings, "label-studio")
    async with LabelStudioClient(settings.label_studio_url, settings.label_studio_token.get_secret_value(),
                                 stop, on_error=edge.metrics.upstream_errors.inc) as client:
        bridge = StudioBridge(settings, client, edge)
        app = edge_app(edge.metrics, bridge.ready, bridge.status, settings.payload_root)

        async def webhook(_: web.Request) -> web.Response:
            bridge.wake()
            return json_response({"ok": True})

        app.router.add_post("/webhook", webhook)
        runner, port = await serve(app, settings.metrics_host, settings.metrics_port)
        log.info("bridge endpoints on http://%s:%d (/metrics /status /readyz%s)", settings.metrics_host,
                 port, " /webhook" if settings.label_studio_annotations == "webhook" else "")
        tasks: list[asyncio.Task[None]] = []
        try:
            await edge.start()
            await bridge.prepare()
            tasks = [asyncio.create_task(coro) for coro in (
                bridge.requests_loop(stop), bridge.annotations_loop(stop), keep_committing(edge, stop))]
            done, _ = await asyncio.wait([*tasks, asyncio.create_task(stop.wait())],
                                         return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task in tasks and task.exception() is not None:
                    log.error("bridge stops: %s failed", task.get_coro().__qualname__,  # type: ignore[union-attr]
                              exc_info=task.exception())
                    raise task.exception()  # type: ignore[misc]
        except BridgeStopped:
            pass
        except LabelStudioError as exc:
            raise RuntimeError(str(exc)) from exc
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await edge.stop()
            await runner.cleanup()
            log.info("bridge stopped: %s", {k: v for k, v in bridge.counts.items() if v})
