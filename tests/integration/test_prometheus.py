"""A real Prometheus scrapes a real `streamer run` with traffic and answers every query we ship.

The service runs against the session's Tansu broker and Redis; a producer feeds it items, a
simulated annotator answers its label requests, and a few malformed items and labels go to
the dead-letter topic. Prometheus (Debian's package) scrapes it every second with the rules of
deploy/prometheus/alerts.yml loaded. Then every query of the Grafana dashboard must return
numbers, and every alert rule must evaluate with every one of its selectors matching series.

A labelling edge runs beside it: `streamer annotate --web` on the same topics, answering a
request every half second through its JSON API (so the request-to-label histogram always has
fresh observations) and dead-lettering one malformed request. It stands in for the Label Studio
bridge, which needs a Label Studio: both serve the same EdgeMetrics, and it is scraped under the
bridge's job name, `label-studio-bridge`, which the labelling alerts select.

Consumer lag comes from the Kafka exporter in docker-compose.yml, which cannot run here (no
Docker, no exporter binary). A stand-in HTTP endpoint serves series with the exporter's names
and labels (kafka_consumergroup_lag{consumergroup, topic, partition}), so that the lag panels
and the lag alert are checked for typos too. Its values are made up; lag values are never
asserted, here or anywhere against Tansu, whose end offsets are not reliable.

Runs where Debian's `prometheus` package is installed (`make services` does it as root);
skips elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from streamer.broker import free_port
from streamer.replay import Annotator, load_stream
from streamer.wire import encode_item, encode_label
from tests.deploy_queries import ALERTS, alert_rules, dashboard, dashboard_targets, selectors
from tests.integration.harness import ServiceProcess, annotate

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="prometheus not installed (apt-get install -y --no-install-recommends prometheus)",
    ),
]

SCRAPES_NEEDED = 5  # rate() over the 10 s window below needs at least two samples
RATE_WINDOW = "10s"  # what Grafana sends for $__rate_interval at a 1 s scrape interval
ITEMS_PER_SECOND = 400
# The alert rules select job="streamer" and consumergroup="streamer", as deployed.
JOB = "streamer"
GROUP = "streamer"
EDGE_JOB = "label-studio-bridge"  # the labelling alerts select the bridge's job


@dataclass
class Live:
    service: ServiceProcess
    exporter: str  # host:port of the stand-in Kafka exporter
    prometheus: str  # base URL
    edge: str  # host:port of the labelling edge


# --- traffic -------------------------------------------------------------------------------


async def traffic(bootstrap: str, topics: dict[str, str], stop: asyncio.Event) -> None:
    """Items at a steady rate, labels from an annotator, and a few messages that must fail."""
    stream = load_stream(None, max_items=ITEMS_PER_SECOND * 300, seed=3)  # 5 minutes' worth
    annotator = Annotator(stream.truth, delay=0.05)
    annotating = asyncio.create_task(annotate(bootstrap, topics, annotator, stop))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        # dead letters from both sources, and labels that join nothing
        await producer.send_and_wait(topics["items-topic"], b"not json", key=b"bad-item")
        await producer.send_and_wait(topics["labels-topic"], b"{broken", key=b"bad-label")
        await producer.send_and_wait(
            topics["labels-topic"], encode_label(id="never-requested", label=1), key=b"x"
        )
        chunk = ITEMS_PER_SECOND // 10
        for start in range(0, len(stream), chunk):
            if stop.is_set():
                break
            for i in range(start, min(start + chunk, len(stream))):
                value = encode_item(id=stream.ids[i], features=stream.X[i])
                await producer.send(topics["items-topic"], value, key=stream.ids[i].encode())
            await producer.flush()
            await asyncio.sleep(0.1)
    finally:
        await producer.stop()
        stop.set()
        await annotating


@pytest.fixture(scope="module")
def service(kafka: Any, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """`streamer run` with traffic flowing until the module's tests are done."""
    tag = uuid.uuid4().hex[:8]
    topics = TOPICS[tag] = {
        "items-topic": f"items-{tag}",
        "label-requests-topic": f"label-requests-{tag}",
        "labels-topic": f"labels-{tag}",
        "predictions-topic": f"predictions-{tag}",
        "dead-letters-topic": f"dead-letters-{tag}",
        "group-id": f"streamer-{tag}",
    }
    workdir = tmp_path_factory.mktemp("service")
    process = ServiceProcess(kafka.bootstrap_servers, {
        **topics, "budget": 0.1, "redis-url": redis_url, "redis-prefix": f"test-prom-{tag}",
        "checkpoint-every-seconds": 2,
    }, workdir / "service.log")
    process.start()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(traffic(kafka.bootstrap_servers, topics, stop),),
        daemon=True,
    )
    thread.start()
    try:
        process.wait_for(
            lambda s: s["items_seen"] >= 2 * ITEMS_PER_SECOND and s["labels_applied"] > 0,
            timeout=60, what="items decided and labels learned",
        )
        yield process
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        process.stop()


TOPICS: dict[str, dict[str, str]] = {}  # the service's topics, for the edge


def http_json(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.load(reply)


def answer_requests(base: str, stop: threading.Event) -> None:
    """An annotator at the web edge: one answer every half second, the tenth item skipped."""
    answered = 0
    while not stop.is_set():
        with contextlib.suppress(OSError, ValueError):
            item = http_json(f"{base}/api/next?annotator=prometheus-test&wait=1")["item"]
            if item is not None:
                answered += 1
                if answered % 10 == 0:
                    http_json(f"{base}/api/skip", {"id": item["id"], "claim": item["claim"]})
                else:
                    http_json(f"{base}/api/answer",
                              {"id": item["id"], "claim": item["claim"], "label": "1"})
        stop.wait(0.5)


@pytest.fixture(scope="module")
def edge(service: ServiceProcess, kafka: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`streamer annotate --web` on the service's topics, answered through its API."""
    (topics,) = TOPICS.values()
    port = free_port()
    log_path = tmp_path_factory.mktemp("edge") / "edge.log"
    args = [sys.executable, "-m", "streamer.cli", "annotate", "--web", "--port", str(port),
            "--metrics-host", "127.0.0.1", "--bootstrap-servers", kafka.bootstrap_servers,
            "--group-id", f"{topics['group-id']}-web"]
    for flag in ("label-requests-topic", "labels-topic", "dead-letters-topic"):
        args += [f"--{flag}", topics[flag]]
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    stop = threading.Event()
    answering = threading.Thread(target=answer_requests, args=(base, stop), daemon=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"annotate --web exited with {process.returncode}:\n{log_path.read_text()}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{base}/readyz", timeout=2)
                break
            if time.monotonic() > deadline:
                pytest.fail(f"annotate --web not ready in 60 s:\n{log_path.read_text()}")
            time.sleep(0.5)

        async def bad_request() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
            await producer.start()
            try:
                await producer.send_and_wait(topics["label-requests-topic"], b"{broken", key=b"bad")
            finally:
                await producer.stop()

        asyncio.run(bad_request())
        answering.start()
        yield f"127.0.0.1:{port}"
    finally:
        stop.set()
        if answering.is_alive():
            answering.join(timeout=15)
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def exporter() -> Iterator[str]:
    """Stand-in for danielqsj/kafka-exporter: its consumer-group series, made-up values."""
    registry = CollectorRegistry()
    labels = ["consumergroup", "topic", "partition"]
    lag = Gauge("kafka_consumergroup_lag", "Current Approximate Lag of a ConsumerGroup at Topic/Partition", labels, registry=registry)
    offset = Gauge("kafka_consumergroup_current_offset", "Current Offset of a ConsumerGroup at Topic/Partition", labels, registry=registry)
    for partition, behind in enumerate((0, 12, 3)):
        lag.labels(GROUP, "items", str(partition)).set(behind)
        offset.labels(GROUP, "items", str(partition)).set(1000 + partition)
    port = free_port()
    server, _ = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield f"127.0.0.1:{port}"
    server.shutdown()


@pytest.fixture(scope="module")
def live(
    service: ServiceProcess, exporter: str, edge: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """A real Prometheus scraping both every second, with alerts.yml loaded, once it has data."""
    assert PROMETHEUS is not None
    workdir = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{ALERTS}']\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{service.port}']}}]\n"
        "  - job_name: kafka-exporter\n"
        f"    static_configs: [{{targets: ['{exporter}']}}]\n"
        f"  - job_name: {EDGE_JOB}\n"
        f"    static_configs: [{{targets: ['{edge}']}}]\n"
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
        wait_for_labelling(base)
        yield Live(service, exporter, base, edge)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_for_samples(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    expr = f"count_over_time(up[1m]) >= {SCRAPES_NEEDED}"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited with {process.returncode}:\n{log.read_text()}")
        try:
            if len(query(base, expr)["data"]["result"]) == 3:  # service, exporter, edge
                return
        except (OSError, KeyError):
            pass  # not listening yet
        time.sleep(0.5)
    pytest.fail(f"prometheus scraped fewer than {SCRAPES_NEEDED} times in 30 s:\n{log.read_text()}")


def wait_for_labelling(base: str) -> None:
    """Until the edge's labelled series exist: labels sent, answers skipped, a dead letter."""
    wanted = [
        'streamer_labelling_labels_sent_total{kind="first"}',
        'streamer_labelling_annotations_total{event="skipped"}',
        "streamer_labelling_dead_letters_total",
        f"rate(streamer_labelling_request_to_label_seconds_count[{RATE_WINDOW}]) > 0",
    ]
    deadline = time.monotonic() + 60
    missing = wanted
    while time.monotonic() < deadline:
        missing = [expr for expr in wanted if not query(base, expr)["data"]["result"]]
        if not missing:
            return
        time.sleep(0.5)
    pytest.fail(f"the labelling edge's series did not appear in 60 s: {missing}")


# --- Prometheus HTTP API -------------------------------------------------------------------


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
    return (
        expr.replace("$__rate_interval", RATE_WINDOW)
        .replace("$instance", ".+")
        .replace("$edge", ".+")
        .replace("$consumergroup", GROUP)
    )


def without_fallback(expr: str) -> str:
    """A stat's ``or vector(0)`` shows 0 instead of "No data"; the query itself must have data."""
    return expr.removesuffix(" or vector(0)")


def problems_of(answer: dict[str, Any]) -> str | None:
    """Why an answer would leave a panel empty or wrong, or None when it shows numbers."""
    if answer["status"] != "success":
        return f"error: {answer.get('error')}"
    series = answer["data"]["result"]
    if not series:
        return "no data"
    bad = [s["metric"] for s in series if not math.isfinite(float(s["value"][1]))]
    return f"not a number for {bad}" if bad else None


# --- the dashboard -------------------------------------------------------------------------


def test_every_dashboard_query_returns_numbers(live: Live) -> None:
    failures = []
    for title, expr in dashboard_targets():
        sent = without_fallback(as_grafana_would_send(expr))
        problem = problems_of(query(live.prometheus, sent))
        if problem:
            failures.append(f"{title}: {problem}\n    {sent}")
    assert not failures, "dashboard queries that would show no numbers:\n" + "\n".join(failures)


def test_score_heatmap_has_a_row_per_bucket_with_items_in_them(live: Live) -> None:
    (expr,) = [e for title, e in dashboard_targets() if title == "Score distribution"]
    series = query(live.prometheus, as_grafana_would_send(expr))["data"]["result"]
    buckets = {s["metric"]["le"]: float(s["value"][1]) for s in series}
    assert len(buckets) == 21 and "+Inf" in buckets  # 0.05 .. 1.0 and +Inf
    assert buckets["+Inf"] > 0, "items were scored in the window"


def test_key_panels_show_the_values_of_a_running_loop(live: Live) -> None:
    def value(expr: str) -> float:
        (series,) = query(live.prometheus, expr)["data"]["result"]
        return float(series["value"][1])

    assert value("streamer_ready") == 1
    assert value("streamer_budget_ratio") == 0.1
    assert value(f"sum(rate(streamer_items_total[{RATE_WINDOW}]))") > 0
    assert value(f"sum(rate(streamer_label_requests_total[{RATE_WINDOW}]))") > 0
    assert value('streamer_labels_total{outcome="joined"}') > 0
    assert value('streamer_labels_total{outcome="unknown"}') >= 1  # "never-requested"
    assert value("sum(streamer_dead_letters_total)") >= 2  # one bad item, one bad label
    assert value("sum(streamer_prequential_labels_total)") > 0
    assert value("streamer_model_version") >= 1
    assert 0 < value(
        f"histogram_quantile(0.99, sum by (le) (rate(streamer_decision_latency_seconds_bucket[{RATE_WINDOW}])))"
    ) <= 2.5


def test_dashboard_variables_list_the_scraped_service_and_consumer_group(live: Live) -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}

    def label_values(definition: str) -> list[str]:
        metric, label = definition.removeprefix("label_values(").removesuffix(")").split(", ")
        url = f"{live.prometheus}/api/v1/label/{label}/values?" + urllib.parse.urlencode(
            {"match[]": metric}
        )
        return get_json(url)["data"]

    assert label_values(variables["instance"]["definition"]) == [f"127.0.0.1:{live.service.port}"]
    assert label_values(variables["edge"]["definition"]) == [live.edge]
    assert variables["consumergroup"]["current"]["value"] in label_values(
        variables["consumergroup"]["definition"]
    )


# --- the alert rules -----------------------------------------------------------------------


def test_every_alert_rule_is_loaded_and_evaluates_without_error(live: Live) -> None:
    expected = {rule["alert"] for rule in alert_rules(yaml)}
    deadline = time.monotonic() + 10
    while True:
        groups = get_json(f"{live.prometheus}/api/v1/rules?type=alert")["data"]["groups"]
        rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
        evaluated = all(r["lastEvaluation"] > "2000" for r in rules.values())  # not the zero time
        if evaluated or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert set(rules) == expected
    broken = {name: r.get("lastError") for name, r in rules.items() if r["health"] != "ok"}
    assert not broken, f"rules that fail to evaluate: {broken}"


def test_every_alert_expression_is_valid(live: Live) -> None:
    for rule in alert_rules(yaml):
        answer = query(live.prometheus, rule["expr"])
        assert answer["status"] == "success", f"{rule['alert']}: {answer.get('error')}"


def test_every_selector_of_every_alert_matches_series(live: Live) -> None:
    # An alert whose metric name or label value is misspelt evaluates fine and never fires.
    empty = []
    for rule in alert_rules(yaml):
        found = selectors(rule["expr"])
        assert found, f"{rule['alert']}: no selector found in {rule['expr']}"
        for selector in found:
            if not query(live.prometheus, f"count({selector})")["data"]["result"]:
                empty.append(f"{rule['alert']}: {selector}")
    assert not empty, "alert selectors matching no series:\n" + "\n".join(empty)


def test_dead_letters_from_the_service_fire_their_alert(live: Live) -> None:
    deadline = time.monotonic() + 15
    firing: list[dict[str, Any]] = []
    while not firing and time.monotonic() < deadline:
        alerts = get_json(f"{live.prometheus}/api/v1/alerts")["data"]["alerts"]
        firing = [
            alert["labels"]
            for alert in alerts
            if alert["labels"]["alertname"] == "StreamerDeadLettersAppearing"
            and alert["state"] == "firing"
        ]
        time.sleep(0.5)
    sources = {(labels["job"], labels["source"]) for labels in firing}
    assert sources == {(JOB, "items"), (JOB, "labels")}
