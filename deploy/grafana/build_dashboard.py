"""Generate the Grafana dashboard of streamer: deploy/grafana/dashboards/streamer.json.

    python deploy/grafana/build_dashboard.py           # rewrite the JSON
    python deploy/grafana/build_dashboard.py --check   # exit 1 if the JSON is out of date

The JSON is committed (Grafana provisions it from disk); tests/unit/test_deploy.py checks that
it matches this script and that every query uses metric names that streamer/metrics.py registers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).parent / "dashboards" / "streamer.json"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance"'  # every query of the service's metrics: the instance variable
GROUP = 'consumergroup=~"$consumergroup"'  # every query of the Kafka exporter's lag
RATE = "$__rate_interval"
# every query of the labelling edges' metrics (streamer_labelling_*): their own instance variable,
# since `streamer label-studio` and `streamer annotate --web` expose no streamer_ready
EDGE = 'instance=~"$edge"'
FIRING = 'ALERTS{alertstate="firing", alertname=~"Streamer.*"}'  # the rules of alerts.yml

Panel = dict[str, Any]


def target(expr: str, legend: str, ref: str, format_: str = "time_series") -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "format": format_,
        "legendFormat": legend,
        "refId": ref,
    }


def quantile(q: float, histogram: str, by: str = "", sel: str = SEL) -> str:
    """PromQL for the q-quantile of a histogram over all selected instances (or `by` labels)."""
    group = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({histogram}_bucket{{{sel}}}[{RATE}])))"


def timeseries(
    title: str,
    targets: list[tuple[str, str]],
    *,
    description: str = "",
    unit: str = "short",
    stack: bool = False,
    min_: float | None = None,
    max_: float | None = None,
    thresholds: list[tuple[float | None, str]] | None = None,
    overrides: list[dict[str, Any]] | None = None,
) -> Panel:
    defaults: dict[str, Any] = {
        "unit": unit,
        "custom": {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 20 if stack else 0,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        },
    }
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    if thresholds:
        defaults["thresholds"] = _thresholds(thresholds)
        defaults["custom"]["thresholdsStyle"] = {"mode": "dashed"}
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(targets)
        ],
    }


def stat(
    title: str,
    expr: str,
    legend: str,
    *,
    description: str = "",
    unit: str = "short",
    thresholds: list[tuple[float | None, str]] | None = None,
    mappings: list[dict[str, Any]] | None = None,
) -> Panel:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": _thresholds(thresholds or [(None, "green")]),
                "mappings": mappings or [],
            },
            "overrides": [],
        },
        "options": {
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "value_and_name",
        },
        "targets": [target(expr, legend, "A")],
    }


def ready_stat(title: str, expr: str, description: str) -> Panel:
    """A 0/1 readiness gauge per instance, shown as "ready" (green) or "not ready" (red)."""
    return stat(
        title, expr, "{{instance}}", description=description,
        thresholds=[(None, "red"), (1, "green")],
        mappings=[{"type": "value", "options": {
            "0": {"text": "not ready", "color": "red", "index": 0},
            "1": {"text": "ready", "color": "green", "index": 1},
        }}],
    )


def heatmap(title: str, histogram: str, *, description: str = "", unit: str = "short") -> Panel:
    """Buckets of a Prometheus histogram over time: one row per bucket, colour = items."""
    expr = f"sum by (le) (increase({histogram}_bucket{{{SEL}}}[{RATE}]))"
    return {
        "type": "heatmap",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {
            "defaults": {"custom": {"scaleDistribution": {"type": "linear"}}},
            "overrides": [],
        },
        "options": {
            "calculate": False,  # the buckets come from the histogram, not from Grafana
            "cellGap": 1,
            "color": {
                "mode": "scheme",
                "scheme": "Oranges",
                "scale": "exponential",
                "exponent": 0.5,
                "steps": 64,
                "reverse": False,
            },
            "filterValues": {"le": 1e-9},
            "legend": {"show": True},
            "rowsFrame": {"layout": "auto", "value": "items"},
            "tooltip": {"mode": "single", "yHistogram": False, "showColorScale": False},
            "yAxis": {"axisPlacement": "left", "reverse": False, "unit": unit, "decimals": 2},
        },
        "targets": [target(expr, "{{le}}", "A", format_="heatmap")],
    }


def _thresholds(steps: list[tuple[float | None, str]]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def right_axis(series_name: str, unit: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byName", "options": series_name},
        "properties": [
            {"id": "custom.axisPlacement", "value": "right"},
            {"id": "unit", "value": unit},
        ],
    }


def accuracy_over(window: str) -> str:
    """Share of the labels learned in ``window`` that the model had predicted right."""
    correct = f'streamer_prequential_labels_total{{{SEL}, result="correct"}}'
    learned = f"streamer_prequential_labels_total{{{SEL}}}"
    return f"sum(rate({correct}[{window}])) / sum(rate({learned}[{window}]))"


def dashed(series_name: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byName", "options": series_name},
        "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}],
    }


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def panels() -> list[tuple[Panel, int, int]]:
    """(panel, width, height) in reading order; layout() places them on Grafana's 24-wide grid.

    The first row answers "is the loop healthy?" at a glance: every stat turns red or orange
    when the matching alert of deploy/prometheus/alerts.yml would.
    """
    spend_band = [(None, "red"), (0.8, "green"), (1.2, "red")]
    return [
        (row("Is the loop healthy?"), 24, 1),
        (
            ready_stat("Ready", f"streamer_ready{{{SEL}}}",
                       "1 while the instance is consuming (its /readyz answers 200)."),
            3,
            4,
        ),
        (
            stat(
                "Firing alerts",
                f"count({FIRING}) or vector(0)",
                "firing",
                description="Alerts of deploy/prometheus/alerts.yml firing now (Prometheus > Alerts lists them).",
                thresholds=[(None, "green"), (1, "red")],
            ),
            3,
            4,
        ),
        (
            stat(
                "Items/s",
                f"sum(rate(streamer_items_total{{{SEL}}}[{RATE}]))",
                "items/s",
                unit="reqps",
                thresholds=[(None, "blue")],
            ),
            3,
            4,
        ),
        (
            stat(
                "Budget spend",
                f"avg(streamer_budget_spend_ratio{{{SEL}}})",
                "spend / budget",
                description="Realised share of items asked divided by the budget; alert outside 80-120%.",
                unit="percentunit",
                thresholds=spend_band,
            ),
            3,
            4,
        ),
        (
            stat(
                "Accuracy (30 min)",
                accuracy_over("30m"),
                "accuracy",
                description="Share of the labels of the last 30 minutes that the model predicted right before learning them.",
                unit="percentunit",
                thresholds=[(None, "red"), (0.6, "orange"), (0.8, "green")],
            ),
            3,
            4,
        ),
        (
            stat(
                "Pending labels",
                f"sum(streamer_pending_labels{{{SEL}}})",
                "pending",
                description="Items asked about whose label has not come back yet.",
                thresholds=[(None, "blue")],
            ),
            3,
            4,
        ),
        (
            stat(
                "Consumer lag",
                f"sum(kafka_consumergroup_lag{{{GROUP}}})",
                "messages behind",
                description="Messages of the items topic not yet consumed by the group (Kafka exporter).",
                thresholds=[(None, "green"), (1000, "orange"), (10000, "red")],
            ),
            3,
            4,
        ),
        (
            stat(
                "Model version",
                f"max by (instance) (streamer_model_version{{{SEL}}})",
                "{{instance}}",
                description="Version of the online model; it increases as labels are learnt.",
                thresholds=[(None, "blue")],
            ),
            3,
            4,
        ),
        (row("Throughput and sampling"), 24, 1),
        (
            timeseries(
                "Items/s",
                [
                    (
                        f"sum by (instance) (rate(streamer_items_total{{{SEL}}}[{RATE}]))",
                        "{{instance}}",
                    )
                ],
                description="Items decoded and decided per second.",
                unit="reqps",
                min_=0,
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Decisions by reason",
                [
                    (
                        f"sum by (reason) (rate(streamer_decisions_total{{{SEL}}}[{RATE}]))",
                        "{{reason}}",
                    )
                ],
                description="skip = not asked; every other reason sent the item to an annotator.",
                unit="reqps",
                stack=True,
                min_=0,
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Label requests/s vs budget",
                [
                    (
                        f"sum(rate(streamer_label_requests_total{{{SEL}}}[{RATE}]))",
                        "label requests/s",
                    ),
                    (
                        f"sum(rate(streamer_items_total{{{SEL}}}[{RATE}]) * streamer_budget_ratio{{{SEL}}})",
                        "budget (items/s x budget)",
                    ),
                ],
                description="Requests sent to annotators against what the budget allows at the current item rate.",
                unit="reqps",
                min_=0,
                overrides=[dashed("budget (items/s x budget)")],
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Query share vs budget",
                [
                    (
                        f"sum(rate(streamer_label_requests_total{{{SEL}}}[{RATE}])) / "
                        f"sum(rate(streamer_items_total{{{SEL}}}[{RATE}]))",
                        "query share",
                    ),
                    (f"avg(streamer_budget_ratio{{{SEL}}})", "budget"),
                ],
                description="Share of items sent to annotators, against the configured budget.",
                unit="percentunit",
                min_=0,
                overrides=[dashed("budget")],
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Budget spend ratio",
                [(f"streamer_budget_spend_ratio{{{SEL}}}", "{{instance}}")],
                description="The controller's spend over its budget window; 1.0 = exactly on budget, dashed lines at the 80% and 120% alert bounds.",
                unit="percentunit",
                min_=0,
                thresholds=spend_band,
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Uncertainty threshold",
                [(f"streamer_threshold{{{SEL}}}", "{{instance}}")],
                description="Threshold of the budget controller: items whose score clears it are asked.",
                min_=0,
                max_=1,
            ),
            8,
            8,
        ),
        (
            heatmap(
                "Score distribution",
                "streamer_score",
                description="Query-policy score of the decided items (streamer_score histogram), on the threshold's scale: items above the threshold are asked. A shift here is drift the model has not learnt yet.",
            ),
            16,
            8,
        ),
        (
            timeseries(
                "Batch size",
                [
                    (
                        f"sum(rate(streamer_batch_size_sum{{{SEL}}}[{RATE}])) / "
                        f"sum(rate(streamer_batch_size_count{{{SEL}}}[{RATE}]))",
                        "mean",
                    ),
                    (quantile(0.99, "streamer_batch_size"), "p99"),
                ],
                description="Items per micro-batch: large batches mean the service is catching up.",
                min_=0,
            ),
            8,
            8,
        ),
        (row("Model and labels"), 24, 1),
        (
            timeseries(
                "Prequential accuracy",
                [
                    (accuracy_over("30m"), "last 30 min"),
                    (f"streamer_prequential_accuracy{{{SEL}}}", "since start {{instance}}"),
                ],
                description="Test-then-train accuracy on labelled items, each predicted before it was learnt: over the last 30 minutes (alert when 10 points below the 6 hours before) and since the process started.",
                unit="percentunit",
                min_=0,
                max_=1,
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Labels by join outcome",
                [
                    (
                        f"sum by (outcome) (rate(streamer_labels_total{{{SEL}}}[{RATE}]))",
                        "{{outcome}}",
                    )
                ],
                description="joined labels train the model; late, unknown, duplicate and invalid ones do not.",
                unit="reqps",
                stack=True,
                min_=0,
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Label delay",
                [
                    (quantile(0.5, "streamer_label_delay_seconds"), "p50"),
                    (quantile(0.9, "streamer_label_delay_seconds"), "p90"),
                ],
                description="From label request to label joined: how long annotators take.",
                unit="s",
                min_=0,
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Pending labels and expirations",
                [
                    (
                        f"sum by (instance) (streamer_pending_labels{{{SEL}}})",
                        "pending {{instance}}",
                    ),
                    (f"sum(rate(streamer_pending_expired_total{{{SEL}}}[{RATE}]))", "expired/s"),
                ],
                description="Items waiting for their label; expired ones passed their deadline unlabelled.",
                min_=0,
                overrides=[right_axis("expired/s", "reqps")],
            ),
            12,
            8,
        ),
        (
            timeseries(
                "Dead letters by reason",
                [
                    (
                        f"sum by (source, reason) (rate(streamer_dead_letters_total{{{SEL}}}[{RATE}]))",
                        "{{source}}: {{reason}}",
                    )
                ],
                description="Messages sent to the dead-letter topic, by the topic they came from.",
                unit="reqps",
                stack=True,
                min_=0,
            ),
            12,
            8,
        ),
        (row("Latency and lag"), 24, 1),
        (
            timeseries(
                "Decision latency",
                [
                    (quantile(0.5, "streamer_decision_latency_seconds"), "p50"),
                    (quantile(0.99, "streamer_decision_latency_seconds"), "p99"),
                ],
                description="Time to decide one micro-batch; alert when p99 > 250ms for 10 minutes.",
                unit="s",
                min_=0,
                thresholds=[(None, "green"), (0.25, "red")],
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Item latency (end to end)",
                [
                    (quantile(0.5, "streamer_item_latency_seconds"), "p50"),
                    (quantile(0.99, "streamer_item_latency_seconds"), "p99"),
                ],
                description="From the item's Kafka timestamp to its decision being acknowledged by the broker.",
                unit="s",
                min_=0,
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Consumer lag",
                [
                    (
                        f"sum by (consumergroup, topic) (kafka_consumergroup_lag{{{GROUP}}})",
                        "{{consumergroup}} on {{topic}}",
                    )
                ],
                description="Messages the consumer group has not consumed yet, from the Kafka exporter (kafka_consumergroup_lag); alert when it grows for 15 minutes.",
                min_=0,
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Event-loop stalls",
                [
                    (f"max(streamer_event_loop_longest_stall_seconds{{{SEL}}})", "longest (last 30-60 s)"),
                    (quantile(0.99, "streamer_event_loop_lag_seconds"), "p99 lateness of a 10 ms timer"),
                ],
                description="Whatever holds the event loop (a learning slice, a checkpoint, garbage collection) holds every decision as long: the decision latency's tail.",
                unit="s",
                min_=0,
            ),
            8,
            8,
        ),
        (row("Reliability"), 24, 1),
        (
            stat(
                "Degraded",
                f"max(streamer_degraded{{{SEL}}})",
                "degraded",
                description="1 while the pending store (Redis) fails: items are still decided, label requests paused, labels wait in Kafka.",
                thresholds=[(None, "green"), (1, "red")],
                mappings=[{"type": "value", "options": {"0": {"text": "no"}, "1": {"text": "yes"}}}],
            ),
            6,
            6,
        ),
        (
            stat(
                "Checkpoint age",
                f"time() - max(streamer_checkpoint_timestamp_seconds{{{SEL}}})",
                "age",
                description="Seconds since the newest checkpoint (model + label offsets + applied ids).",
                unit="s",
                thresholds=[(None, "green"), (120, "orange"), (600, "red")],
            ),
            6,
            6,
        ),
        (
            timeseries(
                "Labels not yet checkpointed",
                [(f"sum(streamer_uncommitted_labels{{{SEL}}})", "uncommitted")],
                description="Learned but not yet in a checkpoint: a crash now re-reads them from Kafka (never lost).",
                min_=0,
            ),
            6,
            6,
        ),
        (
            timeseries(
                "Backpressure and withdrawn asks",
                [
                    (f"max(streamer_backpressure{{{SEL}}})", "backpressure (max_pending reached)"),
                    (f"sum(rate(streamer_label_requests_cancelled_total{{{SEL}}}[5m]))", "asks withdrawn / s"),
                    (f"sum(rate(streamer_checkpoint_failures_total{{{SEL}}}[5m]))", "checkpoint failures / s"),
                ],
                description="Label requests paused because annotators are behind, asks withdrawn because the store failed, checkpoints that failed.",
                min_=0,
            ),
            6,
            6,
        ),
        *labelling(),
    ]


def labelling() -> list[tuple[Panel, int, int]]:
    """The labelling edges (streamer/label/edge.py): `streamer label-studio`, `annotate --web`.

    Empty where no edge runs (docker-compose.yml starts the bridge with the `labelling` profile).
    """
    return [
        (row("Labelling"), 24, 1),
        (
            timeseries(
                "Tasks created",
                [
                    (f"sum(rate(streamer_labelling_requests_total{{{EDGE}}}[{RATE}]))", "requests read/s"),
                    (f"sum(rate(streamer_labelling_tasks_created_total{{{EDGE}}}[{RATE}]))", "tasks created/s"),
                    (f"sum(rate(streamer_labelling_expired_total{{{EDGE}}}[{RATE}]))", "expired/s"),
                ],
                description="Label requests read from the label-requests topic, Label Studio tasks created for them (one per item id: redelivered requests make none), and requests dropped unanswered after the pending TTL.",
                unit="reqps",
                min_=0,
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Annotations by event",
                [
                    (
                        f"sum by (event) (rate(streamer_labelling_annotations_total{{{EDGE}}}[{RATE}]))",
                        "{{event}}",
                    )
                ],
                description="Answers received: created and updated ones become labels; deleted and skipped ones send nothing.",
                unit="reqps",
                stack=True,
                min_=0,
            ),
            8,
            8,
        ),
        (
            timeseries(
                "Labels sent by kind",
                [
                    (
                        f"sum by (kind) (rate(streamer_labelling_labels_sent_total{{{EDGE}}}[{RATE}]))",
                        "{{kind}}",
                    )
                ],
                description="Labels written to the labels topic: first answers train the model; corrections (updated or second annotations) are kept on the topic, and the service counts them as duplicates.",
                unit="reqps",
                stack=True,
                min_=0,
            ),
            8,
            8,
        ),
        (
            ready_stat("Labelling edge ready", f"streamer_labelling_ready{{{EDGE}}}",
                       "1 once the edge has joined its consumer group and (the bridge) Label Studio "
                       "answered with the project."),
            4,
            8,
        ),
        (
            timeseries(
                "Open label requests",
                [(f"sum by (instance) (streamer_labelling_queue_depth{{{EDGE}}})", "{{instance}}")],
                description="Requests read and not answered yet; alert when it grows for an hour.",
                min_=0,
            ),
            5,
            8,
        ),
        (
            timeseries(
                "Request to label",
                [
                    (quantile(0.5, "streamer_labelling_request_to_label_seconds", sel=EDGE), "p50"),
                    (quantile(0.9, "streamer_labelling_request_to_label_seconds", sel=EDGE), "p90"),
                ],
                description="From the service's label request to its first label on the labels topic: how long people take.",
                unit="s",
                min_=0,
            ),
            5,
            8,
        ),
        (
            timeseries(
                "Label Studio errors",
                [
                    (
                        f"sum by (instance) (rate(streamer_labelling_upstream_errors_total{{{EDGE}}}[{RATE}]))",
                        "{{instance}}",
                    )
                ],
                description="Failed calls to Label Studio (each retried with backoff, at most 30 s apart); requests wait in Kafka meanwhile.",
                unit="reqps",
                min_=0,
            ),
            5,
            8,
        ),
        (
            timeseries(
                "Labelling dead letters by reason",
                [
                    (
                        f"sum by (reason) (rate(streamer_labelling_dead_letters_total{{{EDGE}}}[{RATE}]))",
                        "{{reason}}",
                    )
                ],
                description="Label requests that cannot be read, and annotations that cannot be a label (no_choice), sent to the dead-letter topic.",
                unit="reqps",
                stack=True,
                min_=0,
            ),
            5,
            8,
        ),
    ]


def layout(items: list[tuple[Panel, int, int]]) -> list[Panel]:
    """Place panels left to right, wrapping at 24 columns; ids follow reading order."""
    placed, x, y, row_height = [], 0, 0, 0
    for panel_id, (panel, width, height) in enumerate(items, start=1):
        if x + width > 24:
            x, y, row_height = 0, y + row_height, 0
        placed.append(
            {"id": panel_id, "gridPos": {"h": height, "w": width, "x": x, "y": y}, **panel}
        )
        x, row_height = x + width, max(row_height, height)
    return placed


def dashboard() -> dict[str, Any]:
    return {
        "uid": "streamer",
        "title": "streamer",
        "description": "Stream-based selective sampling: loop health, throughput, label budget, model quality, labels, latency, consumer lag, labelling (Label Studio bridge).",
        "tags": ["streamer", "active-learning", "kafka"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "schemaVersion": 39,
        "version": 1,
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                },
                {
                    "name": "instance",
                    "label": "Instance",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {
                        "query": "label_values(streamer_ready, instance)",
                        "refId": "instance",
                    },
                    "definition": "label_values(streamer_ready, instance)",
                    "current": {},
                    "includeAll": True,
                    "allValue": ".+",
                    "multi": True,
                    "refresh": 2,
                    "sort": 1,
                    "hide": 0,
                    "regex": "",
                },
                {
                    "name": "edge",
                    "label": "Labelling edge",
                    "description": "Instances of streamer label-studio and streamer annotate --web.",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {
                        "query": "label_values(streamer_labelling_ready, instance)",
                        "refId": "edge",
                    },
                    "definition": "label_values(streamer_labelling_ready, instance)",
                    "current": {},
                    "includeAll": True,
                    "allValue": ".+",
                    "multi": True,
                    "refresh": 2,
                    "sort": 1,
                    "hide": 0,
                    "regex": "",
                },
                {
                    "name": "consumergroup",
                    "label": "Consumer group",
                    "description": "The service's --group-id, for the lag of the Kafka exporter.",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {
                        "query": "label_values(kafka_consumergroup_lag, consumergroup)",
                        "refId": "consumergroup",
                    },
                    "definition": "label_values(kafka_consumergroup_lag, consumergroup)",
                    "current": {"selected": True, "text": "streamer", "value": "streamer"},
                    "includeAll": False,
                    "multi": False,
                    "refresh": 2,
                    "sort": 1,
                    "hide": 0,
                    "regex": "",
                },
            ]
        },
        "panels": layout(panels()),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed JSON is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(
                f"{OUTPUT} is out of date: run python {Path(__file__).as_posix()}", file=sys.stderr
            )
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
