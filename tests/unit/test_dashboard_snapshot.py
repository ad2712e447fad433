"""docs/tools/dashboard_snapshot.py sends the dashboard's queries as Grafana would, and draws
its panels from query_range answers: here from canned answers, without a Prometheus."""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "docs" / "tools"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "streamer.json"


@pytest.fixture(scope="module")
def panels() -> Any:
    return load_script(TOOLS / "grafana_panels.py", "grafana_panels")


@pytest.fixture(scope="module")
def draw(panels: Any) -> Any:  # it imports grafana_panels by name
    return load_script(TOOLS / "dashboard_draw.py", "dashboard_draw")


@pytest.fixture(scope="module")
def snapshot(draw: Any) -> Any:
    return load_script(TOOLS / "dashboard_snapshot.py", "dashboard_snapshot")


def test_docstring_examples_hold(panels: Any, draw: Any, snapshot: Any) -> None:
    for module in (panels, draw, snapshot):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_rate_interval_is_grafanas_four_scrapes_or_step_plus_one_scrape(panels: Any) -> None:
    assert panels.rate_interval(step_s=2, scrape_interval_s=2) == 8
    assert panels.rate_interval(step_s=30, scrape_interval_s=2) == 32


def test_every_dashboard_query_is_sent_with_all_instances_and_the_current_group(panels: Any) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    values = panels.grafana_variables(dashboard, step_s=2, scrape_interval_s=2, range_s=180)
    assert values["instance"] == ".+" and values["edge"] == ".+"
    assert values["consumergroup"] == "streamer"
    assert values["__rate_interval"] == "8s"
    sent = [panels.substitute(t["expr"], values)
            for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert sent and not [expr for expr in sent if "$" in expr]
    assert 'rate(streamer_items_total{instance=~".+"}[8s])' in " ".join(sent)


def test_a_variable_without_a_value_is_an_error_that_names_it(panels: Any) -> None:
    with pytest.raises(ValueError, match=r"\$region"):
        panels.substitute('up{region="$region"}', {"instance": ".+"})
    assert panels.substitute("rate(x[${__rate_interval}]) + [[a]]", {"__rate_interval": "8s", "a": "1"}) \
        == "rate(x[8s]) + 1"


def test_legend_fills_the_format_or_falls_back_to_the_labels(panels: Any) -> None:
    labels = {"__name__": "streamer_labels_total", "outcome": "joined", "instance": "h:9100"}
    assert panels.legend_name("{{outcome}} on {{ instance }}", labels) == "joined on h:9100"
    assert panels.legend_name("", labels) == 'streamer_labels_total{instance="h:9100", outcome="joined"}'


@pytest.mark.parametrize(("value", "unit", "shown"), [
    (0.25, "s", "250 ms"), (42.0, "s", "42 s"), (0.00002, "s", "20 µs"), (150.0, "ms", "150 ms"),
    (0.05, "percentunit", "5%"), (99.5, "percent", "99.5%"), (12_345.0, "short", "12.3 K"),
    (200.0, "reqps", "200/s"), (3.0, "ops", "3 ops/s"), (math.nan, "short", "NaN"),
])
def test_values_are_shown_in_the_panels_unit(panels: Any, value: float, unit: str, shown: str) -> None:
    assert panels.format_value(value, unit) == shown


def test_points_land_on_the_grid_and_gaps_stay_empty(panels: Any) -> None:
    grid = panels.Grid(start=100.0, end=110.0, step=2.0)
    result = [{"metric": {"reason": "skip"}, "values": [[100, "1"], [102, "2"], [108, "5"]]}]
    (series,) = panels.series_of(result, "{{reason}}", grid)
    assert series.name == "skip"
    assert series.points == 3 and series.last == 5.0
    assert np.isnan(series.values[2]) and np.isnan(series.values[5])


def test_a_panel_is_without_data_only_when_every_query_has_no_points(snapshot: Any) -> None:
    rows = [
        {"panel_id": 1, "panel": "Lag", "type": "stat", "points": 0, "why": "no series named lag"},
        {"panel_id": 2, "panel": "Items", "type": "timeseries", "points": 0, "why": "x"},
        {"panel_id": 2, "panel": "Items", "type": "timeseries", "points": 30},
    ]
    assert snapshot.panels_without_data(rows) == [
        {"panel_id": 1, "panel": "Lag", "type": "stat", "why": "no series named lag"}]


def test_the_header_names_each_firing_alert_once_from_prometheus_s_answer(snapshot: Any, panels: Any) -> None:
    """The stat panel only counts firing alerts; the picture's header says which they are."""
    import http.server
    import threading

    # an instant query of ALERTS answers a series per alert and label set: a name can repeat
    answer = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"alertname": name, "alertstate": "firing", "instance": instance}, "value": [0, "1"]}
        for name, instance in (("StreamerPendingLabelsGrowing", "a"), ("StreamerDeadLettersAppearing", "a"),
                               ("StreamerPendingLabelsGrowing", "b"))]}}
    asked: list[str] = []

    class Prometheus(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Prometheus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        firing = snapshot.firing_alerts(f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
    assert firing == ["StreamerDeadLettersAppearing", "StreamerPendingLabelsGrowing"]
    assert asked and asked[0].startswith("/api/v1/query?query=ALERTS")

    settings = snapshot.RunSettings(180, 200, 0.05, 2, 6, 0.4, 0.05, True, 0, 1600)
    run = snapshot.Run("http://p", panels.Grid(0, 180, 2), True, [60.0], {}, 90)
    header = snapshot.header_lines(settings, run, "2.42", [], {"start": 0.1, "end": 2.0}, firing)
    assert "Firing at the end: StreamerDeadLettersAppearing, StreamerPendingLabelsGrowing." in header
    assert not any(line.startswith("Firing") for line in
                   snapshot.header_lines(settings, run, "2.42", [], {"start": 0.1, "end": 2.0}, []))


# --- drawing -------------------------------------------------------------------------------


def _matrix(metric: dict[str, str], values: list[float], grid: Any) -> dict[str, Any]:
    return {"metric": metric, "values": [[t, str(v)] for t, v in zip(grid.times, values, strict=False)]}


def _answer(*series: dict[str, Any]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "matrix", "result": list(series)}}


def _target(expr: str, legend: str, ref: str = "A") -> dict[str, Any]:
    return {"expr": expr, "legendFormat": legend, "refId": ref}


def _panel(id_: int, type_: str, title: str, pos: tuple[int, int, int, int], defaults: dict[str, Any],
           targets: list[dict[str, Any]], overrides: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    x, y, w, h = pos
    return {"id": id_, "type": type_, "title": title, "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "fieldConfig": {"defaults": defaults, "overrides": overrides or []}, "targets": targets}


def test_a_dashboard_is_drawn_in_its_grid_with_a_red_stat_over_its_threshold(
    panels: Any, draw: Any, snapshot: Any, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    grid = panels.Grid(start=1_700_000_000.0, end=1_700_000_060.0, step=2.0)
    n = len(grid.times)
    red = {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}
    dashboard = {"title": "test", "panels": [
        {"id": 1, "type": "row", "title": "Health", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}},
        _panel(2, "stat", "Firing alerts", (0, 1, 6, 4), {"unit": "short", "thresholds": red},
               [_target("count(ALERTS)", "firing")]),
        _panel(3, "stat", "Consumer lag", (6, 1, 6, 4), {"unit": "short"},
               [_target("sum(kafka_consumergroup_lag)", "lag")]),
        _panel(4, "timeseries", "Pending and expired", (12, 1, 12, 8),
               {"unit": "short", "min": 0, "custom": {"stacking": {"mode": "normal"}}},
               [_target("pending", "pending"), _target("expired", "expired/s", "B")],
               overrides=[{"matcher": {"id": "byName", "options": "expired/s"}, "properties": [
                   {"id": "custom.axisPlacement", "value": "right"}, {"id": "unit", "value": "reqps"}]}]),
        _panel(5, "heatmap", "Scores", (0, 5, 12, 8), {}, [_target("score_bucket", "{{le}}")]),
    ]}
    answers = {
        (2, "A"): _answer(_matrix({}, [3.0] * n, grid)),
        (3, "A"): _answer(),  # no data
        (4, "A"): _answer(_matrix({}, list(range(n)), grid)),
        (4, "B"): _answer(_matrix({}, [0.5] * n, grid)),
        (5, "A"): _answer(*[_matrix({"le": le}, [float(i) * 10] * n, grid)
                            for i, le in enumerate(["0.5", "1.0", "+Inf"], start=1)]),
    }
    path = tmp_path / "dashboard.png"

    drawn = draw.draw_dashboard(dashboard, answers, grid, path, header=["a run"],
                                    footer=snapshot.footer_line("abc1234", "2026-01-01"), width_px=800)

    image = imread(path)
    assert image.shape[:2] == (drawn["height_px"], 800)
    assert drawn["height_px"] == draw.header_height(1) + 13 * panels.CELL_HEIGHT_PX + panels.FOOTER_PX
    # a frame per panel but the row; the stat's box; the plot and its right axis; the heatmap
    # and its colour scale; nothing more for the panel without data
    assert drawn["axes"] == 4 + 1 + 2 + 2
    pixels = (image[..., :3] * 255).round().astype(int).reshape(-1, 3)
    stat_red = np.array([0xF2, 0x49, 0x5C])
    assert (np.abs(pixels - stat_red).sum(axis=1) <= 3).sum() > 1000, "the firing-alerts stat is red"
