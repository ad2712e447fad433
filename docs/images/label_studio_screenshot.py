"""Make docs/images/label-studio.png: what an annotator sees of a task the bridge created.

Starts Label Studio (from `make label-studio`), the embedded broker and `streamer label-studio`,
puts three sensor label requests on the topic, logs in with headless Debian chromium and
screenshots the first task. Run from the checkout: .venv/bin/python docs/images/label_studio_screenshot.py
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from streamer.broker import EmbeddedBroker, free_port
from streamer.label.local_studio import LocalLabelStudio, find_label_studio
from streamer.wire import encode_label_request

OUT = Path(__file__).with_name("label-studio.png")
USER, PASSWORD, TOKEN = "annotator@example.com", "screenshot-password", "screenshot-token-0123456789abcdef"
PROJECT = "sensor labels"


async def put_requests(bootstrap: str) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait("label-requests", encode_label_request(
                f"cam3-{i}", prediction=1, proba={0: 0.45, 1: 0.55}, scores={"margin": 0.9},
                reason="uncertainty", model_version=42, requested_at=time.time(),
                features={"temp_c": 21.5 + i, "humidity": 0.41, "vibration_rms": 0.032, "pressure_kpa": 101.2}),
                key=f"cam3-{i}".encode())
    finally:
        await producer.stop()


def main() -> None:
    binary = find_label_studio()
    assert binary is not None, "run `make label-studio` first"
    with tempfile.TemporaryDirectory() as data, EmbeddedBroker() as broker:
        studio = LocalLabelStudio(binary, Path(data), USER, PASSWORD, TOKEN).start(print)

        def api(path: str):
            request = urllib.request.Request(studio.url + path, headers={"Authorization": f"Token {TOKEN}"})
            return json.loads(urllib.request.urlopen(request).read())

        bridge = None
        try:
            asyncio.run(put_requests(broker.bootstrap_servers))
            bridge = subprocess.Popen([sys.executable, "-m", "streamer.cli", "label-studio", "--bootstrap-servers",
                                       broker.bootstrap_servers, "--label-studio-url", studio.url, "--project",
                                       PROJECT, "--port", str(free_port())],
                                      env={**os.environ, "STREAMER_LABEL_STUDIO_TOKEN": TOKEN})
            for _ in range(240):
                found = [p for p in api("/api/projects/?page_size=100")["results"] if p["title"] == PROJECT]
                if found and api(f"/api/tasks/?project={found[0]['id']}")["total"] >= 3:
                    break
                time.sleep(0.5)
            project = found[0]["id"]
            task = api(f"/api/tasks/?project={project}")["tasks"][0]["id"]
            options = webdriver.ChromeOptions()
            options.binary_location = "/usr/bin/chromium"
            for arg in ("--headless=new", "--no-sandbox", "--window-size=1280,760", "--disable-dev-shm-usage"):
                options.add_argument(arg)
            driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
            try:
                driver.get(f"{studio.url}/user/login/")
                driver.find_element(By.NAME, "email").send_keys(USER)
                driver.find_element(By.NAME, "password").send_keys(PASSWORD)
                driver.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()
                time.sleep(3)
                driver.get(f"{studio.url}/projects/{project}/data?task={task}")
                time.sleep(8)  # the labelling app loads its bundle and the task
                driver.save_screenshot(str(OUT))
            finally:
                driver.quit()
        finally:
            if bridge is not None:
                bridge.terminate()
                bridge.wait()
            studio.stop()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
