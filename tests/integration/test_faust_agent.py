"""The faust-streaming baseline of the throughput benchmark (``benchmarks/faust_agent.py``).

Each mode runs as the benchmark runs it -- a subprocess built by ``agent_command`` -- against
the session's Tansu broker, on 2,000 items of 16 features, and must exit by itself.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from pathlib import Path
from types import ModuleType

import numpy as np
import orjson
import pytest

from tests.scripts import load_script

pytest.importorskip("faust", reason="the faust baseline needs the bench extra: "
                    "pip install -e '.[bench]' (faust-streaming)")

from streamer.config import Settings  # noqa: E402
from streamer.kafka.client import ensure_topics  # noqa: E402
from tests.integration.harness import consume_all, produce  # noqa: E402

pytestmark = pytest.mark.integration

AGENT = Path(__file__).resolve().parents[2] / "benchmarks" / "faust_agent.py"
N_ITEMS = 2_000
N_FEATURES = 16
PARTITIONS = 4


@pytest.fixture(scope="module")
def faust_agent() -> ModuleType:
    return load_script(AGENT, "faust_agent")


def _items() -> list[tuple[bytes, bytes]]:
    features = np.random.default_rng(7).normal(size=(N_ITEMS, N_FEATURES))
    return [
        (f"item-{i}".encode(), orjson.dumps({"id": f"item-{i}", "features": row.tolist()}))
        for i, row in enumerate(features)
    ]


@pytest.mark.parametrize("mode", ["take", "event"])
def test_agent_predicts_every_item_once_and_asks_about_a_few(
    kafka, topics: dict[str, str], faust_agent: ModuleType, mode: str, tmp_path: Path
) -> None:
    bootstrap = kafka.bootstrap_servers
    items, predictions = topics["items-topic"], topics["predictions-topic"]
    requests = topics["label-requests-topic"]
    settings = Settings(bootstrap_servers=bootstrap, topic_partitions=PARTITIONS)
    asyncio.run(ensure_topics(settings, [items, predictions, requests]))
    asyncio.run(produce(bootstrap, items, _items()))

    argv, env = faust_agent.agent_command(
        bootstrap, items, predictions, requests, N_FEATURES, mode, N_ITEMS,
        topics["group-id"], partitions=PARTITIONS,
    )
    log = tmp_path / "agent.log"
    with open(log, "wb") as out:
        agent = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            code = agent.wait(timeout=45)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
            pytest.fail(f"the {mode} agent did not exit after {N_ITEMS} items in 45 s:\n"
                        f"{log.read_text(errors='replace')[-3000:]}")
    assert code == 0, log.read_text(errors="replace")[-3000:]

    async def outputs() -> tuple[list, list]:
        return await asyncio.gather(
            consume_all(bootstrap, predictions, idle_s=1.0, timeout_s=20),
            consume_all(bootstrap, requests, idle_s=1.0, timeout_s=20),
        )

    predicted, asked = asyncio.run(outputs())
    counts = Counter(p["id"] for p in predicted)
    assert set(counts) == {f"item-{i}" for i in range(N_ITEMS)}
    assert [i for i, n in counts.items() if n > 1] == []
    assert set(predicted[0]) == {"id", "prediction", "confidence", "model_version"}
    assert 0 < len(asked) < 0.2 * N_ITEMS
    assert {r["id"] for r in asked} <= set(counts)
