"""`streamer feed sensors` without a broker: rows, pacing, progress, the send loop, the CLI.

The send loop is driven through :class:`MemorySink`, the in-memory seam with the interface of
:class:`streamer.feed.sink.ItemSink`; tests/integration/test_feed.py runs the real thing.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.cli import build_parser, main
from streamer.feed.background import in_background
from streamer.feed.errors import FeedError
from streamer.feed.pacing import Pacer
from streamer.feed.progress import Progress
from streamer.feed.report import FeedReport
from streamer.feed.row_files import count_lines, read_rows
from streamer.feed.rows import (
    BadRow,
    CsvRowDecoder,
    JsonRowDecoder,
    Row,
    RowSpec,
    default_stream_name,
)
from streamer.feed.sending import Outgoing, Skipped, send_all
from streamer.feed.sensors import encoded_rows, is_live

SPEC = RowSpec(stream="plant")


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def rows_of(path: Path, spec: RowSpec = SPEC, fmt: str | None = None) -> list[Row | BadRow]:
    return list(read_rows(path, spec, fmt))


# ---------------------------------------------------------------------------------------------
# CSV rows


def test_csv_rows_get_stream_row_ids_and_leave_the_label_out(tmp_path: Path) -> None:
    path = write(tmp_path / "plant.csv", "temp,rpm,label\n21.5,1500,0\n22,1490,1\n")
    rows = rows_of(path)
    assert [r.id for r in rows] == ["plant-0000000", "plant-0000001"]
    assert [r.features for r in rows] == [[21.5, 1500.0], [22.0, 1490.0]]
    assert [r.line for r in rows] == [2, 3]


def test_ids_match_the_ones_streamer_produce_and_annotate_give_the_same_file(tmp_path: Path) -> None:
    from streamer.replay import load_stream

    path = write(tmp_path / "sea.csv", "x0,x1,label\n1,2,0\n3,4,1\n5,6,0\n")
    spec = RowSpec(stream=default_stream_name(path))
    assert [r.id for r in rows_of(path, spec)] == load_stream(path).ids


def test_an_id_column_and_an_iso_or_numeric_ts_column_are_used_not_sent_as_features(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "id,ts,v,label\ncam-7,2024-01-01T00:00:01Z,1,0\ncam-8,1704067202.5,2,1\n")
    rows = rows_of(path)
    assert [(r.id, r.ts, r.features) for r in rows] == [
        ("cam-7", 1704067201.0, [1.0]), ("cam-8", 1704067202.5, [2.0])]


def test_naive_iso_times_are_read_as_utc(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "ts,v\n1970-01-01T00:01:00,1\n")
    assert rows_of(path)[0].ts == 60.0


def test_drop_and_columns_choose_the_features(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "a,b,operator,label\n1,2,7,0\n")
    assert rows_of(path, RowSpec("s", drop=frozenset({"label", "operator"})))[0].features == [1.0, 2.0]
    assert rows_of(path, RowSpec("s", columns=("b", "a")))[0].features == [2.0, 1.0]
    assert rows_of(path, RowSpec("s", drop=frozenset()))[0].features == [1.0, 2.0, 7.0, 0.0]


def test_bad_csv_rows_name_their_line_and_what_is_wrong(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "a,b,label\n1,2,0\n1,x,0\n1,2\n\n1,nan,0\n1,,0\n5,6,1\n")
    got = rows_of(path)
    bad = [str(r) for r in got if isinstance(r, BadRow)]
    assert bad == [
        "line 3: column 'b' is not a number: 'x' (fix the row, or leave the column out with --drop b)",
        "line 4: 2 values, the header has 3",
        "line 6: column 'b' is not a number: 'nan' (fix the row, or leave the column out with --drop b)",
        "line 7: column 'b' is not a number: '' (fix the row, or leave the column out with --drop b)",
    ]
    good = [r for r in got if isinstance(r, Row)]
    # the blank line is no row; bad rows keep their number so later ids do not shift
    assert [(r.id, r.line) for r in good] == [("plant-0000000", 2), ("plant-0000005", 8)]


def test_a_line_that_is_not_utf8_is_a_bad_row_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"a,label\n1,0\n\xff\xfe,1\n3,0\n")
    got = rows_of(path)
    assert [type(r).__name__ for r in got] == ["Row", "BadRow", "Row"]
    assert str(got[1]) == "line 3: is not UTF-8 text"


def test_a_quoted_value_spanning_lines_is_one_row_numbered_by_its_first_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", 'id,v\n"multi\nline",1\nnext,2\n')
    rows = rows_of(path)
    assert [(r.id, r.line) for r in rows] == [("multi\nline", 2), ("next", 4)]


@pytest.mark.parametrize(("header", "spec", "message"), [
    ("a,a,label", SPEC, "more than once"),
    ("a,b,label", RowSpec("s", columns=("c",)), "--columns names ['c'], which the header lacks"),
    ("id,label", SPEC, "no feature column left"),
])
def test_a_header_that_cannot_work_stops_before_any_row(tmp_path: Path, header: str, spec: RowSpec,
                                                        message: str) -> None:
    path = write(tmp_path / "a.csv", header + "\n1,2\n")
    with pytest.raises(FeedError, match=message.replace("[", r"\[").replace("]", r"\]")):
        rows_of(path, spec)


def test_missing_empty_and_folder_sources_say_so(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="no such file"):
        rows_of(tmp_path / "nope.csv")
    with pytest.raises(FeedError, match="the file is empty"):
        rows_of(write(tmp_path / "empty.csv", ""))
    with pytest.raises(FeedError, match="is a folder"):
        rows_of(tmp_path)


def test_gzip_is_recognised_by_its_bytes_and_the_format_by_name_or_first_character(tmp_path: Path) -> None:
    text = '{"features": [1, 2]}\n'
    assert rows_of(write(tmp_path / "a.jsonl.gz", text))[0].features == [1.0, 2.0]
    assert rows_of(write(tmp_path / "no-suffix.gz", text))[0].features == [1.0, 2.0]
    assert rows_of(write(tmp_path / "data.txt", "a,label\n4,1\n"))[0].features == [4.0]
    assert rows_of(write(tmp_path / "sniffed", text))[0].features == [1.0, 2.0]


def test_count_lines_gives_data_lines_for_the_eta_and_none_for_stdin(tmp_path: Path) -> None:
    assert count_lines(write(tmp_path / "a.csv.gz", "a,label\n1,0\n2,1\n3,1")) == 3
    assert count_lines(write(tmp_path / "a.jsonl", "{}\n{}\n")) == 2
    assert count_lines("-") is None


# ---------------------------------------------------------------------------------------------
# JSON Lines rows


def test_flat_json_rows_send_their_numeric_fields_in_the_first_rows_order(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", '{"b": 1, "a": 2, "label": 0, "ts": 5}\n{"a": 4, "b": 3, "label": 1, "ts": 6}\n')
    rows = rows_of(path)
    assert [(r.features, r.ts) for r in rows] == [([1.0, 2.0], 5.0), ([3.0, 4.0], 6.0)]


def test_json_rows_pass_stream_payload_uri_and_meta_through(tmp_path: Path) -> None:
    line = {"id": 17, "features": {"x": 1, "label": 3}, "stream": "s2", "payload_uri": "s3://b/k",
            "meta": {"site": "A"}}
    row = rows_of(write(tmp_path / "a.jsonl", json.dumps(line) + "\n"))[0]
    assert row == Row(1, "17", {"x": 1.0}, None, "s2", "s3://b/k", {"site": "A"})


@pytest.mark.parametrize(("line", "reason"), [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "expected a JSON object, got list"),
    (b'{"features": [1, "a"]}', "features[1] is not a finite number: 'a'"),
    (b'{"features": [true]}', "features[0] is not a finite number: True"),
    (b'{"features": []}', "'features' is empty"),
    (b'{"features": "1,2"}', "'features' must be a list or an object of numbers, got str"),
    (b'{"features": [1], "id": 1.5}', "the id must be a string, got 1.5"),
    (b'{"features": [1], "id": ""}', "the id is empty"),
    (b'{"features": [1], "ts": "yesterday"}', "'ts' is neither seconds nor an ISO 8601 time: 'yesterday'"),
    (b'{"features": [1], "meta": [1]}', "'meta' must be an object, got list"),
    (b'{"label": 1}', "no 'features' and no other numeric field"),
])
def test_bad_json_rows_say_what_is_wrong(line: bytes, reason: str) -> None:
    got = JsonRowDecoder(SPEC).decode(line, line=9, index=0)
    assert isinstance(got, BadRow) and got.line == 9 and got.reason.startswith(reason)


def test_a_flat_json_row_with_other_fields_than_the_first_is_bad(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", '{"a": 1, "b": 2}\n{"a": 1, "c": 2}\n')
    bad = rows_of(path)[1]
    assert isinstance(bad, BadRow)
    assert "missing ['b'], unexpected ['c']" in bad.reason


# ---------------------------------------------------------------------------------------------
# properties of the decoders

_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(
    lambda n: n not in {"id", "ts", "label"})
_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=200, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(_names, min_size=1, max_size=6, unique=True),
       data=st.data(), with_ts=st.booleans())
def test_csv_written_by_the_csv_module_reads_back_exactly(names: list[str], data: st.DataObject,
                                                         with_ts: bool) -> None:
    rows = data.draw(st.lists(st.lists(_floats, min_size=len(names), max_size=len(names)), max_size=20))
    stamps = data.draw(st.lists(_floats, min_size=len(rows), max_size=len(rows)))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["ts", *names, "label"] if with_ts else [*names, "label"])
    for i, row in enumerate(rows):
        writer.writerow([repr(stamps[i]), *map(repr, row), i % 3] if with_ts else [*map(repr, row), i % 3])
    decoder = CsvRowDecoder(next(csv.reader(io.StringIO(buffer.getvalue()))), SPEC)
    records = list(csv.reader(io.StringIO(buffer.getvalue())))[1:]
    got = [decoder.decode(record, line=i + 2, index=i) for i, record in enumerate(records)]
    assert [r.features for r in got] == rows  # type: ignore[union-attr]
    assert [r.id for r in got] == [f"plant-{i:07d}" for i in range(len(rows))]  # type: ignore[union-attr]
    if with_ts:
        assert [r.ts for r in got] == stamps  # type: ignore[union-attr]


@settings(max_examples=300, derandomize=True)
@given(record=st.lists(st.text(max_size=12), max_size=5))
def test_any_csv_record_gives_a_row_of_finite_numbers_or_a_bad_row(record: list[str]) -> None:
    got = CsvRowDecoder(["id", "ts", "a", "b", "label"], SPEC).decode(record, line=5, index=0)
    if isinstance(got, Row):
        assert len(got.features) == 2 and all(math.isfinite(v) for v in got.features)
    else:
        assert isinstance(got, BadRow) and got.line == 5 and got.reason


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, derandomize=True)
@given(value=_json | st.dictionaries(st.sampled_from(["id", "ts", "features", "x", "label", "meta",
                                                       "stream", "payload_uri"]), _json, max_size=6))
def test_any_json_value_gives_a_row_of_finite_numbers_or_a_bad_row(value: object) -> None:
    try:
        text = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):  # NaN is written as null; huge ints refused
        text = json.dumps(value, allow_nan=True).encode()
    got = JsonRowDecoder(SPEC).decode(text, line=3, index=0)
    if isinstance(got, Row):
        values = got.features.values() if isinstance(got.features, dict) else got.features
        assert values and all(math.isfinite(v) for v in values)
        assert isinstance(got.id, str) and got.id
    else:
        assert isinstance(got, BadRow) and got.reason


@settings(max_examples=150, derandomize=True)
@given(lines=st.lists(st.binary(max_size=30).filter(lambda b: b"\n" not in b and b"\r" not in b),
                      max_size=12))
def test_every_non_blank_json_line_is_one_row_or_one_bad_row_never_lost(tmp_path_factory: pytest.TempPathFactory,
                                                                       lines: list[bytes]) -> None:
    path = tmp_path_factory.mktemp("jsonl") / "a.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    got = rows_of(path)
    expected = [i + 1 for i, line in enumerate(lines) if line.strip()]
    assert [r.line for r in got] == expected


# ---------------------------------------------------------------------------------------------
# pacing, progress, report


def test_rate_pacing_spaces_items_evenly_and_timestamp_pacing_scales_gaps() -> None:
    clock = [10.0]
    by_rate = Pacer(rate=10, clock=lambda: clock[0])
    assert [by_rate.due(None) for _ in range(3)] == [10.0, 10.1, 10.2]
    by_ts = Pacer(speed=10, clock=lambda: clock[0])
    assert [by_ts.due(ts) for ts in (1000.0, 1010.0, 1030.0)] == [10.0, 11.0, 13.0]
    assert Pacer().due(5.0) is None and not Pacer().paced


def test_timestamp_pacing_needs_a_ts_and_refuses_two_paces() -> None:
    with pytest.raises(ValueError, match="has no ts"):
        Pacer(speed=1).due(None)
    with pytest.raises(ValueError, match="not both"):
        Pacer(rate=1, speed=1)
    with pytest.raises(ValueError, match="above 0"):
        Pacer(rate=0)


def test_progress_shows_count_rate_and_eta_when_the_total_is_known() -> None:
    clock = [0.0]
    out = io.StringIO()
    progress = Progress(1000, out, interval=1.0, clock=lambda: clock[0])
    clock[0] = 2.0
    progress.update(250, skipped=3)
    assert out.getvalue() == "sent 250/1,000 (25%) items, 125/s, ETA 6s, 3 bad skipped\n"
    assert Progress(None, io.StringIO(), clock=lambda: 1.0).line(5) == "sent 5 items, 0/s"


def test_the_report_lists_the_first_ten_bad_inputs_and_counts_all() -> None:
    report = FeedReport(source="a.csv", topic="items", sent=5, acked=5, elapsed_s=1.0)
    for i in range(12):
        report.skip(f"line {i + 2}: bad")
    text = report.summary()
    assert "12 bad skipped (first 10 shown)" in text and "line 11: bad" in text and "line 12:" not in text
    assert report.as_dict()["skipped"] == 12


# ---------------------------------------------------------------------------------------------
# the send loop


class MemorySink:
    """ItemSink's interface, keeping what it is sent (and when) instead of producing it."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes, float]] = []
        self.calls = 0
        self.sent = 0
        self.acked = 0

    async def send(self, keys: Sequence[bytes], values: Sequence[bytes]) -> list[int]:
        self.calls += 1
        now = time.monotonic()
        self.records += [(k, v, now) for k, v in zip(keys, values, strict=True)]
        self.sent += len(keys)
        return []

    async def drain(self) -> int:
        self.acked = self.sent
        return self.acked


def _send(path: Path, *, skip_bad: bool = False, max_items: int | None = None, rate: float | None = None,
          speed: float | None = None, stop: asyncio.Event | None = None) -> tuple[FeedReport, MemorySink]:
    async def go() -> tuple[FeedReport, MemorySink]:
        sink = MemorySink()
        report = FeedReport(source=str(path), topic="items")
        batches = in_background(lambda halt: encoded_rows(path, SPEC, stop=halt), batch=4)
        await send_all(batches, sink, report, pacer=Pacer(rate=rate, speed=speed),  # type: ignore[arg-type]
                       progress=Progress(None, None), skip_bad=skip_bad, max_items=max_items, stop=stop)
        return report, sink

    return asyncio.run(go())


def test_every_good_row_is_sent_encoded_as_an_item_keyed_by_its_id(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "ts,a,label\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(10)))
    report, sink = _send(path)
    assert report.sent == report.acked == 10 and report.skipped == 0
    items = [orjson.loads(v) for _, v, _ in sink.records]
    assert items[3] == {"id": "plant-0000003", "features": [6.0], "ts": 3.0, "stream": "plant"}
    assert [k for k, _, _ in sink.records] == [f"plant-{i:07d}".encode() for i in range(10)]


def test_a_bad_row_stops_the_feed_with_its_line_after_acking_the_rows_before(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "a,label\n1,0\n2,0\noops,1\n4,0\n")
    with pytest.raises(FeedError) as caught:
        _send(path)
    message = str(caught.value)
    assert "line 4: column 'a' is not a number: 'oops'" in message
    assert "--skip-bad" in message and "acknowledged before it: 2" in message


def test_skip_bad_sends_the_good_rows_and_counts_the_bad(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "a,label\n1,0\noops,1\n3\n4,0\n")
    report, sink = _send(path, skip_bad=True)
    assert (report.sent, report.skipped, len(sink.records)) == (2, 2, 2)
    assert report.examples == ["line 3: column 'a' is not a number: 'oops' (fix the row, or leave "
                               "the column out with --drop a)", "line 4: 1 values, the header has 2"]


def test_max_items_stops_after_that_many_items(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "a,label\n" + "1,0\n" * 50)
    report, sink = _send(path, max_items=7)
    assert report.sent == len(sink.records) == 7


def test_a_fixed_rate_spreads_items_over_the_expected_time(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "a,label\n" + "1,0\n" * 21)
    report, sink = _send(path, rate=100.0)
    span = sink.records[-1][2] - sink.records[0][2]
    assert 0.17 <= span <= 0.6, span  # 20 gaps of 10 ms
    assert report.sent == 21


def test_timestamp_pacing_keeps_the_files_gaps_divided_by_the_speed(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", "".join(f'{{"x": 1, "ts": {t}}}\n' for t in (0, 0, 2, 2, 4)))
    _, sink = _send(path, speed=10.0)
    times = [t - sink.records[0][2] for _, _, t in sink.records]
    assert times[1] < 0.05 and 0.17 <= times[2] <= 0.4 and 0.37 <= times[4] <= 0.7, times


def test_timestamp_pacing_without_a_ts_column_says_to_use_rate(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "a,label\n1,0\n")
    with pytest.raises(FeedError, match="line 2: the item has no ts.*use --rate"):
        _send(path, speed=1.0)


def test_setting_stop_ends_a_paced_feed_early_and_cleanly(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "a,label\n" + "1,0\n" * 100)

    async def go() -> tuple[FeedReport, MemorySink]:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.15, stop.set)
        sink = MemorySink()
        report = FeedReport(source=str(path), topic="items")
        batches = in_background(lambda halt: encoded_rows(path, SPEC, stop=halt))
        await send_all(batches, sink, report, pacer=Pacer(rate=100), progress=Progress(None, None),  # type: ignore[arg-type]
                       stop=stop)
        return report, sink

    report, sink = asyncio.run(go())
    assert report.stopped and 5 <= report.sent <= 40 and report.acked == report.sent == len(sink.records)


def test_raw_float32_items_carry_only_the_features(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "ts,a,b,label\n1,0.5,2,0\n")
    (out,) = list(encoded_rows(path, SPEC, content_type="application/x-float32"))
    assert isinstance(out, Outgoing) and out.value == b"\x00\x00\x00?\x00\x00\x00@" and out.ts == 1.0


def test_dict_features_cannot_go_as_raw_float32_and_are_a_bad_row(tmp_path: Path) -> None:
    path = write(tmp_path / "a.jsonl", '{"features": {"a": 1}}\n')
    (out,) = list(encoded_rows(path, SPEC, content_type="application/x-float32"))
    assert isinstance(out, Skipped) and out.reason.startswith("line 1: raw float32 carries only")


def test_background_reading_hands_over_all_items_in_order_then_the_error() -> None:
    def items(halt: object) -> object:
        yield from range(10)
        raise FeedError("disk gone")

    async def go() -> list[int]:
        got: list[int] = []
        with pytest.raises(FeedError, match="disk gone"):
            async for batch in in_background(items, batch=3):  # type: ignore[arg-type]
                got += batch
        return got

    assert asyncio.run(go()) == list(range(10))


def test_a_regular_file_is_not_live_and_a_fifo_is(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert is_live(fifo) and not is_live(write(tmp_path / "a.csv", "a\n"))


# ---------------------------------------------------------------------------------------------
# the command line


def test_the_feed_sensors_flags_parse_like_streamer_produce() -> None:
    args = build_parser().parse_args(
        ["feed", "sensors", "a.csv", "--bootstrap-servers", "k:9092", "--topic", "t", "--rate", "50",
         "--content-type", "msgpack", "--max-items", "10", "--drop", "label,who", "--skip-bad"])
    assert (args.items_topic, args.rate, args.speed, args.content_type, args.max_items) == ("t", 50.0, None, "msgpack", 10)
    assert build_parser().parse_args(["feed", "sensors", "-", "--realtime"]).speed == 1.0


def test_rate_and_timestamp_pacing_are_exclusive_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["feed", "sensors", "a.csv", "--rate", "5", "--speed", "2"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_missing_file_fails_before_connecting_to_kafka(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    code = main(["feed", "sensors", str(tmp_path / "nope.csv"), "--bootstrap-servers", "127.0.0.1:1"])
    assert code == 1 and time.monotonic() - started < 1.0  # no connection attempt
    assert capsys.readouterr().err.strip() == f"streamer feed: no such file: {tmp_path / 'nope.csv'}"


def test_items_are_the_bytes_encode_item_writes(tmp_path: Path) -> None:
    from streamer.wire import encode_item

    path = write(tmp_path / "a.jsonl", '{"x": 1.5, "ts": 3}\n{"features": [2], "stream": "s9"}\n'
                                       '{"features": {"a": 1}, "meta": {"k": 1}, "payload_uri": "u"}\n')
    got = [o.value for o in encoded_rows(path, SPEC)]  # type: ignore[union-attr]
    assert got == [encode_item("plant-0000000", [1.5], ts=3.0, stream="plant"),
                   encode_item("plant-0000001", [2.0], stream="s9"),
                   encode_item("plant-0000002", {"a": 1.0}, stream="plant", payload_uri="u", meta={"k": 1})]
