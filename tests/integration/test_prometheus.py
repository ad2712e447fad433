"""A real Prometheus scrapes the service's metrics and answers every dashboard and alert query.

Runs where Debian's `prometheus` package is installed (the binary is on PATH); skips elsewhere.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import start_http_server

from streamer.broker import free_port
from streamer.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "streamer.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="prometheus not installed (apt-get install -y --no-install-recommends prometheus)",
)

SCRAPES_NEEDED = 4  # rate() over the dashboard's window needs at least two samples



def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def query(base: str, expr: str) -> dict[str, Any]:
    """Instant query; a PromQL error comes back as HTTP 400 with a JSON body, returned as is."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        return get_json(url)
    except urllib.error.HTTPError as error:
        return json.load(error)


def as_grafana_would_send(expr: str) -> str:
    return expr.replace("$__rate_interval", "10s").replace("$instance", ".+")


def dashboard_targets() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], as_grafana_would_send(target["expr"]))
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def alert_exprs() -> list[tuple[str, str]]:
    yaml = pytest.importorskip("yaml", reason="PyYAML not installed (pip install pyyaml)")
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [(rule["alert"], rule["expr"]) for group in groups for rule in group["rules"]]


def record_activity(metrics: Metrics) -> None:
    """One micro-batch's worth of every metric the dashboard shows."""
    metrics.items.inc(100)
    metrics.predictions.inc(100)
    metrics.decisions.labels(reason="skip").inc(95)
    metrics.decisions.labels(reason="uncertainty").inc(5)
    metrics.label_requests.inc(5)
    metrics.labels.labels(outcome="joined").inc(4)
    metrics.labels.labels(outcome="late").inc(1)
    metrics.dead_letters.labels(source="items", reason="decode").inc()
    metrics.pending_expired.inc()
    metrics.decision_latency.observe(0.004)
    metrics.item_latency.observe(0.02)
    metrics.batch_size.observe(100)
    metrics.label_delay.observe(3.0)
    metrics.model_version.inc()


@pytest.fixture(scope="module")
def metrics_target() -> Iterator[str]:
    """The service's registry served over HTTP, changing as a running service's would."""
    metrics = Metrics()
    metrics.ready.set(1)
    metrics.budget.set(0.05)
    metrics.spend.set(1.0)
    metrics.threshold.set(0.42)
    metrics.accuracy.set(0.9)
    metrics.pending.set(12)
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.2):
            record_activity(metrics)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    yield f"127.0.0.1:{port}"
    stop.set()
    worker.join()
    server.shutdown()


@pytest.fixture(scope="module")
def prometheus(metrics_target: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus scraping the target every second; its base URL once it has data."""
    assert PROMETHEUS is not None
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: streamer\n"
        f"    static_configs: [{{targets: ['{metrics_target}']}}]\n"
    )
    port = free_port()
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_samples(base, process, workdir / "prometheus.log")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_for_samples(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 25
    expr = f"count_over_time(streamer_ready[1m]) >= {SCRAPES_NEEDED}"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited with {process.returncode}:\n{log.read_text()}")
        try:
            if query(base, expr)["data"]["result"]:
                return
        except (OSError, KeyError):
            pass  # not listening yet
        time.sleep(0.5)
    pytest.fail(f"prometheus scraped fewer than {SCRAPES_NEEDED} times in 25 s:\n{log.read_text()}")


def test_every_dashboard_query_is_valid_and_returns_data(prometheus: str) -> None:
    empty = []
    for title, expr in dashboard_targets():
        answer = query(prometheus, expr)
        assert answer["status"] == "success", f"{title}: {expr}\n{answer.get('error')}"
        if not answer["data"]["result"]:
            empty.append(f"{title}: {expr}")
    assert not empty, "queries with no data although every metric was set:\n" + "\n".join(empty)


def test_key_panels_show_the_values_the_service_set(prometheus: str) -> None:
    def value(expr: str) -> float:
        (series,) = query(prometheus, expr)["data"]["result"]
        return float(series["value"][1])

    assert value("streamer_ready") == 1
    assert value("streamer_budget_spend_ratio") == 1.0
    assert value("sum(rate(streamer_items_total[10s]))") > 0
    assert value('sum(rate(streamer_decisions_total{reason="uncertainty"}[10s]))') > 0
    assert (
        0.0025
        < value(
            "histogram_quantile(0.5, sum by (le) (rate(streamer_decision_latency_seconds_bucket[10s])))"
        )
        <= 0.005
    )


def test_instance_variable_lists_the_scraped_service(prometheus: str, metrics_target: str) -> None:
    url = f"{prometheus}/api/v1/label/instance/values?" + urllib.parse.urlencode(
        {"match[]": "streamer_ready"}
    )
    assert get_json(url)["data"] == [metrics_target]


def test_every_alert_expression_is_valid(prometheus: str) -> None:
    for name, expr in alert_exprs():
        answer = query(prometheus, expr)
        assert answer["status"] == "success", f"{name}: {answer.get('error')}"
