"""Make docs/images/dashboard.png: the Grafana dashboard's panels, drawn from a real Prometheus.

Grafana cannot run here, so this draws the panels of deploy/grafana/dashboards/streamer.json
with matplotlib, in the dashboard's grid, from the answers of a real Prometheus
(/api/v1/query_range over the run) that scraped a real loop:

- the embedded broker (Tansu), a Redis store, `streamer run` and `streamer produce` (the
  synthetic SEA stream, which drifts halfway, at a steady rate);
- `streamer annotate --web`, answered through its JSON API by a few scripted annotators who
  know the truth and skip one request in twenty; it is scraped under the Label Studio
  bridge's job name, as the labelling alerts select it;
- at a third and at two thirds of the run, one malformed item, label and label request each
  (``--no-bad-messages`` leaves them out), so that the dead-letter panels and their alert have
  something to show: twice, because rate() cannot see the first dead letter of a (source,
  reason), whose series that first one creates;
- Prometheus (Debian's package) scraping both every ``--scrape-interval`` seconds with the
  rule files of deploy/prometheus/prometheus.yml (the "Firing alerts" stat reads ALERTS).

Grafana's variables are replaced as Grafana would send them: every instance ($instance and
$edge are "All"), the consumer group's current value, $__rate_interval =
max($__interval + scrape interval, 4 x scrape interval) with $__interval = the step.

Writes the picture and benchmarks/results/dashboard_snapshot.json (every query, its points and
last value), and prints a table that warns about every panel without data.

    .venv/bin/python docs/tools/dashboard_snapshot.py              # about 3.5 minutes
    .venv/bin/python docs/tools/dashboard_snapshot.py --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import os
import random
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_draw import draw_dashboard  # noqa: E402
from grafana_panels import (  # noqa: E402
    Grid,
    duration,
    grafana_variables,
    rate_interval,
    series_of,
    short_number,
    substitute,
)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "streamer.json"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
IMAGE = ROOT / "docs" / "images" / "dashboard.png"
RESULT = ROOT / "benchmarks" / "results" / "dashboard_snapshot.json"
SERVICE_JOB = "streamer"  # the alert rules select these job names
EDGE_JOB = "label-studio-bridge"
SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)\{")


# --- the run -------------------------------------------------------------------------------


def get_json(url: str, body: Any = None, timeout: float = 10) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.load(reply)


def query_range(base: str, expr: str, grid: Grid) -> dict[str, Any]:
    """Prometheus's answer as is; a PromQL error (HTTP 400) comes back with its JSON body."""
    query = urllib.parse.urlencode({"query": expr, "start": grid.start, "end": grid.end,
                                    "step": grid.step})
    try:
        return get_json(f"{base}/api/v1/query_range?{query}", timeout=30)
    except urllib.error.HTTPError as error:
        return json.load(error)


def firing_alerts(base: str) -> list[str]:
    """The names of the alerts firing now, each once, sorted: the stat panel only counts them."""
    query = urllib.parse.urlencode({"query": 'ALERTS{alertstate="firing"}'})
    result = get_json(f"{base}/api/v1/query?{query}")["data"]["result"]
    return sorted({series["metric"]["alertname"] for series in result})


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as reply:
        return reply.status == 200


@dataclass
class RunSettings:
    """What the run does: the command line's choices."""

    seconds: float
    rate: float
    budget: float
    scrape_interval: float
    annotators: int
    think_seconds: float
    skip_share: float
    bad_messages: bool
    seed: int
    width_px: int


class Loop:
    """Every process of the run, started in order and stopped in reverse by ``close()``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        self.stack = contextlib.ExitStack()

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log_path = self.workdir / f"{name}.log"
        log = self.stack.enter_context(open(log_path, "ab"))  # noqa: SIM115
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.processes[name] = (process, str(log_path))
        self.stack.callback(_stop, process)

    def streamer(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.spawn(name, [sys.executable, "-m", "streamer.cli", *args], env)

    def check_alive(self, what: str) -> None:
        """Fail, with its log, when a process has exited (the producer may: its stream ends)."""
        for name, (process, log) in self.processes.items():
            if name != "produce" and process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode} while {what}; its "
                                   f"log ({log}):\n{Path(log).read_text()[-3000:]}")

    def wait(self, ready: Callable[[], bool], what: str, timeout: float = 60) -> None:
        """Poll ``ready`` until it holds, failing early when a process exits."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive(f"waiting for {what}")
            with contextlib.suppress(OSError, ValueError, KeyError):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not within {timeout:.0f} s (logs in {self.workdir})")
            time.sleep(0.3)

    def close(self) -> None:
        self.stack.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def prometheus_config(rule_files: list[str], scrape_interval: float, service: str, edge: str) -> str:
    interval = duration(scrape_interval)
    rules = ", ".join(f"'{path}'" for path in rule_files)
    return (
        f"global: {{scrape_interval: {interval}, evaluation_interval: {interval}}}\n"
        f"rule_files: [{rules}]\n"
        "scrape_configs:\n"
        f"  - job_name: {SERVICE_JOB}\n"
        f"    static_configs: [{{targets: ['{service}']}}]\n"
        "  # the web edge serves the bridge's metrics (EdgeMetrics) under the bridge's job name\n"
        f"  - job_name: {EDGE_JOB}\n"
        f"    static_configs: [{{targets: ['{edge}']}}]\n"
    )


def rule_files() -> list[str]:
    """The rule files of deploy/prometheus/prometheus.yml, as absolute paths."""
    import yaml

    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    return [str((PROMETHEUS_CONFIG.parent / name).resolve()) for name in config.get("rule_files", [])]


def annotate(base: str, name: str, truth: dict[str, int], settings: RunSettings, seed: int,
             stop: threading.Event, counts: dict[str, int]) -> None:
    """One scripted annotator at the web edge: claims, thinks, answers the truth or skips."""
    rng = random.Random(seed)
    while not stop.is_set():
        try:
            item = get_json(f"{base}/api/next?annotator={name}&wait=1")["item"]
            if item is None:
                continue
            stop.wait(rng.uniform(0.5, 1.5) * settings.think_seconds)
            claim = {"id": item["id"], "claim": item["claim"]}
            if rng.random() < settings.skip_share:
                get_json(f"{base}/api/skip", claim)
                counts["skipped"] += 1
            else:
                get_json(f"{base}/api/answer", {**claim, "label": str(truth[item["id"]])})
                counts["answered"] += 1
        except (OSError, ValueError, KeyError) as exc:
            counts["errors"] += 1
            if counts["errors"] <= 3:
                print(f"  annotator {name}: {exc}", file=sys.stderr)
            stop.wait(0.5)


def send_bad_messages(bootstrap: str) -> None:
    """One malformed item, label and label request: dead letters of the service and the edge."""
    from aiokafka import AIOKafkaProducer

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait("items", b"not json", key=b"bad-item")
            await producer.send_and_wait("labels", b"{broken", key=b"bad-label")
            await producer.send_and_wait("label-requests", b"{broken", key=b"bad-request")
        finally:
            await producer.stop()

    asyncio.run(send())


def prometheus_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    found = re.search(r"version (\S+)", out.stdout + out.stderr)
    return found.group(1) if found else "unknown"


@dataclass
class Run:
    prometheus: str  # base URL
    grid: Grid
    redis: bool
    bad_messages_at: list[float]  # seconds into the run
    counts: dict[str, int]
    scrapes: int


def run_loop(settings: RunSettings, prometheus_binary: str, workdir: Path,
             then: Callable[[Run], None]) -> None:
    """Start everything, let items flow for ``settings.seconds``, then call ``then`` with
    Prometheus still up (it queries), and stop everything."""
    from streamer.broker import EmbeddedBroker, free_port
    from streamer.replay import load_stream

    items = int(settings.rate * (settings.seconds + 30))  # the stream outlasts the run
    truth = load_stream(None, max_items=items, seed=settings.seed).truth
    loop = Loop(workdir)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        broker = loop.stack.enter_context(EmbeddedBroker(log=workdir / "tansu.log"))
        print(f"broker {broker.bootstrap_servers}", flush=True)
        service_port, edge_port, prometheus_port = free_port(), free_port(), free_port()
        redis_url = None
        redis = shutil.which("redis-server")
        if redis:
            redis_port = free_port()
            loop.spawn("redis", [redis, "--port", str(redis_port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no"])
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
        else:
            print("warning: no redis-server: in-process store, so no checkpoint panels",
                  file=sys.stderr)
        run_args = ["run", "--bootstrap-servers", broker.bootstrap_servers,
                    "--metrics-port", str(service_port), "--metrics-host", "127.0.0.1",
                    "--budget", str(settings.budget), "--seed", str(settings.seed)]
        if redis_url:
            run_args += ["--redis-url", redis_url]
        loop.streamer("service", *run_args,
                      env={"STREAMER_CHECKPOINT_KEY": secrets.token_hex(16)} if redis_url else None)
        loop.wait(lambda: http_ok(f"http://127.0.0.1:{service_port}/readyz"), "the service ready")
        loop.streamer("edge", "annotate", "--web", "--bootstrap-servers", broker.bootstrap_servers,
                      "--port", str(edge_port), "--metrics-host", "127.0.0.1",
                      "--service-url", f"http://127.0.0.1:{service_port}")
        edge = f"http://127.0.0.1:{edge_port}"
        loop.wait(lambda: http_ok(f"{edge}/readyz"), "the labelling edge ready")

        config = workdir / "prometheus.yml"
        config.write_text(prometheus_config(rule_files(), settings.scrape_interval,
                                             f"127.0.0.1:{service_port}", f"127.0.0.1:{edge_port}"))
        loop.spawn("prometheus", [prometheus_binary, f"--config.file={config}",
                                  f"--storage.tsdb.path={workdir / 'tsdb'}",
                                  f"--web.listen-address=127.0.0.1:{prometheus_port}"])
        base = f"http://127.0.0.1:{prometheus_port}"

        def scraped_both() -> bool:
            answer = get_json(f"{base}/api/v1/query?query=up")
            return len([r for r in answer["data"]["result"] if r["value"][1] == "1"]) == 2

        loop.wait(scraped_both, "Prometheus scraping the service and the edge")

        started = time.time()
        loop.streamer("produce", "produce", "--bootstrap-servers", broker.bootstrap_servers,
                      "--rate", str(settings.rate), "--max-items", str(items),
                      "--seed", str(settings.seed))
        counts = {"answered": 0, "skipped": 0, "errors": 0}
        for i in range(settings.annotators):
            thread = threading.Thread(target=annotate, daemon=True, args=(
                edge, f"annotator-{i + 1}", truth, settings, settings.seed + i, stop, counts))
            thread.start()
            threads.append(thread)
        # twice: a dead letter's series is born at the first, which rate() cannot see
        bad_at = [settings.seconds / 3, 2 * settings.seconds / 3] if settings.bad_messages else []
        sent_bad: list[float] = []
        next_report = 10.0
        while (elapsed := time.time() - started) < settings.seconds:
            if len(sent_bad) < len(bad_at) and elapsed >= bad_at[len(sent_bad)]:
                send_bad_messages(broker.bootstrap_servers)
                sent_bad.append(round(elapsed, 1))
                print(f"{elapsed:5.0f} s  sent a malformed item, label and label request")
            if elapsed >= next_report:
                status = get_json(f"http://127.0.0.1:{service_port}/status")
                print(f"{elapsed:5.0f} s  items {status['items_seen']:>7,}  label requests "
                      f"{status['label_requests']:>5,}  labels applied {status['labels_applied']:>5,}"
                      f"  answered {counts['answered']:>5,}  skipped {counts['skipped']:>3,}",
                      flush=True)
                next_report += 10
            loop.check_alive("items flowed")
            time.sleep(0.5)
        ended = time.time()
        time.sleep(settings.scrape_interval * 1.5)  # the last scrape of the run lands
        scrapes = int(float(get_json(
            f"{base}/api/v1/query?query=" + urllib.parse.quote(
                f'count_over_time(up{{job="{SERVICE_JOB}"}}[1h])'))["data"]["result"][0]["value"][1]))
        step = settings.scrape_interval
        grid = Grid(math.floor(started / step) * step, math.floor(ended / step) * step, step)
        then(Run(base, grid, redis_url is not None, sent_bad, counts, scrapes))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        loop.close()


# --- report --------------------------------------------------------------------------------


def metric_selectors(expr: str) -> list[str]:
    """Metric names an expression selects with label matchers (every query of the dashboard).

    >>> metric_selectors('sum(rate(a_total{x="y"}[1m])) / b{z=~".+"} or vector(0)')
    ['a_total', 'b']
    """
    return list(dict.fromkeys(SELECTOR.findall(expr)))


def why_empty(expr: str, known: set[str]) -> str:
    """The likeliest reason a query has no data: a metric nobody exports here, or none."""
    missing = [name for name in metric_selectors(expr) if name not in known]
    if missing:
        return f"no series named {', '.join(missing)} was scraped"
    return "its metrics exist, but the expression matches no series"


def collect(dashboard: dict[str, Any], run: Run, scrape_interval: float
            ) -> tuple[dict[tuple[int, str], dict[str, Any]], list[dict[str, Any]]]:
    """Every target's query_range answer, and a row per query for the results file."""
    values = grafana_variables(dashboard, step_s=run.grid.step, scrape_interval_s=scrape_interval,
                               range_s=run.grid.end - run.grid.start)
    known = set(get_json(f"{run.prometheus}/api/v1/label/__name__/values")["data"])
    answers, rows = {}, []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            sent = substitute(target["expr"], values)
            answer = query_range(run.prometheus, sent, run.grid)
            answers[(panel["id"], target["refId"])] = answer
            row: dict[str, Any] = {
                "panel_id": panel["id"], "panel": panel["title"], "type": panel["type"],
                "ref": target["refId"], "expr": target["expr"], "sent": sent,
            }
            if answer.get("status") != "success":
                row.update(status="error", error=answer.get("error"))
            else:
                series = series_of(answer["data"]["result"], target.get("legendFormat", ""), run.grid)
                row.update(series=len(series), points=sum(s.points for s in series),
                           last={s.name: _json_number(s.last) for s in series})
                row["status"] = "ok" if row["points"] else "no data"
                if not row["points"]:
                    row["why"] = why_empty(sent, known)
            rows.append(row)
    return answers, rows


def _json_number(value: float) -> float | str | None:
    if math.isnan(value):
        return None
    return value if math.isfinite(value) else str(value)


def panels_without_data(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_panel: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_panel.setdefault(row["panel_id"], []).append(row)
    return [{"panel_id": pid, "panel": group[0]["panel"], "type": group[0]["type"],
             "why": "; ".join(dict.fromkeys(r.get("why") or r.get("error") or "" for r in group))}
            for pid, group in by_panel.items() if not any(r.get("points") for r in group)]


def print_table(rows: list[dict[str, Any]], empty: list[dict[str, Any]]) -> None:
    print(f"\n{'panel':<34} {'ref':<3} {'series':>6} {'points':>6}  last value")
    for row in rows:
        last = row.get("last") or {}
        shown = ", ".join(f"{k or '-'}={short_number(v) if isinstance(v, float) else v}"
                          for k, v in list(last.items())[:3])
        if len(last) > 3:
            shown += f", ... ({len(last)} series)"
        flag = "" if row["status"] == "ok" else f"  WARNING {row['status']}: {row.get('why') or row.get('error')}"
        print(f"{row['panel'][:34]:<34} {row['ref']:<3} {row.get('series', 0):>6} "
              f"{row.get('points', 0):>6}  {shown[:70]}{flag}")
    for panel in empty:
        print(f"WARNING: panel {panel['panel']!r} ({panel['type']}, id {panel['panel_id']}) "
              f"has no data: {panel['why']}")
    if not empty:
        print("every panel has data")


def header_lines(settings: RunSettings, run: Run, version: str, empty: list[dict[str, Any]],
                 load: dict[str, float], firing: list[str]) -> list[str]:
    """What ran, how it was queried, which alerts fired at its end, and which panels had no
    data and why."""
    start, end = (datetime.datetime.fromtimestamp(t, datetime.UTC) for t in (run.grid.start, run.grid.end))
    bad = " and ".join(f"{t:.0f} s" for t in run.bad_messages_at)
    lines = [
        f"Loop: {settings.seconds:.0f} s of the synthetic SEA stream (it drifts halfway) at "
        f"{settings.rate:g} items/s into streamer run (budget {settings.budget:.0%}, "
        f"{'Redis' if run.redis else 'in-process'} store) on the embedded broker.",
        f"Labels: {settings.annotators} scripted annotators answer on streamer annotate --web "
        f"(scraped as job {EDGE_JOB}) and skip {settings.skip_share:.0%}"
        + (f"; a malformed item, label and label request went out at {bad}." if bad else "."),
        f"Prometheus {version}: scraped every {settings.scrape_interval:g} s, queried from "
        f"{start:%Y-%m-%d %H:%M:%S} to {end:%H:%M:%S} UTC at a step of {run.grid.step:g} s, "
        f"$__rate_interval = {duration(rate_interval(run.grid.step, settings.scrape_interval))}, "
        "every instance selected.",
        f"All of it on one machine with {os.cpu_count()} CPUs, 1-minute load average "
        f"{load['start']:.1f} before the run and {load['end']:.1f} at its end.",
    ]
    if firing:
        lines.append("Firing at the end: " + ", ".join(firing) + ".")
    if empty:
        reasons = dict.fromkeys(f"{p['panel']}: {p['why']}" for p in empty)
        lines.append("No data: " + "; ".join(reasons) + ".")
    return lines


def footer_line(commit: str, date: str) -> str:
    return ("Rendered with matplotlib from a real Prometheus's query results (Grafana cannot run "
            f"here), streamer {commit}, {date}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="how long items flow (180)")
    parser.add_argument("--rate", type=float, default=200.0, help="items per second (200)")
    parser.add_argument("--budget", type=float, default=0.05, help="the service's budget (0.05)")
    parser.add_argument("--scrape-interval", type=float, default=2.0,
                        help="Prometheus's scrape and rule interval, seconds (2)")
    parser.add_argument("--annotators", type=int, default=6, help="scripted annotators (6)")
    parser.add_argument("--think-seconds", type=float, default=0.4,
                        help="an annotator's mean time per answer (0.4)")
    parser.add_argument("--skip-share", type=float, default=0.05,
                        help="share of requests an annotator skips (0.05)")
    parser.add_argument("--bad-messages", action=argparse.BooleanOptionalAction, default=True,
                        help="send a malformed item, label and label request halfway (yes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=1600, help="picture width in pixels (1600)")
    parser.add_argument("--out", type=Path, default=IMAGE, help="the picture (%(default)s)")
    parser.add_argument("--result", type=Path, default=RESULT, help="the results file (%(default)s)")
    parser.add_argument("--logs", type=Path, help="keep the processes' logs (and Prometheus's "
                        "data) in this folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    binary = shutil.which("prometheus")
    if binary is None:
        print("dashboard_snapshot: needs Debian's prometheus (apt-get install -y "
              "--no-install-recommends prometheus, or `make services` as root)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import matplotlib
    from machine import Start, write_result

    started = Start.now()

    settings = RunSettings(args.seconds, args.rate, args.budget, args.scrape_interval, args.annotators,
                        args.think_seconds, args.skip_share, args.bad_messages, args.seed, args.width)
    dashboard = json.loads(DASHBOARD.read_text())
    version = prometheus_version(binary)
    done: dict[str, Any] = {}

    def render(run: Run) -> None:
        load["end"] = os.getloadavg()[0]
        answers, rows = collect(dashboard, run, settings.scrape_interval)
        empty = panels_without_data(rows)
        firing = firing_alerts(run.prometheus)
        commit = started.git.get("git_commit") or "(no git)"
        if started.git.get("streamer_uncommitted_changes"):
            commit += " (+ uncommitted changes)"
        when = datetime.datetime.fromtimestamp(run.grid.start, datetime.UTC)
        header = header_lines(settings, run, version, empty, load, firing)
        picture = draw_dashboard(dashboard, answers, run.grid, args.out, header=header,
                                 footer=footer_line(commit, f"{when:%Y-%m-%d}"),
                                 width_px=settings.width_px)
        print_table(rows, empty)
        print("firing at the end: " + (", ".join(firing) or "none"))
        done.update(rows=rows, empty=empty, firing=firing, picture=picture, run=run)

    # everything runs on this machine: whatever else runs here shows in the latency panels
    load = {"start": os.getloadavg()[0]}
    with contextlib.ExitStack() as stack:
        if args.logs is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dashboard-snapshot-")))
        else:
            workdir = args.logs
            workdir.mkdir(parents=True, exist_ok=True)
        print(f"running the loop for {settings.seconds:.0f} s (logs in {workdir})", flush=True)
        run_loop(settings, binary, workdir, render)
    run = done["run"]
    doc = write_result(args.result, {
        "benchmark": "dashboard_snapshot",
        "settings": {**vars(settings), "stream": "synthetic-sea-drift", "items_topic": "items"},
        "dashboard": str(DASHBOARD.relative_to(ROOT)),
        "image": {"path": str(args.out.resolve().relative_to(ROOT)) if args.out.resolve().is_relative_to(ROOT) else str(args.out), **done["picture"]},
        "window": {
            "start": datetime.datetime.fromtimestamp(run.grid.start, datetime.UTC).isoformat(),
            "end": datetime.datetime.fromtimestamp(run.grid.end, datetime.UTC).isoformat(),
            "step_s": run.grid.step,
            "rate_interval": duration(rate_interval(run.grid.step, settings.scrape_interval)),
            "service_scrapes": run.scrapes,
        },
        "annotators": run.counts,
        "redis": run.redis,
        "bad_messages_at_s": run.bad_messages_at,
        "queries": done["rows"],
        "panels_without_data": done["empty"],
        "alerts_firing_at_end": done["firing"],
        "load_average_1min": {key: round(value, 2) for key, value in load.items()},
    }, started, prometheus=version, matplotlib=matplotlib.__version__)
    if load["start"] > (os.cpu_count() or 1) / 2:
        print(f"note: the machine was busy before the run (1-minute load average "
              f"{load['start']:.1f} on {os.cpu_count()} CPUs): the rates and latencies drawn "
              "include that")
    print(f"\nwrote {args.out} and {args.result} in {doc['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

