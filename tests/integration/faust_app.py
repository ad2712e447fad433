"""A Faust user's app that adds selective sampling with one call -- the worker that
``test_faust_sampling.py`` runs against the session's Tansu broker and Redis.

The app itself is the faust baseline's (``benchmarks/faust_agent.py`` ``tansu_app``: raw codecs,
at least once, short session timeouts for Tansu); what a user adds to theirs is the
:func:`streamer.faust_sampling.sampling_agent` call in :func:`build_app`. Run as faust's own command
line runs any app::

    SAMPLING_APP='{"bootstrap": "127.0.0.1:9092", ...}' python tests/integration/faust_app.py worker

``SAMPLING_APP`` (JSON) names the broker, the group, the five topics, the Redis URL, the HTTP
port of ``/metrics`` and ``/status``, and the sampling settings (the Redis key prefix among
them).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def build_app(config: dict[str, Any]) -> Any:
    """The user's app (here: the baseline's) with the sampling agents registered on it."""
    sys.path.insert(0, str(BENCHMARKS))
    from faust_agent import tansu_app

    from streamer.faust_sampling import sampling_agent

    app = tansu_app(config["group"], config["bootstrap"], config["partitions"])
    sampling_agent(
        app,
        config["items"],
        labels_topic=config["labels"],
        label_requests_topic=config["requests"],
        predictions_topic=config["predictions"],
        dead_letters_topic=config["dead_letters"],
        store=config["redis_url"],
        settings=config["settings"],
        http_port=config["http_port"],
    )
    return app


if __name__ == "__main__":
    build_app(json.loads(os.environ["SAMPLING_APP"])).main()
