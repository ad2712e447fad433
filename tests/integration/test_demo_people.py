"""`streamer demo --annotator web|label-studio`: people (here: their HTTP calls) answer.

The demo runs in this process on its embedded broker; a thread plays the person. For ``web`` it
uses the page's own JSON API (the browser test in test_label_web.py presses the keys); for
``label-studio`` it annotates through Label Studio's REST API, as its UI does.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import threading
import time
import urllib.request

import pytest

from streamer import demo
from streamer.label import demo_annotators

pytestmark = pytest.mark.timeout(300)


class Lines(io.TextIOBase):
    """The demo's output, readable while it runs."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines += text.splitlines()
        return len(text)

    def find(self, pattern: str, timeout: float = 120.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            time.sleep(0.2)
        raise TimeoutError(f"no line matching {pattern!r}:\n" + "\n".join(self.lines[-30:]))


def _run_demo(out: Lines, annotator: str, result: dict) -> threading.Thread:
    def go() -> None:
        result["summary"] = asyncio.run(demo.run_demo(
            None, max_items=1_500, duration=12.0, budget=0.05, metrics_port=0, annotator=annotator,
            out=out))

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def _json(url: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


@pytest.fixture
def quick_idle(monkeypatch):
    monkeypatch.setattr(demo_annotators, "IDLE_SECONDS", 4.0)


def test_demo_with_the_labelling_page(quick_idle) -> None:
    out, result = Lines(), {}
    thread = _run_demo(out, "web", result)
    url = out.find(r"labelling page: open (http://\S+)/ ")[1]
    answered = 0
    deadline = time.monotonic() + 60
    while answered < 30 and time.monotonic() < deadline:
        item = _json(f"{url}/api/next?annotator=tester&wait=1")["item"]
        if item is None:
            continue
        # the person answers with the model's own prediction where it has one, else class 0
        label = item["prediction"] if item["prediction"] is not None else 0
        _json(f"{url}/api/answer", {"id": item["id"], "claim": item["claim"], "label": str(label)})
        answered += 1
    stats = _json(f"{url}/api/stats")
    thread.join(120)
    summary = result["summary"]
    assert answered == 30
    assert summary["annotator"] == "web"
    assert summary["join_outcomes"]["joined"] >= 30 and summary["labels_applied"] >= 30
    assert summary["labels_sent"] == sum(summary["join_outcomes"].values())
    # the page shows the budget the demo's service spent (its /status)
    assert stats["budget"]["budget"] == 0.05 and stats["budget"]["items_seen"] > 0


def test_demo_with_label_studio(quick_idle, label_studio, monkeypatch) -> None:
    monkeypatch.setenv("STREAMER_LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("STREAMER_LABEL_STUDIO_TOKEN", label_studio.token)
    out, result = Lines(), {}
    thread = _run_demo(out, "label-studio", result)
    title = out.find(r"project '([^']+)'")[1]
    answered: set[int] = set()
    deadline = time.monotonic() + 90
    while len(answered) < 20 and time.monotonic() < deadline:
        project = label_studio.project(title)
        for task in label_studio.tasks(project["id"]) if project else []:
            if task["id"] not in answered and len(answered) < 20:
                label_studio.annotate(task["id"], "1")
                answered.add(task["id"])
        time.sleep(0.5)
    thread.join(150)
    summary = result["summary"]
    assert len(answered) == 20
    assert summary["annotator"] == "label-studio"
    assert summary["join_outcomes"]["joined"] == 20 == summary["labels_applied"]
