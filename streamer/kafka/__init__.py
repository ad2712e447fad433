"""Kafka: clients, topics, consumer groups, the bulk producer and the service loop."""

from __future__ import annotations
