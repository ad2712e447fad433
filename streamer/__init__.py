"""streamer: stream-based selective sampling (online active learning) as a service."""

from __future__ import annotations

__version__ = "0.1.0"
