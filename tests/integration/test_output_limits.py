"""An item that fits the broker can make outputs that do not: never a crash, never a loss."""

from __future__ import annotations

import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from streamer.app import build_service
from streamer.config import load_settings
from tests.integration.harness import consume_all

pytestmark = pytest.mark.integration


async def test_a_label_request_too_large_with_features_is_sent_without_them(kafka, topics) -> None:
    settings = load_settings(
        bootstrap_servers=kafka.bootstrap_servers, budget=1.0, n_features=300_000, metrics_port=0,
        **{name.replace("-", "_"): value for name, value in topics.items()},
    )
    service = await build_service(settings)
    await service.start()
    try:
        # 600 kB of integer zeros: each becomes "0.0" in the request, over the 1 MiB limit
        value = orjson.dumps({"id": "wide", "features": [0] * 300_000})
        record = ConsumerRecord(settings.items_topic, 0, 0, 0, 0, b"wide", value, None, 4, len(value), [])
        await service.process_items([record])
    finally:
        await service.close()

    requests = await consume_all(kafka.bootstrap_servers, settings.label_requests_topic, expect=1)
    assert [r["id"] for r in requests] == ["wide"]
    assert requests[0].get("features") is None  # the pending store keeps them for the join
    assert service.counts["label_requests"] == 1 and service.counts["dead_letters"] == 0
