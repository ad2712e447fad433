"""A real Label Studio for the test session (pytest plugin), and a person's API calls to it.

Label Studio 1.23.2 lives in its own venv (``make label-studio``: about 1 GB of dependencies);
it starts offline with SQLite in a temporary folder, with a fixed legacy API token.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamer.label.local_studio import LocalLabelStudio, find_label_studio

TOKEN = "streamer-test-token-0123456789abcdef"
USER = "annotator@example.com"


class LabelStudio:
    """A running Label Studio: its URL and token, and the REST calls an annotator's UI makes."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.token = TOKEN
        self.process = process
        self.log = log

    def api(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            text = reply.read()
        return json.loads(text) if text else None

    def project(self, title: str) -> dict | None:
        found = [p for p in self.api("GET", "/api/projects/?page_size=100")["results"] if p["title"] == title]
        return found[0] if found else None

    def tasks(self, project_id: int) -> list[dict]:
        out, page = [], 1
        while True:
            body = self.api("GET", f"/api/tasks/?project={project_id}&fields=all&page_size=500&page={page}")
            out += body["tasks"]
            if len(body["tasks"]) < 500:
                return out
            page += 1

    def annotate(self, task_id: int, choice: str) -> dict:
        """Answer a task as the labelling UI does: create an annotation with one choice."""
        return self.api("POST", f"/api/tasks/{task_id}/annotations/", {
            "result": [{"from_name": "label", "to_name": "features", "type": "choices",
                        "value": {"choices": [choice]}}],
            "was_cancelled": False, "lead_time": 1.5})

    def annotate_new_class(self, task_id: int, text: str) -> dict:
        """Type a class that is not offered into the "class not listed" box."""
        return self.api("POST", f"/api/tasks/{task_id}/annotations/", {
            "result": [{"from_name": "new_class", "to_name": "features", "type": "textarea",
                        "value": {"text": [text]}}], "was_cancelled": False})

    def skip(self, task_id: int) -> dict:
        """The UI's Skip button: an annotation marked cancelled, with no result."""
        return self.api("POST", f"/api/tasks/{task_id}/annotations/", {"result": [], "was_cancelled": True})

    def update(self, annotation_id: int, choice: str) -> dict:
        return self.api("PATCH", f"/api/annotations/{annotation_id}/", {
            "result": [{"from_name": "label", "to_name": "features", "type": "choices",
                        "value": {"choices": [choice]}}]})

    def task(self, task_id: int) -> dict:
        return self.api("GET", f"/api/tasks/{task_id}/")

    def write_task_meta(self, task_id: int, meta: dict) -> None:
        """What Label Studio's own annotation endpoints do with a task they loaded earlier: save
        it whole, ``meta`` as it was then."""
        self.api("PATCH", f"/api/tasks/{task_id}/", {"meta": meta})

    def delete(self, annotation_id: int) -> None:
        self.api("DELETE", f"/api/annotations/{annotation_id}/")


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudio]:
    binary = find_label_studio()
    if binary is None:
        message = "Label Studio is not installed (.venv-label-studio): run `make label-studio`"
        if os.environ.get("CI"):
            pytest.fail(message)  # `make test` installs it: a missing one in CI is a defect
        pytest.skip(message)
    local = LocalLabelStudio(binary, tmp_path_factory.mktemp("label-studio"), USER,
                             "streamer-test-password", TOKEN).start()
    try:
        yield LabelStudio(local.url, local.process, local.log_path)  # type: ignore[arg-type]
    finally:
        local.stop()
