"""Who answers the demo's label requests: ``streamer demo --annotator simulated|web|label-studio``.

``simulated`` answers every request from the stream's truth after a delay.

``web`` serves the labelling page (port 8000, or a free one) and prints its URL. ``label-studio``
uses the Label Studio at $STREAMER_LABEL_STUDIO_URL with $STREAMER_LABEL_STUDIO_TOKEN, or
starts the one ``make label-studio`` installed (data in ``.demo/label-studio``, login printed),
and runs the bridge. Either way the edge runs in the demo's process on the demo's Settings.

People are slower than the simulated annotator: the demo replays fewer items, slower (2,000 over
10 minutes unless --max-items / --duration say otherwise), and after the stream it waits for the
last answers until no label came for a minute, or until Ctrl-C; then it prints the summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streamer.config import Settings
from streamer.kafka.client import client_kwargs
from streamer.kafka.groups import start_group_consumer
from streamer.replay import Annotator

log = logging.getLogger("streamer.demo")

PEOPLE_ITEMS = 2_000
PEOPLE_DURATION = 600.0
IDLE_SECONDS = 60.0  # after the stream: no new label for this long ends the demo
WEB_PORT = 8000
DEMO_USER = "demo@localhost"
DEMO_PASSWORD = "streamer-demo"
# A local demo's Label Studio listens on 127.0.0.1 only; a fixed token lets a second demo reuse it
DEMO_TOKEN = "streamer-demo-token-0123456789abcdef"
DEMO_DATA = Path(".demo") / "label-studio"


def _port_or_free(port: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return port
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]


class SimulatedLabeller:
    """The demo's simulated annotator: answers every request from the truth after a delay."""

    drain_seconds = 30.0

    def __init__(self, settings: Settings, truth: dict[str, int], delay: float, stop: asyncio.Event,
                 producer: AIOKafkaProducer) -> None:
        self.settings, self.stop_event, self.producer = settings, stop, producer
        self.annotator = Annotator(truth, delay=delay)
        self._requests: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def sent(self) -> int:
        return self.annotator.sent

    async def start(self) -> None:
        self._requests, _ = await start_group_consumer(
            [self.settings.label_requests_topic], group_id="demo-annotator", name="demo annotator",
            client=client_kwargs(self.settings), log=log, auto_offset_reset="earliest",
            fetch_max_wait_ms=10)
        self._task = asyncio.create_task(self.annotator.run(
            self._requests, self.producer, self.settings.labels_topic, self.stop_event))

    async def joined(self) -> bool:
        assert self._requests is not None
        return bool(self._requests.assignment())

    def stream_over(self) -> None:
        pass

    def done(self, status: dict[str, Any]) -> bool:
        answered = self.annotator.answered
        return bool(answered) and self.sent >= len(answered) and sum(status["join_outcomes"].values()) >= self.sent

    async def stop(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._requests is not None:
            await self._requests.stop()


class PeopleLabeller:
    """A labelling edge run for the demo; the labels count as the service receives them."""

    drain_seconds = 24 * 3600.0  # the idle rule or Ctrl-C ends the wait, not a deadline

    def __init__(self, kind: str, settings: Settings, say, service_url: str | None = None) -> None:
        self.kind = kind
        self.service_url = service_url  # the page shows the service's budget spent
        self.say = say
        self.settings = settings
        self.sent = 0
        self.url = ""
        self._stop = asyncio.Event()
        self._enough = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._studio: Any = None
        self._last_change = time.monotonic()
        self._announced = False

    async def start(self) -> None:
        from streamer.label.studio import run_bridge
        from streamer.label.web import run_web

        if self.kind == "web":
            port = _port_or_free(WEB_PORT)
            edge = self.settings.model_copy(update={"metrics_port": port, "metrics_host": "127.0.0.1",
                                                    "service_url": self.service_url})
            self.url = f"http://127.0.0.1:{port}"
            self._task = asyncio.create_task(run_web(edge, self._stop))
        else:
            edge = self.settings.model_copy(update=await self._studio_settings())
            self.url = f"http://127.0.0.1:{edge.metrics_port}"
            self._task = asyncio.create_task(run_bridge(edge, self._stop))
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not in the main thread: no Ctrl-C
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, self._enough.set)

    async def _studio_settings(self) -> dict[str, Any]:
        from pydantic import SecretStr

        from streamer.label.local_studio import LocalLabelStudio, find_label_studio

        url, token = os.environ.get("STREAMER_LABEL_STUDIO_URL"), os.environ.get("STREAMER_LABEL_STUDIO_TOKEN")
        if not (url and token):
            binary = find_label_studio()
            if binary is None:
                raise RuntimeError("--annotator label-studio needs Label Studio: run `make label-studio` "
                                   "(installs it into .venv-label-studio), or set STREAMER_LABEL_STUDIO_URL "
                                   "and STREAMER_LABEL_STUDIO_TOKEN to one you run")
            self.say(f"starting Label Studio from {binary} (data in {DEMO_DATA}; the first start takes "
                     "about half a minute)...")
            self._studio = await asyncio.to_thread(
                LocalLabelStudio(binary, DEMO_DATA.resolve(), DEMO_USER, DEMO_PASSWORD, DEMO_TOKEN).start,
                self.say)
            url, token = self._studio.url, DEMO_TOKEN
            self.say(f"Label Studio: open {url}/ and log in as {DEMO_USER} / {DEMO_PASSWORD}")
        title = f"streamer demo {time.strftime('%Y-%m-%d %H:%M:%S')}"
        self.say(f"project {title!r}: open it, press 'Label All Tasks' (sort by prediction score, "
                 "ascending, for the most uncertain first)")
        return {"label_studio_url": url, "label_studio_token": SecretStr(token),
                "label_studio_project": title, "label_studio_poll_seconds": 1.0,
                "metrics_port": _port_or_free(9101), "metrics_host": "127.0.0.1"}

    async def joined(self) -> bool:
        if self._task is not None and self._task.done():
            self._task.result()  # raises why the edge stopped
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session, \
                    session.get(f"{self.url}/readyz") as reply:
                ready = reply.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False
        if ready and self.kind == "web" and not self._announced:
            self._announced = True
            self.say(f"labelling page: open {self.url}/ and answer (digit keys pick a class, Enter "
                     "accepts the prediction, s skips)")
        return ready

    def done(self, status: dict[str, Any]) -> bool:
        received = sum(status["join_outcomes"].values())
        if received != self.sent:
            self.sent, self._last_change = received, time.monotonic()
        return self._enough.is_set() or time.monotonic() - self._last_change > IDLE_SECONDS

    def stream_over(self) -> None:
        self._last_change = time.monotonic()
        self.say(f"the stream is over: answer what is left; the demo ends after {IDLE_SECONDS:.0f} s "
                 "without a new label, or at Ctrl-C")

    async def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if self._studio is not None:
            await asyncio.to_thread(self._studio.stop)
