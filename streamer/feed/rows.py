"""Rows of a sensor file -- CSV or JSON Lines, plain or gzip'ed, or stdin -- as items.

:mod:`streamer.feed.row_files` reads the files; this module says what a row means. A row
becomes a :class:`Row` (id, features, optional ts) or a :class:`BadRow` naming its line and
what is wrong with it; the reader never drops a row silently. Columns:

* ``id`` (``--id-column``): the item id; without it the id is ``<stream>-<row>`` with the
  0-based data row number zero-padded to 7 digits (``sea_abrupt-0000042``), the ids
  ``streamer produce`` and ``streamer annotate`` give the same file.
* ``ts`` (``--ts-column``): the item's time, seconds (Unix or any origin) or ISO 8601
  (naive times are UTC); sent as ``ts`` and used to pace a replay.
* ``label`` and any ``--drop`` column: never sent as a feature.
* every other column: a numeric feature, in file order (``--columns`` picks and orders them).

JSON Lines rows are objects. Either ``{"features": [...] | {name: x}, ...}`` or flat
``{"x0": 1.5, "x1": 2, "label": 0}``; flat rows send their numeric fields as a list in the
order of the first row, and every later row must have the same fields. ``stream``,
``payload_uri`` and ``meta`` pass through.

Examples
--------
>>> spec = RowSpec(stream="plant")
>>> decoder = CsvRowDecoder(["ts", "temp", "rpm", "label"], spec)
>>> decoder.decode(["10.5", "21.0", "1500", "1"], line=2, index=0)
Row(line=2, id='plant-0000000', features=[21.0, 1500.0], ts=10.5, stream=None, payload_uri=None, meta=None)
>>> decoder.decode(["11", "hot", "1500", "0"], line=3, index=1)
BadRow(line=3, reason="column 'temp' is not a number: 'hot' (fix the row, or leave the column out with --drop temp)")
>>> JsonRowDecoder(spec).decode(b'{"id": "a", "features": [1, 2], "ts": 3}', line=1, index=0)
Row(line=1, id='a', features=[1.0, 2.0], ts=3.0, stream=None, payload_uri=None, meta=None)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from streamer.data import LABEL_COLUMN
from streamer.feed.errors import FeedError
from streamer.wire import MAX_ID_LENGTH, MAX_PAYLOAD_URI_LENGTH, MAX_STREAM_LENGTH

__all__ = [
    "BadRow",
    "CsvRowDecoder",
    "JsonRowDecoder",
    "Row",
    "RowSpec",
    "default_stream_name",
]

Features = list[float] | dict[str, float]


@dataclass(frozen=True, slots=True)
class RowSpec:
    """Which columns are what.

    Parameters
    ----------
    stream
        Stream name: the prefix of generated ids.
    id_column, ts_column
        Columns (or JSON fields) holding the id and the timestamp, when present.
    drop
        Columns never sent as features (default: ``label``).
    columns
        When given, exactly these columns are the features, in this order.
    """

    stream: str
    id_column: str = "id"
    ts_column: str = "ts"
    drop: frozenset[str] = frozenset({LABEL_COLUMN})
    columns: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """One good row: an item to send. ``line`` is its first line in the file (1-based)."""

    line: int
    id: str
    features: Features
    ts: float | None = None
    stream: str | None = None
    payload_uri: str | None = None
    meta: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that cannot be sent, with its line (1-based) and what is wrong with it."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def default_stream_name(source: str | Path) -> str:
    """The stream name of a file: its name up to the first dot; ``stdin`` for ``-``.

    >>> default_stream_name("/data/sea_abrupt.csv.gz"), default_stream_name("-")
    ('sea_abrupt', 'stdin')
    """
    if str(source) == "-":
        return "stdin"
    return Path(source).name.split(".")[0] or "stream"


def _generated_id(stream: str, index: int) -> str:
    return f"{stream}-{index:07d}"


def _number(value: Any) -> float | None:
    """A finite float from a CSV cell or JSON value, else None (bools are not numbers)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _timestamp(value: Any) -> float | None:
    """Seconds from a number or an ISO 8601 string (naive = UTC), else None."""
    number = _number(value)
    if number is not None:
        return number
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    return None


def _not_a_number(name: str, value: Any) -> str:
    return (f"column {name!r} is not a number: {value!r} (fix the row, or leave the column out "
            f"with --drop {name})")


def _check_id(item_id: str) -> str | None:
    if not item_id:
        return "the id is empty"
    if len(item_id) > MAX_ID_LENGTH:
        return f"the id has {len(item_id)} characters, more than {MAX_ID_LENGTH}"
    return None


class CsvRowDecoder:
    """Turn CSV records into rows, given the header.

    Parameters
    ----------
    header
        Column names of the file's first line.
    spec
        Which columns are what.

    Raises
    ------
    FeedError
        A header with duplicate names, ``--columns`` naming a column the file lacks, or no
        feature column left.
    """

    def __init__(self, header: Sequence[str], spec: RowSpec) -> None:
        names = [name.strip() for name in header]
        if names and names[0].startswith("\ufeff"):  # a byte-order mark some editors write
            names[0] = names[0][1:]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise FeedError(f"the header names {duplicates} more than once: rename the columns")
        self.spec = spec
        self.width = len(names)
        self.id_index = names.index(spec.id_column) if spec.id_column in names else None
        self.ts_index = names.index(spec.ts_column) if spec.ts_column in names else None
        if spec.columns is not None:
            missing = [name for name in spec.columns if name not in names]
            if missing:
                raise FeedError(f"--columns names {missing}, which the header lacks; it has {names}")
            chosen = list(spec.columns)
        else:
            special = {spec.id_column, spec.ts_column} | set(spec.drop)
            chosen = [name for name in names if name not in special]
        if not chosen:
            raise FeedError(f"no feature column left in {names} (id {spec.id_column!r}, ts "
                            f"{spec.ts_column!r} and dropped {sorted(spec.drop)} are not features)")
        self.feature_names = chosen
        self.feature_indices = [names.index(name) for name in chosen]

    def decode(self, record: Sequence[str], line: int, index: int) -> Row | BadRow:
        """The row of ``record`` (its first line is ``line``; ``index`` counts data rows from 0)."""
        if len(record) != self.width:
            return BadRow(line, f"{len(record)} values, the header has {self.width}")
        try:  # the common case in one pass; a sum is finite only if every term is
            features = [float(record[i]) for i in self.feature_indices]
            good = math.isfinite(sum(features))
        except ValueError:
            good = False
        if not good:
            for name, position in zip(self.feature_names, self.feature_indices, strict=True):
                if _number(record[position]) is None:
                    return BadRow(line, _not_a_number(name, record[position]))
        ts = None
        if self.ts_index is not None:
            ts = _timestamp(record[self.ts_index])
            if ts is None:
                return BadRow(line, f"{self.spec.ts_column!r} is neither seconds nor an ISO 8601 "
                              f"time: {record[self.ts_index]!r}")
        if self.id_index is None:
            item_id = _generated_id(self.spec.stream, index)
        else:
            item_id = record[self.id_index].strip()
            if (problem := _check_id(item_id)) is not None:
                return BadRow(line, problem)
        return Row(line, item_id, features, ts)


@dataclass
class JsonRowDecoder:
    """Turn JSON Lines into rows; flat rows keep the fields of the first one.

    Parameters
    ----------
    spec
        Which fields are what.
    """

    spec: RowSpec
    feature_names: list[str] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.spec.columns is not None:
            self.feature_names = list(self.spec.columns)
        self._reserved = {self.spec.id_column, self.spec.ts_column, "stream", "payload_uri",
                          "meta", "features"}

    def decode(self, text: bytes | str, line: int, index: int) -> Row | BadRow:
        """The row of one line of JSON (``index`` counts data rows from 0)."""
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return BadRow(line, f"not valid JSON: {exc}")
        if not isinstance(obj, dict):
            return BadRow(line, f"expected a JSON object, got {type(obj).__name__}")
        features = self._features(obj)
        if isinstance(features, str):
            return BadRow(line, features)
        ts = None
        if (raw_ts := obj.get(self.spec.ts_column)) is not None:
            ts = _timestamp(raw_ts)
            if ts is None:
                return BadRow(line, f"{self.spec.ts_column!r} is neither seconds nor an ISO 8601 "
                              f"time: {raw_ts!r}")
        raw_id = obj.get(self.spec.id_column)
        if raw_id is None:
            item_id = _generated_id(self.spec.stream, index)
        elif isinstance(raw_id, str) or (isinstance(raw_id, int) and not isinstance(raw_id, bool)):
            item_id = str(raw_id)
            if (problem := _check_id(item_id)) is not None:
                return BadRow(line, problem)
        else:
            return BadRow(line, f"the id must be a string, got {raw_id!r}")
        extras = self._extras(obj)
        if isinstance(extras, str):
            return BadRow(line, extras)
        return Row(line, item_id, features, ts, *extras)

    def _features(self, obj: dict[str, Any]) -> Features | str:
        """The features of a row, or what is wrong with them."""
        if "features" in obj:
            given = obj["features"]
            if isinstance(given, list):
                if self.spec.columns is not None:
                    return "'features' is a list, so --columns cannot pick from it by name"
                values = [_number(v) for v in given]
                bad = [i for i, v in enumerate(values) if v is None]
                if bad:
                    return f"features[{bad[0]}] is not a finite number: {given[bad[0]]!r}"
                if not values:
                    return "'features' is empty"
                return values  # type: ignore[return-value]
            if isinstance(given, dict):
                return self._named(given, keep_all=self.spec.columns is None)
            return f"'features' must be a list or an object of numbers, got {type(given).__name__}"
        return self._flat(obj)

    def _named(self, given: dict[str, Any], keep_all: bool) -> dict[str, float] | str:
        names = [k for k in given if k not in self.spec.drop] if keep_all else list(self.spec.columns or ())
        out: dict[str, float] = {}
        for name in names:
            if name not in given:
                return f"no feature {name!r} (named by --columns)"
            number = _number(given[name])
            if number is None:
                return _not_a_number(name, given[name])
            out[name] = number
        return out or "no features left after --drop"

    def _flat(self, obj: dict[str, Any]) -> list[float] | str:
        if self.feature_names is None:
            names = [k for k in obj if k not in self._reserved and k not in self.spec.drop]
            if not names:
                return "no 'features' and no other numeric field"
            self.feature_names = names  # the first row fixes the features
        elif self.spec.columns is None:
            got = {k for k in obj if k not in self._reserved and k not in self.spec.drop}
            if got != set(self.feature_names):
                missing = [n for n in self.feature_names if n not in got][:5]
                extra = sorted(got - set(self.feature_names))[:5]
                return (f"its fields differ from the first row's (missing {missing}, unexpected "
                        f"{extra}); name the features with --columns or --drop the extra ones")
        values: list[float] = []
        for name in self.feature_names:
            if name not in obj:
                return f"no field {name!r} (named by --columns)"
            number = _number(obj[name])
            if number is None:
                return _not_a_number(name, obj[name])
            values.append(number)
        return values

    @staticmethod
    def _extras(obj: dict[str, Any]) -> tuple[str | None, str | None, dict[str, Any] | None] | str:
        stream, uri, meta = obj.get("stream"), obj.get("payload_uri"), obj.get("meta")
        if stream is not None and (not isinstance(stream, str) or len(stream) > MAX_STREAM_LENGTH):
            return f"'stream' must be a string of at most {MAX_STREAM_LENGTH} characters"
        if uri is not None and (not isinstance(uri, str) or len(uri) > MAX_PAYLOAD_URI_LENGTH):
            return f"'payload_uri' must be a string of at most {MAX_PAYLOAD_URI_LENGTH} characters"
        if meta is not None and not isinstance(meta, dict):
            return f"'meta' must be an object, got {type(meta).__name__}"
        return stream, uri, meta
