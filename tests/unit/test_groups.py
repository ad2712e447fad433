"""Consumer-group timeouts by broker, and the watch that logs and reports a group's join."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka import TopicPartition

from streamer.kafka.groups import GroupWatch, group_timeouts


def test_a_given_session_timeout_wins_over_the_brokers_default() -> None:
    assert group_timeouts(6000, embedded=True) == {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1500}
    assert group_timeouts(1000, embedded=False)["heartbeat_interval_ms"] == 250


def test_apache_kafka_gets_a_session_its_default_minimum_accepts() -> None:
    assert group_timeouts(None, embedded=False)["session_timeout_ms"] >= 6000  # group.min.session.timeout.ms


async def test_the_watch_says_it_waits_then_how_long_the_join_took(caplog: pytest.LogCaptureFixture) -> None:
    watch = GroupWatch("annotator", "annotators", ["label-requests"])
    with caplog.at_level(logging.INFO, logger="streamer.kafka.groups"):
        watch.started()
        await asyncio.sleep(0.05)
        await watch.on_partitions_assigned([TopicPartition("label-requests", 1),
                                            TopicPartition("label-requests", 0)])
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "annotator: waiting for partitions of label-requests (group annotators)"
    assert lines[1].startswith("annotator: joined group annotators after 0.")
    assert lines[1].endswith("['label-requests[0]', 'label-requests[1]']")
    status = watch.status()
    assert status["partitions"] == ["label-requests[0]", "label-requests[1]"]
    assert 0.04 <= status["joined_after_s"] < 5 and status["assignments"] == 1
    assert 0 <= status["since_assignment_s"] < 5


async def test_a_rebalance_is_logged_and_revoked_partitions_leave_the_status(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = GroupWatch("items", "streamer", ["items"])
    watch.started()
    await watch.on_partitions_assigned([TopicPartition("items", 0), TopicPartition("items", 1)])
    await watch.on_partitions_revoked([TopicPartition("items", 1)])
    with caplog.at_level(logging.INFO, logger="streamer.kafka.groups"):
        await watch.on_partitions_assigned([TopicPartition("items", 2)])
    assert "items: group streamer rebalanced: now ['items[2]']" in caplog.text
    assert watch.status()["partitions"] == ["items[2]"] and watch.status()["assignments"] == 2


async def test_a_watch_keeps_reminding_while_no_partition_comes(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("streamer.kafka.groups._WAITING_LOG_SECONDS", 0.02)
    watch = GroupWatch("items", "streamer", ["items"])
    with caplog.at_level(logging.INFO, logger="streamer.kafka.groups"):
        watch.started()
        await asyncio.sleep(0.1)
        watch.stop()
    assert "items: still waiting for partitions of group streamer after" in caplog.text


def test_a_consumer_without_a_group_reports_what_it_took() -> None:
    watch = GroupWatch("labels", None, ["labels"])
    watch.assigned_manually([TopicPartition("labels", 2), TopicPartition("labels", 0)])
    status = watch.status()
    assert status["group"] is None and status["partitions"] == ["labels[0]", "labels[2]"]
    assert status["joined_after_s"] is None and status["since_assignment_s"] is not None
