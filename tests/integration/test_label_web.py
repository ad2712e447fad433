"""`streamer annotate --web` end to end: a real broker, a real `streamer run`, a real browser.

The browser test drives Debian's chromium headless through selenium with the keyboard only and
checks that the service joined every label given. Set ``STREAMER_UPDATE_SCREENSHOTS=1`` to write
its screenshot to ``docs/images/label-web.png`` (else it goes to the test's tmp folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from streamer.broker import free_port
from streamer.config import load_settings
from streamer.label.web import run_web
from streamer.wire import encode_item, encode_label_request
from tests.integration.harness import (
    ServiceProcess,
    consume_all,
    produce,
    produce_steadily,
    sea_stream,
)

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "label-web.png"
ANSWERS = 20


def _settings(kafka, topics: dict[str, str], port: int, **more: Any):
    return load_settings(
        None, bootstrap_servers=kafka.bootstrap_servers, label_requests_topic=topics["label-requests-topic"],
        labels_topic=topics["labels-topic"], dead_letters_topic=topics["dead-letters-topic"],
        label_group_id=f"{topics['group-id']}-web", metrics_host="127.0.0.1", metrics_port=port, **more)


@contextlib.asynccontextmanager
async def web_edge(settings) -> AsyncIterator[str]:
    """``run_web`` in this event loop until the block ends; yields its base URL once ready."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_web(settings, stop))
    base = f"http://127.0.0.1:{settings.metrics_port}"
    deadline = time.monotonic() + 30
    while (await asyncio.to_thread(_http, "GET", f"{base}/readyz"))[0] != 200:
        assert not task.done(), f"the web edge stopped: {task.exception()!r}"
        assert time.monotonic() < deadline, "the web edge got no partitions in 30 s"
        await asyncio.sleep(0.2)
    try:
        yield base
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _http(method: str, url: str, body: bytes | None = None,
          content_type: str = "application/json") -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": content_type} if body is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=15) as reply:
            raw, status = reply.read(), reply.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    except OSError:
        return 0, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


async def call(method: str, url: str, body: Any = None, raw: bytes | None = None,
               content_type: str = "application/json") -> tuple[int, Any]:
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    return await asyncio.to_thread(_http, method, url, data, content_type)


def _need_chromium() -> None:
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    message = ("needs Debian's chromium and chromedriver (/usr/bin/chromium, /usr/bin/chromedriver): "
               "apt-get install chromium chromium-driver (make test installs them as root)")
    if os.environ.get("CI"):
        pytest.fail(message)  # `make test` installs them: missing in CI is a defect, not a skip
    pytest.skip(message)


@pytest.mark.timeout(240)
async def test_a_person_labels_20_requests_with_the_keyboard_and_the_service_joins_them(
    kafka, topics, tmp_path: Path
) -> None:
    _need_chromium()
    stream = sea_stream(1500, seed=5)
    service = ServiceProcess(kafka.bootstrap_servers, {**topics, "budget": 0.2, "seed": 1},
                             tmp_path / "service.log")
    await asyncio.to_thread(service.start)
    try:
        # ten items first: the service asks for all of them while its model knows no class (no
        # predictions); once the page gave those ten labels, a steady flow whose requests carry
        # the predictions of a model that learns
        await produce(kafka.bootstrap_servers, topics["items-topic"], [
            (stream.ids[i].encode(), encode_item(id=stream.ids[i], features=stream.X[i]))
            for i in range(10)])
        service_url = f"http://127.0.0.1:{service.port}"
        async with web_edge(_settings(kafka, topics, free_port(), classes="0,1",
                                      service_url=service_url)) as base:

            async def flow_after_ten_labels() -> None:
                while (await call("GET", f"{base}/api/stats"))[1]["labels_given"] < 10:
                    await asyncio.sleep(0.1)
                await produce_steadily(kafka.bootstrap_servers, topics["items-topic"],
                                       _Tail(stream, 10), len(stream) - 10, 40)

            flowing = asyncio.create_task(flow_after_ten_labels())
            shot = tmp_path / "label-web.png"
            given = await asyncio.to_thread(_label_in_the_browser, base, stream.truth, shot)
            status, stats = await call("GET", f"{base}/api/stats")
            _, metrics = await call("GET", f"{base}/metrics")
        status_after = await asyncio.to_thread(
            service.wait_for, lambda s: s["join_outcomes"].get("joined", 0) >= ANSWERS, 30,
            f"{ANSWERS} labels joined")
        labels = await consume_all(kafka.bootstrap_servers, topics["labels-topic"], expect=ANSWERS)
    finally:
        if "flowing" in locals():
            flowing.cancel()
        await asyncio.to_thread(service.stop)

    assert len(given) == ANSWERS and len({i for i, _ in given}) == ANSWERS
    # the service applied exactly the labels given, each one the stream's truth, from "alice"
    outcomes = status_after["join_outcomes"]
    assert outcomes.get("joined") == sum(outcomes.values()) == ANSWERS, outcomes
    assert status_after["labels_applied"] == ANSWERS
    assert sorted((m["id"], m["label"]) for m in labels) == sorted(given)
    assert {m["annotator"] for m in labels} == {"alice"}
    assert status == 200 and stats["labels_given"] == ANSWERS and stats["by_annotator"] == {"alice": ANSWERS}
    assert b'streamer_labelling_labels_sent_total{kind="first"} 20.0' in metrics
    # the budget the service spent, read from its /status, as the header shows it
    assert stats["budget"]["budget"] == 0.2 and stats["budget"]["items_seen"] > 0
    if os.environ.get("STREAMER_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


class _Tail:
    """The items of a stream from ``start`` on, as produce_steadily reads them."""

    def __init__(self, stream, start: int) -> None:
        self.ids, self.X = stream.ids[start:], stream.X[start:]


def _label_in_the_browser(base: str, truth: dict[str, int], shot: Path) -> list[tuple[str, int]]:
    """Answer ANSWERS requests with digit keys (and Enter where the model guessed right)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.get(f"{base}/healthz")  # the page's origin, to set the annotator before it loads
        driver.execute_script("localStorage.setItem('streamer.annotator', 'alice')")
        driver.get(f"{base}/")
        wait = WebDriverWait(driver, 30)
        given: list[tuple[str, int]] = []
        enters = right = 0
        for _ in range(ANSWERS):
            seen = {i for i, _ in given}

            def shown(d, seen=seen):
                if not d.find_element(By.ID, "item").is_displayed():
                    return False
                text = d.find_element(By.ID, "item-id").text
                return text if text and text not in seen else False

            item_id = wait.until(shown)
            classes = [b.get_attribute("data-label") for b in
                       driver.find_elements(By.CSS_SELECTOR, "#classes button")]
            prediction = driver.find_element(By.ID, "prediction").get_attribute("textContent")
            label = truth[item_id]
            if prediction == str(label) and (right := right + 1) % 2 == 1:
                key = Keys.ENTER  # every other right guess is accepted with Enter
                enters += 1
            else:
                key = str(classes.index(str(label)) + 1)
            ActionChains(driver).send_keys(key).perform()
            given.append((item_id, label))
        wait.until(lambda d: d.find_element(By.ID, "given").text == str(ANSWERS))
        assert enters > 0, "the model never guessed right: Enter was not tried"
        wait.until(lambda d: d.find_element(By.ID, "item").is_displayed()
                   and d.find_element(By.ID, "item-id").text not in {i for i, _ in given})
        wait.until(lambda d: "% of" in d.find_element(By.ID, "budget").text)  # the service's budget
        time.sleep(1.2)  # one stats refresh, so the header shows the counts
        driver.save_screenshot(str(shot))
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        return given
    finally:
        driver.quit()


@pytest.mark.timeout(120)
async def test_the_page_shows_message_text_as_text_never_as_markup(kafka, topics) -> None:
    _need_chromium()
    evil = '<img src=x onerror="window.pwned=1">'
    await produce(kafka.bootstrap_servers, topics["label-requests-topic"], [(None, encode_label_request(
        f"id{evil}", prediction=f"cls{evil}", proba={f"cls{evil}": 0.5, "b": 0.5}, scores={},
        reason="uncertainty", model_version=1, requested_at=time.time(),
        features={f"feat{evil}": 1.0}, stream="s"))])
    async with web_edge(_settings(kafka, topics, free_port())) as base:
        shown = await asyncio.to_thread(_look, f"{base}/")
    assert shown["id"] == f"id{evil}" and shown["prediction"] == f"cls{evil}"
    assert f"cls{evil}" in shown["buttons"] and f"feat{evil}" in shown["features"]
    assert shown["images"] == 0 and shown["pwned"] is None


def _look(url: str) -> dict[str, Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.get(url)
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "item").is_displayed())
        time.sleep(0.3)
        text = lambda css: [e.get_attribute("textContent") for e in driver.find_elements(By.CSS_SELECTOR, css)]  # noqa: E731
        return {"id": text("#item-id")[0], "prediction": text("#prediction")[0],
                "buttons": [b.get_attribute("data-label") for b in driver.find_elements(By.CSS_SELECTOR, "#classes button")],
                "features": text("#features td"),
                "images": len(driver.find_elements(By.CSS_SELECTOR, "main img")),
                "pwned": driver.execute_script("return window.pwned")}
    finally:
        driver.quit()


async def test_bad_input_gets_a_clear_4xx_and_never_a_traceback(
    kafka, topics, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = time.time()
    frame = tmp_path / "frames" / "a.png"
    frame.parent.mkdir()
    frame.write_bytes(b"\x89PNG\r\n\x1a\n")
    requests = [
        encode_label_request(f"r{i}", prediction="cat", proba={"cat": 0.5 + i / 10, "dog": 0.5 - i / 10},
                             scores={"margin": i / 5}, reason="uncertainty", model_version=2,
                             requested_at=now, features={"w": 1.5, "h": i},
                             payload_uri=frame.as_uri() if i == 0 else None)
        for i in range(4)
    ] + [b"not a request"]
    await produce(kafka.bootstrap_servers, topics["label-requests-topic"],
                  [(None, value) for value in requests])
    settings = _settings(kafka, topics, free_port(), claim_seconds=3.0, payload_root=tmp_path / "frames")
    caplog.set_level(logging.INFO)
    async with web_edge(settings) as base:
        deadline = time.monotonic() + 10  # all four read, so the order is the queue's
        while (await call("GET", f"{base}/api/stats"))[1]["requests_read"] < 4:
            assert time.monotonic() < deadline, "the requests were not read in 10 s"
            await asyncio.sleep(0.1)
        page_status, page = await call("GET", f"{base}/")
        code, first = await call("GET", f"{base}/api/next?annotator=ann&wait=10")
        assert page_status == 200 and b"/api/next" in page
        assert code == 200 and first["item"]["id"] == "r0", first  # the coin flip first
        item = first["item"]
        assert item["features"] == [["w", 1.5], ["h", 0]] and item["classes"] == ["cat", "dog"]
        assert item["proba"] == [["cat", 0.5], ["dog", 0.5]] and item["prediction"] == "cat"
        assert item["payload_url"].startswith("/payload?uri=file")
        assert (await call("GET", base + item["payload_url"]))[0] == 200
        answer = f"{base}/api/answer"
        claim = {"id": "r0", "claim": item["claim"]}
        cases = [
            (await call("POST", answer, raw=b"{not json"), 400, "not JSON"),
            (await call("POST", answer, raw=b"[1, 2]"), 400, "JSON object"),
            (await call("POST", answer, raw=b'{"id": "r0"}', content_type="text/plain"), 415, "application/json"),
            (await call("POST", answer, {"id": "r0", "label": "cat"}), 400, "claim"),
            (await call("POST", answer, {**claim, "label": ""}), 400, "label"),
            (await call("POST", answer, {**claim, "label": ["cat"]}), 400, "label"),
            (await call("POST", answer, {**claim, "label": "a\nb"}), 400, "label"),
            (await call("POST", answer, {**claim, "label": "x" * 300}), 400, "label"),
            (await call("POST", answer, {"id": "nope", "claim": "c", "label": "cat"}), 404, "not an open request"),
            (await call("POST", answer, {"id": "r0", "claim": "forged", "label": "cat"}), 409, "claimed by someone else"),
            (await call("GET", f"{base}/api/next?annotator={'x' * 100}"), 400, "annotator"),
            (await call("GET", f"{base}/api/next?wait=soon"), 400, "wait"),
            (await call("POST", answer, raw=b"{" + b" " * 1_100_000 + b"}"), 413, None),
        ]
        for (status, body), want, words in cases:
            assert status == want, (status, body)
            if words is not None:
                assert words in body["error"], body
        # a new class is allowed and grows the book; a second answer is refused
        assert await call("POST", answer, {**claim, "label": "zebra"}) == \
            (200, {"ok": True, "id": "r0", "label": "zebra", "labels_given": 1})
        status, again = await call("POST", answer, {**claim, "label": "cat"})
        assert status == 409 and "already answered" in again["error"]
        # a claim that ran out is refused once another annotator holds the item
        _, held = await call("GET", f"{base}/api/next?annotator=ann")
        await asyncio.sleep(3.2)
        _, taken = await call("GET", f"{base}/api/next?annotator=bob")
        assert taken["item"]["id"] == held["item"]["id"]
        assert "zebra" in taken["item"]["classes"]
        status, stale = await call("POST", f"{base}/api/skip", {"id": held["item"]["id"],
                                                                "claim": held["item"]["claim"]})
        assert status == 409 and "claim ran out" in stale["error"]
        assert (await call("POST", f"{base}/api/skip", {"id": taken["item"]["id"],
                                                        "claim": taken["item"]["claim"]}))[0] == 200
        # 100 KB in the request line or one header: aiohttp answers 400 before any handler
        for line in (f"GET /api/next?annotator={'a' * 100_000} HTTP/1.1\r\nHost: x\r\n\r\n",
                     f"GET /api/stats HTTP/1.1\r\nHost: x\r\nX-Big: {'b' * 100_000}\r\n\r\n"):
            reply = await asyncio.to_thread(_raw, settings.metrics_port, line.encode())
            assert reply.split(b"\r\n", 1)[0] in (b"HTTP/1.0 400 Bad Request", b"HTTP/1.1 400 Bad Request"), \
                reply[:200]
            assert b"Traceback" not in reply
        _, stats = await call("GET", f"{base}/api/stats")
        assert stats["labels_given"] == 1 and stats["skipped"] == 1 and stats["open"] == 2
        assert stats["requests_read"] == 4 and stats["by_annotator"] == {"ann": 1}
    labels = await consume_all(kafka.bootstrap_servers, topics["labels-topic"], expect=1)
    assert [(m["id"], m["label"], m["annotator"]) for m in labels] == [("r0", "zebra", "ann")]
    dead = await consume_all(kafka.bootstrap_servers, topics["dead-letters-topic"], expect=1)
    assert len(dead) == 1
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR or "Traceback" in r.getMessage()]
    assert not problems, [r.getMessage() for r in problems]
    assert any("labelling page: http://127.0.0.1:" in r.getMessage() for r in caplog.records)

    # a restarted edge re-reads exactly the requests not finished (the answered, skipped and
    # dead-lettered offsets were committed)
    async with web_edge(settings) as base:
        deadline = time.monotonic() + 10
        while (stats := (await call("GET", f"{base}/api/stats"))[1])["requests_read"] < 2 \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # and nothing more comes
        _, stats = await call("GET", f"{base}/api/stats")
    assert stats["requests_read"] == 2 and stats["open"] == 2


def _raw(port: int, data: bytes) -> bytes:
    """Send ``data`` while reading the reply (the server answers and closes mid-send)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        def send() -> None:
            with contextlib.suppress(OSError):
                for start in range(0, len(data), 4096):
                    sock.sendall(data[start:start + 4096])

        sender = threading.Thread(target=send)
        sender.start()
        chunks = []
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        sender.join()
        return b"".join(chunks)
