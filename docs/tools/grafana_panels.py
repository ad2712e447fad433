"""What a Grafana panel asks Prometheus and how it shows the answer, without Grafana.

Grafana's variables as Grafana sends them ($__rate_interval, $__interval, the dashboard's own),
legend names, value formats by unit, the dark theme's colours, threshold and mapping colours,
and query results put on one time grid. Used by dashboard_snapshot.py and dashboard_draw.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

# Grafana's dark theme and its named colours
BACKGROUND, PANEL, BORDER = "#111217", "#181b1f", "#2c3235"
TEXT, MUTED, GRID = "#ccccdc", "#8e8e9a", "#262a2f"
NAMED_COLOURS = {
    "green": "#73BF69", "red": "#F2495C", "orange": "#FF9830", "blue": "#5794F2",
    "yellow": "#FADE2A", "purple": "#B877D9", "transparent": PANEL,
}
PALETTE = ["#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9",
           "#705DA0", "#508642", "#CCA300"]  # Grafana's classic series colours

CELL_HEIGHT_PX = 30  # one unit of a gridPos height, as in Grafana
GAP_PX = 8
HEADER_LINE_PX = 15
FOOTER_PX = 30
DPI = 100
TICK_PT, LEGEND_PT, TITLE_PT, HEADER_PT = 7.5, 7.5, 9.5, 8.5

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_LEGEND_LABEL = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


# --- Grafana's variables -------------------------------------------------------------------


def rate_interval(step_s: float, scrape_interval_s: float) -> float:
    """Grafana's $__rate_interval: max($__interval + scrape interval, 4 x scrape interval).

    >>> rate_interval(2, 2), rate_interval(15, 1)
    (8, 16)
    """
    return max(step_s + scrape_interval_s, 4 * scrape_interval_s)


def duration(seconds: float) -> str:
    """A PromQL duration: whole seconds, or milliseconds where needed (``8s``, ``1500ms``)."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def grafana_variables(dashboard: dict[str, Any], *, step_s: float, scrape_interval_s: float,
                      range_s: float) -> dict[str, str]:
    """What Grafana would put for each variable: "All" where allowed, else the current value."""
    values = {
        "__interval": duration(step_s),
        "__interval_ms": str(round(step_s * 1000)),
        "__rate_interval": duration(rate_interval(step_s, scrape_interval_s)),
        "__range": duration(round(range_s)),
        "__range_s": str(round(range_s)),
    }
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "datasource":
            continue
        current = variable.get("current", {}).get("value")
        if variable.get("includeAll"):
            values[variable["name"]] = variable.get("allValue") or ".*"
        elif isinstance(current, str) and current:
            values[variable["name"]] = current
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    """``expr`` with every ``$name``, ``${name}`` and ``[[name]]`` replaced from ``values``."""

    def one(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise ValueError(f"the query uses ${name}, which has no value here: give it one in "
                             f"grafana_variables() (known: {', '.join(sorted(values))})\n    {expr}")
        return values[name]

    return _VARIABLE.sub(one, expr)


def legend_name(legend_format: str, labels: dict[str, str]) -> str:
    """A series' name as Grafana shows it: the legendFormat filled in, else its labels."""
    if legend_format:
        return _LEGEND_LABEL.sub(lambda m: labels.get(m.group(1), ""), legend_format).strip()
    name = labels.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest or not name else name


# --- values and units ----------------------------------------------------------------------


def _number(value: float) -> str:
    """Three significant digits, without an exponent below a thousand."""
    if value == 0:
        return "0"
    text = f"{value:.3g}"
    return f"{value:.0f}" if "e+" in text else text


def short_number(value: float) -> str:
    for size, suffix in ((1e12, " T"), (1e9, " B"), (1e6, " M"), (1e3, " K")):
        if abs(value) >= size:
            return _number(value / size) + suffix
    return _number(value)


def _seconds(value: float) -> str:
    size = abs(value)
    if size == 0:
        return "0 s"
    for limit, scale, suffix in ((1e-3, 1e6, " µs"), (1.0, 1e3, " ms"), (60.0, 1.0, " s"),
                                 (3600.0, 1 / 60, " min")):
        if size < limit:
            return _number(value * scale) + suffix
    return _number(value / 3600) + " h"


def format_value(value: float, unit: str | None) -> str:
    """A value in a panel's unit, the way a reader wants it: ``4.2 ms``, ``99.5%``, ``200/s``.

    >>> [format_value(v, u) for v, u in [(0.0042, "s"), (0.995, "percentunit"), (200, "reqps")]]
    ['4.2 ms', '99.5%', '200/s']
    """
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    unit = unit or "short"
    if unit == "percentunit":
        return _number(value * 100) + "%"
    if unit == "percent":
        return _number(value) + "%"
    if unit in ("s", "ms", "µs", "ns"):
        scale = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "ns": 1e-9}[unit]
        return _seconds(value * scale)
    if unit in ("reqps", "rps", "cps"):
        return short_number(value) + "/s"
    if unit in ("ops", "opsps"):
        return short_number(value) + " ops/s"
    return short_number(value)


def colour(name: str) -> str:
    return NAMED_COLOURS.get(name, name)


def threshold_colour(value: float, defaults: dict[str, Any]) -> str:
    """The colour of the last threshold step at or below ``value`` (absolute thresholds)."""
    steps = defaults.get("thresholds", {}).get("steps") or [{"color": "green", "value": None}]
    chosen = steps[0]["color"]
    for step in steps:
        if step["value"] is None or value >= step["value"]:
            chosen = step["color"]
    return colour(chosen)


def mapped_text(value: float, defaults: dict[str, Any]) -> tuple[str | None, str | None]:
    """A value mapping's (text, colour) for ``value``, or (None, None)."""
    if not math.isfinite(value) or value != int(value):
        return None, None
    for mapping in defaults.get("mappings", []):
        if mapping.get("type") == "value":
            found = mapping["options"].get(str(int(value)))
            if found:
                return found.get("text"), found.get("color")
    return None, None


# --- query results on one time grid --------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """The times of a query_range: ``start``, ``start + step``, ... up to ``end``."""

    start: float
    end: float
    step: float

    @property
    def times(self) -> np.ndarray:
        return self.start + self.step * np.arange(int(round((self.end - self.start) / self.step)) + 1)


@dataclass
class Series:
    name: str
    labels: dict[str, str]
    values: np.ndarray  # on the grid's times, NaN where Prometheus had no point

    @property
    def points(self) -> int:
        return int(np.isfinite(self.values).sum())

    @property
    def last(self) -> float:
        finite = self.values[np.isfinite(self.values)]
        return float(finite[-1]) if len(finite) else math.nan


def series_of(result: list[dict[str, Any]], legend_format: str, grid: Grid) -> list[Series]:
    """A query_range matrix as series on ``grid`` (points off the grid are dropped)."""
    out = []
    times = grid.times
    for item in result:
        values = np.full(len(times), np.nan)
        for t, v in item.get("values", []):
            index = int(round((float(t) - grid.start) / grid.step))
            if 0 <= index < len(times):
                values[index] = float(v)
        out.append(Series(legend_name(legend_format, item["metric"]), item["metric"], values))
    return out


def panel_series(panel: dict[str, Any], answers: dict[tuple[int, str], dict[str, Any]],
                 grid: Grid) -> list[tuple[dict[str, Any], Series]]:
    """(target, series) of every target of ``panel`` whose query succeeded."""
    out = []
    for target in panel.get("targets", []):
        answer = answers.get((panel["id"], target["refId"]), {})
        if answer.get("status") == "success":
            out += [(target, s) for s in series_of(answer["data"]["result"],
                                                   target.get("legendFormat", ""), grid)]
    return out


