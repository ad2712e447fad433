"""Consumer groups on the real embedded broker: detection, join logs, /status, fast restarts."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from streamer.broker import EmbeddedBroker
from streamer.kafka.groups import is_embedded_broker
from tests.integration.harness import ServiceProcess

pytestmark = pytest.mark.integration


async def test_the_embedded_broker_is_recognised_by_its_cluster_id(kafka: EmbeddedBroker) -> None:
    assert await is_embedded_broker(bootstrap_servers=kafka.bootstrap_servers)


def test_streamer_annotate_says_it_waits_for_partitions_and_when_it_joined(
    kafka: EmbeddedBroker, topics: dict[str, str]
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli", "annotate", "--bootstrap-servers", kafka.bootstrap_servers,
         "--label-requests-topic", topics["label-requests-topic"], "--labels-topic", topics["labels-topic"],
         "--group-id", topics["group-id"], "--max-items", "10"],
        stderr=subprocess.PIPE, text=True,
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        for line in process.stderr:
            lines.append(line)
            if "joined group" in line:
                break
    finally:
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=30)[1]
    text = "".join(lines) + rest
    waiting = text.index(f"annotator: waiting for partitions of {topics['label-requests-topic']}")
    joined = re.search(rf"annotator: joined group {topics['group-id']} after ([\d.]+) s", text)
    assert joined is not None and joined.start() > waiting, text
    assert process.returncode == 0, text


def test_status_lists_the_partitions_each_consumer_holds(
    kafka: EmbeddedBroker, topics: dict[str, str], tmp_path: Path
) -> None:
    service = ServiceProcess(kafka.bootstrap_servers, {**topics, "topic-partitions": 2},
                             tmp_path / "service.log").start()
    try:
        consumers = service.status()["consumers"]
    finally:
        assert service.stop() == 0
    items, labels = consumers["items"], consumers["labels"]
    assert items["group"] == topics["group-id"]
    assert items["partitions"] == [f"{topics['items-topic']}[{p}]" for p in (0, 1)]
    assert items["joined_after_s"] is not None and items["since_assignment_s"] >= 0
    # the labels are read without a group: every partition, taken directly
    assert labels["group"] is None and labels["joined_after_s"] is None
    assert labels["partitions"] == [f"{topics['labels-topic']}[{p}]" for p in (0, 1)]


def test_a_restarted_service_reads_labels_before_its_items_group_gives_it_partitions(
    kafka: EmbeddedBroker, topics: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "service.log"
    first = ServiceProcess(kafka.bootstrap_servers, topics, log).start()
    first.kill9()
    started = log.stat().st_size
    second = ServiceProcess(kafka.bootstrap_servers, topics, log).start()
    try:
        text = log.read_text()[started:]
    finally:
        assert second.stop() == 0
    # the dead member still holds the items partitions until its session expires; the labels
    # are not in a group, so nothing waits for that
    labels = text.index(f"labels: reading ['{topics['labels-topic']}[0]'")
    waiting = text.index("items: waiting for partitions")
    joined = text.index(f"items: joined group {topics['group-id']}")
    assert labels < joined and waiting < joined, text
