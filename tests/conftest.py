"""Shared fixtures: real Redis, a real Tansu broker and a real Label Studio, started for the test
session."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.fixtures_redis", "tests.fixtures_kafka", "tests.fixtures_label_studio"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that need Label Studio run last, together: its server (a Django process) then
    shares the two cores with no other test's timing."""
    items.sort(key=lambda item: "label_studio" in getattr(item, "fixturenames", ()))
