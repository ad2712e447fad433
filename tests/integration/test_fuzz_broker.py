"""A seeded stream of garbage through a real broker and a real `streamer run` (no mocks).

The stream and the checks are those of ``benchmarks/fuzz_broker.py``, at a smaller scale:
2,000 garbage items of every kind (2 MB messages included), 1,000 good items over three
partitions, 300 garbage labels, then labels with unusual classes and a second wave of good
items. The in-process store is used, so this test needs no Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.integration.harness import ServiceProcess
from tests.scripts import load_script

pytestmark = pytest.mark.integration

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_broker.py"
SEED = 4


@pytest.fixture(scope="module")
def fuzz() -> ModuleType:
    return load_script(BENCHMARK, "fuzz_broker")


@pytest.fixture(scope="module")
def report(kafka, fuzz: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the fuzz stream once; every test below checks one promise of its outcome."""
    roles, flags = fuzz.topic_names(uuid.uuid4().hex[:8])
    messages = fuzz.generate(SEED, n_garbage_items=2000, n_good_items=1000, n_garbage_labels=300,
                             n_huge=1, n_unknown_labels=30)
    service = ServiceProcess(kafka.bootstrap_servers,
                             {**flags, "n-features": fuzz.N_FEATURES, "seed": SEED},
                             tmp_path_factory.mktemp("fuzz") / "service.log")

    async def go() -> dict[str, Any]:
        await asyncio.to_thread(service.start)
        try:
            result = await fuzz.run_fuzz(kafka.bootstrap_servers, roles, service, messages,
                                         n_second_wave=250, seed=SEED, timeout_s=60)
        finally:
            result_exit = await asyncio.to_thread(service.stop)
        return {**result, "exit_code": result_exit, "log": service.log()}

    return asyncio.run(go())


def test_the_service_survives_the_garbage_and_stays_ready(report: dict[str, Any]) -> None:
    assert report["crashes"] == 0 and report["service_alive"], report["log"]
    assert report["readyz"] == 200 and report["service_error"] is None
    assert report["exit_code"] == 0  # and shuts down cleanly on SIGTERM


def test_every_bad_message_has_its_dead_letter_and_nothing_else_has_one(
    report: dict[str, Any],
) -> None:
    assert report["problems"] == [], "\n".join(report["problems"][:20])
    assert report["bad_messages"] >= 2300
    # the oversize valid item is either dead-lettered or decided, so one more at most
    assert report["bad_messages"] <= report["dead_letters_on_topic"] <= report["bad_messages"] + 1


def test_every_kind_of_garbage_was_tried_and_dead_lettered_for_its_reason(
    report: dict[str, Any], fuzz: ModuleType
) -> None:
    rows = {(r["topic"], r["kind"]): r for r in report["kinds"]}
    expected = [("items", k) for k in [*fuzz.ITEM_GARBAGE, *fuzz.ITEM_HUGE]]
    expected += [("labels", k) for k in [*fuzz.LABEL_GARBAGE, *fuzz.LABEL_HUGE]]
    for key in expected:
        row = rows[key]
        assert row["tried"] >= 1 and row["dead_lettered"] == row["tried"], row
        assert row["reasons"] == {row["expected_reason"]: row["tried"]}, row


def test_no_good_item_is_lost_behind_the_garbage(report: dict[str, Any]) -> None:
    assert report["good_items"] >= 1000 + 250 + 3
    assert report["good_items_predicted"] == report["good_items"]
    assert report["good_items_lost"] == 0


def test_the_dead_letter_metrics_add_up_to_the_topic(report: dict[str, Any]) -> None:
    assert report["metrics_http"] == 200
    assert report["dead_letters_in_metrics"] == report["dead_letters_on_topic"]


def test_labels_of_unknown_items_and_unusual_classes_are_counted_not_dead_lettered(
    report: dict[str, Any], fuzz: ModuleType
) -> None:
    outcomes = report["join_outcomes"]
    assert outcomes["unknown"] >= 30
    assert outcomes["joined"] == report["label_requests_answered"] > 0
    if report["label_requests_answered"] > fuzz.LABEL_CLASSES.index("zebra"):
        assert "zebra" in report["classes"]  # a class first seen in a label is learned
