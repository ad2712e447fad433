"""Transport: wire codecs, schema validation, the Kafka service loop and dead letters."""

from __future__ import annotations
