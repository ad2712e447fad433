"""Draw a Grafana dashboard's panels with matplotlib, in its grid and dark theme.

Stat, time-series and heatmap panels, from query answers put on one time grid by
grafana_panels.py. Used by dashboard_snapshot.py.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from grafana_panels import (
    BACKGROUND,
    BORDER,
    CELL_HEIGHT_PX,
    DPI,
    FOOTER_PX,
    GAP_PX,
    GRID,
    HEADER_LINE_PX,
    HEADER_PT,
    LEGEND_PT,
    MUTED,
    PALETTE,
    PANEL,
    TEXT,
    TICK_PT,
    TITLE_PT,
    Grid,
    Series,
    colour,
    format_value,
    mapped_text,
    panel_series,
    short_number,
    threshold_colour,
)

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
    bar.xaxis.set_major_formatter(FuncFormatter(lambda v, _: short_number(v)))
    bar.xaxis.set_major_locator(FixedLocator([0, float(counts.max() or 1)]))
    for spine in bar.spines.values():
        spine.set_visible(False)
    value = options.get("rowsFrame", {}).get("value", "count")
    canvas.text(x + 58 + min(220, w / 3), y + h - 12, f"{value} per bucket and interval",
                color=MUTED, fontsize=TICK_PT, va="center")


