"""The queries of the deployment files as data: every dashboard query and every alert rule.

Shared by tests/unit/test_deploy.py (names against streamer.metrics) and
tests/integration/test_prometheus.py (each query against a real Prometheus).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "streamer.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"

_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_VARIABLES = re.compile(r"\$\{[^}]*\}|\$\w+")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.])([A-Za-z_:][\w:]*+)(?!\s*\()")
_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (not functions, labels, keywords or durations).

    >>> sorted(metric_names('sum by (le) (rate(a_bucket{x="y"}[5m])) > on (job) b or vector(0)'))
    ['a_bucket', 'b']
    """
    text = _STRINGS.sub(" ", expr)
    text = _VARIABLES.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


def selectors(expr: str) -> list[str]:
    """Each distinct vector selector of an expression, label matchers included, in order.

    >>> selectors('sum(rate(a{x="y", z=~"w.*"}[5m])) / sum(rate(a{x="y"}[5m])) or up == 0')
    ['a{x="y", z=~"w.*"}', 'a{x="y"}', 'up']
    """
    names = metric_names(expr)
    found: list[str] = []
    for match in re.finditer(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\{[^}]*\})?(?!\s*\()", expr):
        if match.group(1) in names and match.group(0) not in found:
            found.append(match.group(0))
    return found


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel of the committed dashboard but the row headers, in reading order."""
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def dashboard_targets() -> list[tuple[str, str]]:
    """(panel title, expr) of every query in the committed dashboard."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard_panels()
        for target in panel["targets"]
    ]


def alert_rules(yaml: Any) -> list[dict[str, Any]]:
    """Every rule of deploy/prometheus/alerts.yml (``yaml`` is the PyYAML module)."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]
