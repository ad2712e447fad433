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

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "streamer.json"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
IMAGE = ROOT / "docs" / "images" / "dashboard.png"
RESULT = ROOT / "benchmarks" / "results" / "dashboard_snapshot.json"
SERVICE_JOB = "streamer"  # the alert rules select these job names
EDGE_JOB = "label-studio-bridge"

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
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)\{")


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


def _short(value: float) -> str:
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
        return _short(value) + "/s"
    if unit in ("ops", "opsps"):
        return _short(value) + " ops/s"
    return _short(value)


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


# --- drawing -------------------------------------------------------------------------------


@dataclass
class Canvas:
    """The figure and its pixel geometry: ``box(x, y, w, h)`` in pixels from the top left."""

    figure: Any
    width: int
    height: int

    def box(self, x: float, y: float, w: float, h: float) -> list[float]:
        return [x / self.width, 1 - (y + h) / self.height, w / self.width, h / self.height]

    def text_width(self, text: str, size_pt: float) -> float:
        from matplotlib.font_manager import FontProperties

        renderer = self.figure.canvas.get_renderer()
        width, _, _ = renderer.get_text_width_height_descent(text, FontProperties(size=size_pt),
                                                             ismath=False)
        return float(width)

    def wrap(self, text: str, size_pt: float, width: float) -> list[str]:
        """``text`` in lines no wider than ``width`` pixels, broken between words."""
        lines = [""]
        for word in text.split(" "):
            candidate = f"{lines[-1]} {word}" if lines[-1] else word
            if lines[-1] and self.text_width(candidate, size_pt) > width:
                lines.append(word)
            else:
                lines[-1] = candidate
        return lines

    def text(self, x: float, y: float, text: str, **kwargs: Any) -> Any:
        return self.figure.text(x / self.width, 1 - y / self.height, text, parse_math=False,
                                **kwargs)


def header_height(lines: int) -> int:
    """Pixels above the grid: the title, then ``lines`` lines of text."""
    return 38 + HEADER_LINE_PX * lines + 8


def draw_dashboard(dashboard: dict[str, Any], answers: dict[tuple[int, str], dict[str, Any]],
                   grid: Grid, path: Path, *, header: list[str], footer: str,
                   width_px: int = 1600) -> dict[str, Any]:
    """Draw every panel in the dashboard's grid into ``path``; returns its size and axes count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    figure = plt.figure(dpi=DPI, facecolor=BACKGROUND)
    canvas = Canvas(figure, width_px, 0)
    lines = [part for line in header for part in canvas.wrap(line, HEADER_PT, width_px - 2 * GAP_PX)]
    top = header_height(len(lines))
    height_px = canvas.height = top + rows * CELL_HEIGHT_PX + FOOTER_PX
    figure.set_size_inches(width_px / DPI, height_px / DPI)
    unit_w = (width_px - GAP_PX) / 24
    canvas.text(GAP_PX, 12, dashboard.get("title", "dashboard"), color=TEXT, fontsize=15,
                fontweight="bold", va="top")
    for i, line in enumerate(lines):
        canvas.text(GAP_PX, 38 + HEADER_LINE_PX * i, line, color=MUTED, fontsize=HEADER_PT, va="top")
    for panel in panels:
        pos = panel["gridPos"]
        x = GAP_PX + pos["x"] * unit_w
        y = top + pos["y"] * CELL_HEIGHT_PX
        w = pos["w"] * unit_w - GAP_PX
        h = pos["h"] * CELL_HEIGHT_PX - GAP_PX
        if panel["type"] == "row":
            canvas.text(x, y + h / 2 + 2, f"⌄  {panel['title']}", color=TEXT, fontsize=11.5,
                        fontweight="bold", va="center")
            continue
        frame = figure.add_axes(canvas.box(x, y, w, h))
        frame.set_facecolor(PANEL)
        frame.set_xticks([])
        frame.set_yticks([])
        for spine in frame.spines.values():
            spine.set_color(BORDER)
        frame.set_zorder(-1)
        canvas.text(x + 8, y + 6, panel["title"], color=TEXT, fontsize=TITLE_PT,
                    fontweight="bold", va="top")
        series = panel_series(panel, answers, grid)
        if not any(s.points for _, s in series):
            canvas.text(x + w / 2, y + h / 2 + 8, "No data", color=MUTED, fontsize=11,
                        ha="center", va="center")
        elif panel["type"] == "stat":
            _draw_stat(canvas, panel, series, x, y + 24, w, h - 28)
        elif panel["type"] == "heatmap":
            _draw_heatmap(canvas, panel, series, grid, x, y, w, h)
        else:
            _draw_timeseries(canvas, panel, series, grid, x, y, w, h)
    canvas.text(GAP_PX, height_px - 10, footer, color=MUTED, fontsize=HEADER_PT, va="bottom")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, facecolor=BACKGROUND)
    axes = len(figure.axes)
    plt.close(figure)
    return {"width_px": width_px, "height_px": height_px, "axes": axes}


def _draw_stat(canvas: Canvas, panel: dict[str, Any], series: list[tuple[dict[str, Any], Series]],
               x: float, y: float, w: float, h: float) -> None:
    """The last value of each series, big, on its threshold's colour (colorMode background)."""
    defaults = panel["fieldConfig"]["defaults"]
    shown = [s for _, s in series if s.points]
    across = len(shown) if w / len(shown) >= 90 else 1
    down = math.ceil(len(shown) / across)
    cell_w, cell_h = (w - 8) / across, h / down
    for i, s in enumerate(shown):
        cx, cy = x + 4 + (i % across) * cell_w, y + (i // across) * cell_h
        text, mapped = mapped_text(s.last, defaults)
        fill = colour(mapped) if mapped else threshold_colour(s.last, defaults)
        box = canvas.figure.add_axes(canvas.box(cx + 2, cy + 2, cell_w - 4, cell_h - 4))
        box.set_facecolor(fill)
        box.set_xticks([])
        box.set_yticks([])
        for spine in box.spines.values():
            spine.set_visible(False)
        value = text or format_value(s.last, defaults.get("unit"))
        room = min((cell_h - 4) * 0.45, (cell_w - 16) / max(1, 0.62 * len(value)))
        value_pt = max(9.0, min(28.0, room / 1.39))
        canvas.text(cx + cell_w / 2, cy + 2 + 0.24 * (cell_h - 4), s.name or panel["title"],
                    color="white", fontsize=8.0, ha="center", va="center", alpha=0.9)
        canvas.text(cx + cell_w / 2, cy + 2 + 0.62 * (cell_h - 4), value,
                    color="white", fontsize=value_pt, fontweight="bold", ha="center", va="center")


def _legend_rows(canvas: Canvas, entries: list[tuple[str, str, str]], width: float) -> list[list[int]]:
    """Entries packed left to right into rows no wider than ``width`` pixels."""
    rows: list[list[int]] = [[]]
    used = 0.0
    for i, (name, _, _) in enumerate(entries):
        need = 22 + canvas.text_width(name, LEGEND_PT) + 14
        if rows[-1] and used + need > width:
            rows.append([])
            used = 0.0
        rows[-1].append(i)
        used += need
    return rows


def _draw_legend(canvas: Canvas, entries: list[tuple[str, str, str]], rows: list[list[int]],
                 x: float, y: float) -> None:
    from matplotlib.lines import Line2D

    figure = canvas.figure
    for r, row in enumerate(rows):
        cx, cy = x, y + 15 * r + 7
        for i in row:
            name, line_colour, style = entries[i]
            fx, fy = cx / canvas.width, 1 - cy / canvas.height
            figure.add_artist(Line2D([fx, fx + 14 / canvas.width], [fy, fy], color=line_colour,
                                     linestyle=style, linewidth=2.2, transform=figure.transFigure))
            canvas.text(cx + 19, cy, name, color=TEXT, fontsize=LEGEND_PT, va="center")
            cx += 22 + canvas.text_width(name, LEGEND_PT) + 14


def _style_axes(ax: Any, unit: str | None) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.set_facecolor(PANEL)
    for side, spine in ax.spines.items():
        spine.set_visible(side == "bottom")
        spine.set_color(BORDER)
    ax.tick_params(colors=MUTED, labelsize=TICK_PT, length=0, pad=3)
    ax.grid(True, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4, min_n_ticks=3))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, unit)))


def _time_axis(ax: Any, start: float, end: float, width_px: float) -> None:
    """Clock times every round interval, none so near the left edge that it would run into
    the y axis' lowest label (``start`` and ``end`` are matplotlib date numbers)."""
    import matplotlib.dates as mdates

    ax.set_xlim(start, end)
    zero = mdates.date2num(datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC))
    first_s, last_s = (start - zero) * 86400, (end - zero) * 86400
    span = last_s - first_s
    most = max(2, int(width_px / 70))
    every = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
                              21600, 43200, 86400) if span / s <= most), 86400)
    first = math.ceil((first_s + span * 32 / width_px) / every) * every
    ticks = np.arange(first, last_s - span * 16 / width_px + 1e-6, every)
    ax.set_xticks(zero + ticks / 86400)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))


def _y_limits(ax: Any, defaults: dict[str, Any], arrays: list[np.ndarray]) -> None:
    """The panel's min and max where set; else the data's range up to the next round tick."""
    from matplotlib.ticker import MaxNLocator

    finite = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([])
    data_low = float(finite.min()) if finite.size else 0.0
    data_high = float(finite.max()) if finite.size else 0.0
    low = defaults.get("min")
    if low is None:
        low = data_low - 0.05 * (data_high - data_low) if data_high > data_low else data_low - 1
    high = defaults.get("max")
    if high is None:
        steps = defaults.get("thresholds", {}).get("steps", [])
        # the alert bounds drawn as dashed lines stay in view when they are near the data
        near = [s["value"] for s in steps if s["value"] is not None and s["value"] <= 3 * data_high]
        top = max([data_high, *near])
        if top <= low:
            high = low + 1
        else:
            ticks = MaxNLocator(nbins=4).tick_values(low, top * 1.08)
            high = float(min(t for t in ticks if t >= top * 1.08))
    ax.set_ylim(low, high)


def _times(grid: Grid) -> np.ndarray:
    import matplotlib.dates as mdates

    return mdates.date2num([datetime.datetime.fromtimestamp(t, datetime.UTC) for t in grid.times])


def _override(panel: dict[str, Any], name: str, prop: str) -> Any:
    for override in panel["fieldConfig"].get("overrides", []):
        if override["matcher"]["id"] == "byName" and override["matcher"]["options"] == name:
            for p in override["properties"]:
                if p["id"] == prop:
                    return p["value"]
    return None


def _draw_timeseries(canvas: Canvas, panel: dict[str, Any],
                     series: list[tuple[dict[str, Any], Series]], grid: Grid,
                     x: float, y: float, w: float, h: float) -> None:
    defaults = panel["fieldConfig"]["defaults"]
    custom = defaults.get("custom", {})
    stacked = custom.get("stacking", {}).get("mode", "none") != "none"
    unit = defaults.get("unit")
    entries = []
    for i, (_, s) in enumerate(series):
        style = "--" if _override(panel, s.name, "custom.lineStyle") else "-"
        entries.append((s.name, PALETTE[i % len(PALETTE)], style))
    right = [s for _, s in series if _override(panel, s.name, "custom.axisPlacement") == "right"]
    left_pad, right_pad = 52, (56 if right else 12)
    rows = _legend_rows(canvas, entries, w - 16)
    legend_h = 15 * len(rows) + 4
    plot_y, plot_h = y + 28, h - 28 - 18 - legend_h
    plot_w = w - left_pad - right_pad
    ax = canvas.figure.add_axes(canvas.box(x + left_pad, plot_y, plot_w, plot_h))
    _style_axes(ax, unit)
    t = _times(grid)
    left = [(s, e) for (_, s), e in zip(series, entries, strict=True) if s not in right]
    if stacked:
        base = np.zeros(len(t))
        tops = []
        for s, (_, line_colour, style) in left:
            top = base + np.nan_to_num(s.values)
            ax.fill_between(t, base, top, color=line_colour, alpha=0.2, linewidth=0)
            # a series adding nothing draws no line over the one below it
            ax.plot(t, np.where(np.nan_to_num(s.values) > 0, top, np.nan), color=line_colour,
                    linestyle=style, linewidth=1.3)
            tops.append(top)
            base = top
        _y_limits(ax, defaults, tops)
    else:
        for s, (_, line_colour, style) in left:
            ax.plot(t, s.values, color=line_colour, linestyle=style, linewidth=1.3)
        _y_limits(ax, defaults, [s.values for s, _ in left])
    if custom.get("thresholdsStyle", {}).get("mode") == "dashed":
        for step in defaults.get("thresholds", {}).get("steps", []):
            if step["value"] is not None:
                ax.axhline(step["value"], color=colour(step["color"]), linestyle=(0, (6, 4)),
                           linewidth=1)
    _time_axis(ax, t[0], t[-1], plot_w)
    if right:
        twin = ax.twinx()
        right_unit = _override(panel, right[0].name, "unit") or unit
        _style_axes(twin, right_unit)
        twin.grid(False)
        for s in right:
            (_, line_colour, style), = [e for e in entries if e[0] == s.name]
            twin.plot(t, s.values, color=line_colour, linestyle=style, linewidth=1.3)
        _y_limits(twin, {"min": defaults.get("min")}, [s.values for s in right])
        twin.set_xlim(t[0], t[-1])
        twin.spines["bottom"].set_visible(False)
    _draw_legend(canvas, entries, rows, x + 10, y + h - legend_h)


def _dark_scheme(name: str) -> Any:
    """A colour scheme from dark (few) to bright (many), as Grafana's dark theme shows it."""
    from matplotlib import colormaps
    from matplotlib.colors import LinearSegmentedColormap

    bright = colormaps[name]
    return LinearSegmentedColormap.from_list(f"{name}-dark", [bright(1.0), bright(0.55), bright(0.2)])


def _draw_heatmap(canvas: Canvas, panel: dict[str, Any],
                  series: list[tuple[dict[str, Any], Series]], grid: Grid,
                  x: float, y: float, w: float, h: float) -> None:
    """Prometheus buckets (cumulative ``le``) as rows of counts over time, as Grafana draws them."""
    from matplotlib.colors import PowerNorm
    from matplotlib.ticker import FixedLocator, FuncFormatter

    options = panel.get("options", {})
    buckets = sorted(((float(s.labels.get("le", "inf")), s) for _, s in series),
                     key=lambda pair: pair[0])
    cumulative = np.array([np.nan_to_num(s.values) for _, s in buckets])
    counts = np.diff(cumulative, axis=0, prepend=0.0)
    floor = options.get("filterValues", {}).get("le", 0.0)
    counts = np.ma.masked_less_equal(counts, floor)
    bounds = [le for le, _ in buckets]
    plot_y, plot_h = y + 28, h - 28 - 18 - 26
    ax = canvas.figure.add_axes(canvas.box(x + 52, plot_y, w - 64, plot_h))
    _style_axes(ax, None)
    t = _times(grid)
    half = (t[1] - t[0]) / 2 if len(t) > 1 else 1 / 86400
    edges_t = np.concatenate([t - half, [t[-1] + half]])
    edges_y = np.arange(len(bounds) + 1)
    scheme = options.get("color", {})
    mesh = ax.pcolormesh(edges_t, edges_y, counts, cmap=_dark_scheme(scheme.get("scheme", "Oranges")),
                         norm=PowerNorm(gamma=scheme.get("exponent", 0.5), vmin=0),
                         shading="flat")
    ax.grid(False)
    every = max(1, math.ceil(13 / (plot_h / max(1, len(bounds)))))
    ticks = list(range(1, len(bounds) + 1, every))
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(
        lambda v, _: "+Inf" if math.isinf(bounds[int(v) - 1]) else f"{bounds[int(v) - 1]:.2f}"))
    _time_axis(ax, edges_t[0], edges_t[-1], w - 64)
    bar = canvas.figure.add_axes(canvas.box(x + 52, y + h - 16, min(220, w / 3), 7))
    canvas.figure.colorbar(mesh, cax=bar, orientation="horizontal")
    bar.tick_params(colors=MUTED, labelsize=TICK_PT - 0.5, length=0, pad=1)
    bar.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _short(v)))
    bar.xaxis.set_major_locator(FixedLocator([0, float(counts.max() or 1)]))
    for spine in bar.spines.values():
        spine.set_visible(False)
    value = options.get("rowsFrame", {}).get("value", "count")
    canvas.text(x + 58 + min(220, w / 3), y + h - 12, f"{value} per bucket and interval",
                color=MUTED, fontsize=TICK_PT, va="center")


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
    return list(dict.fromkeys(_SELECTOR.findall(expr)))


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
        shown = ", ".join(f"{k or '-'}={_short(v) if isinstance(v, float) else v}"
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
                 load: dict[str, float]) -> list[str]:
    """What ran, how it was queried, and which panels had no data and why."""
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
        commit = started.git.get("git_commit") or "(no git)"
        if started.git.get("streamer_uncommitted_changes"):
            commit += " (+ uncommitted changes)"
        when = datetime.datetime.fromtimestamp(run.grid.start, datetime.UTC)
        header = header_lines(settings, run, version, empty, load)
        picture = draw_dashboard(dashboard, answers, run.grid, args.out, header=header,
                                 footer=footer_line(commit, f"{when:%Y-%m-%d}"),
                                 width_px=settings.width_px)
        print_table(rows, empty)
        done.update(rows=rows, empty=empty, picture=picture, run=run)

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
