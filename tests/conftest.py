"""Shared fixtures: real Redis and a real Tansu broker, started for the test session."""

from __future__ import annotations

pytest_plugins = ["tests.fixtures_redis", "tests.fixtures_kafka", "tests.fixtures_label_studio"]
