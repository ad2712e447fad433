"""Validation of incoming items and labels: bytes in, arrays and dataclasses out.

Decoding is batch-native: the service hands a whole micro-batch to
:meth:`ItemDecoder.decode_batch` and gets back one ``(B, d)`` float64 matrix of the
good items plus a list of ``(position, DecodeError)`` for the others, so one bad
message never costs the good ones around it. A batch of raw float32 items
(``application/x-float32``) all of the expected size is read with one ``np.frombuffer``.
"""

from __future__ import annotations

import math
import reprlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
from orjson import loads as _orjson_loads

from streamer.wire.formats import (
    DEFAULT_MAX_ABS,
    DEFAULT_MAX_BYTES,
    FLOAT32,
    JSON,
    DecodeError,
    float32_row,
    loads,
    normalize_content_type,
)

MAX_ID_LENGTH = 256
MAX_LABEL_LENGTH = 256
# Label requests echo these fields: unbounded, a valid item just under the size limit made a
# label request over the producer's limit, which stopped the service.
MAX_STREAM_LENGTH = 256
MAX_PAYLOAD_URI_LENGTH = 65_536
_NUMBER_TYPES = frozenset({int, float})  # bool is a distinct type, so it is excluded

# Bounded repr for error messages: a plain repr of a value nested 1000 deep (legal JSON)
# raises RecursionError, and of a 1 MB value costs a full copy.
_short_repr = reprlib.Repr()
_short_repr.maxlevel = 3
_short_repr.maxstring = _short_repr.maxother = _short_repr.maxlong = 60


@dataclass(slots=True)
class ItemMeta:
    """The optional fields of an item, passed through to label requests; read it, never change it.

    Raw float32 items have none and share one empty instance (a new one per item cost a
    third of their decoding time).
    """

    ts: float | None = None
    stream: str | None = None
    payload_uri: str | None = None
    meta: dict[str, Any] | None = None


_NO_META = ItemMeta()


@dataclass(slots=True)
class ItemBatch:
    """The good items of one micro-batch, aligned row by row.

    ``index[i]`` is the position in the input list of the item in row ``i`` of ``X``.
    """

    ids: list[str]
    X: np.ndarray  # float64, shape (B, d)
    index: list[int]
    meta: list[ItemMeta]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class LabelMessage:
    """One label from an annotator."""

    id: str
    label: str | int
    annotator: str | None = None
    ts: float | None = None


def _describe(value: Any) -> str:
    """A short description of a bad value for error messages."""
    text = _short_repr.repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _where(item_id: str | None) -> str:
    return f" (item id={item_id})" if item_id is not None else ""


def _parse_object(value: bytes | None, content_type: str | None, max_bytes: int, what: str) -> dict:
    obj = loads(value, content_type, max_bytes, f"{what}s")
    if not isinstance(obj, dict):
        raise DecodeError(
            "not_object", f'{what} must be an object like {{"id": ...}}, got {_describe(obj)}'
        )
    return obj


def _parse_id(obj: dict, what: str) -> str:
    if "id" not in obj:
        raise DecodeError("missing_id", f"{what} has no 'id': every {what} needs a string id")
    item_id = obj["id"]
    if not isinstance(item_id, str) or not item_id or len(item_id) > MAX_ID_LENGTH:
        raise DecodeError(
            "bad_id",
            f"{what} id must be a non-empty string of at most {MAX_ID_LENGTH} characters, "
            f"got {_describe(item_id)}",
        )
    return item_id


def _key_id(key: bytes | None) -> str:
    """The id of a raw float32 item: its record key, UTF-8, with the same rules as JSON ids."""
    if not key:
        raise DecodeError(
            "missing_id",
            "raw float32 item has no record key: send the item id as the Kafka key (UTF-8)",
        )
    if not isinstance(key, bytes | bytearray | memoryview):
        raise DecodeError("bad_id", f"record key must be bytes, got {_describe(key)}")
    try:
        item_id = bytes(key).decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(
            "bad_id", f"record key of a raw float32 item is not UTF-8: {_describe(bytes(key))}"
        ) from None
    if len(item_id) > MAX_ID_LENGTH:
        raise DecodeError(
            "bad_id",
            f"record key has {len(item_id)} characters, an item id has at most {MAX_ID_LENGTH}",
        )
    return item_id


def _raw_float32(content_types: Sequence[str | None]) -> list[bool]:
    """Which records are raw float32; each distinct header is parsed once (batches repeat them)."""
    kinds: dict[str | None, bool] = {}
    for content_type in set(content_types):
        try:
            kinds[content_type] = normalize_content_type(content_type) == FLOAT32
        except DecodeError:
            kinds[content_type] = False  # reported in order by the per-record decoder
    if len(kinds) == 1:
        return [kinds.popitem()[1]] * len(content_types)
    return [kinds[content_type] for content_type in content_types]


def _optional_float(obj: dict, key: str, item_id: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if type(value) not in _NUMBER_TYPES or not math.isfinite(value):
        raise DecodeError(
            "bad_field", f"'{key}' must be a finite number, got {_describe(value)}{_where(item_id)}"
        )
    return float(value)


def _optional_str(obj: dict, key: str, item_id: str, max_length: int | None = None) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DecodeError(
            "bad_field", f"'{key}' must be a string, got {_describe(value)}{_where(item_id)}"
        )
    if max_length is not None and len(value) > max_length:
        raise DecodeError(
            "bad_field",
            f"'{key}' has {len(value)} characters, at most {max_length} are allowed"
            f"{_where(item_id)}",
        )
    return value


def _names_diff(expected: Sequence[str], got: Any) -> str:
    """Say which feature names are missing or unexpected, at most five of each."""
    got_set = {str(k) for k in got}
    missing = [n for n in expected if n not in got_set]
    unexpected = sorted(got_set.difference(expected))
    parts = []
    if missing:
        parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        parts.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    return ", ".join(parts)


class ItemDecoder:
    """Decode and validate micro-batches of items against one feature schema.

    The schema is the number of features and, for dict features, their names. When
    not configured, the first good item fixes it: a list fixes the count, a dict fixes
    the names (sorted, which is the column order of ``X``).

    Parameters
    ----------
    n_features
        Expected number of features, or ``None`` to learn it from the first good item.
    feature_names
        Expected names for dict features, in column order; lists are then accepted
        positionally if they have this many values.
    max_bytes
        Messages larger than this are rejected (``too_large``) without being parsed.
    max_abs
        Finite features larger than this in absolute value are rejected (``out_of_range``):
        one reading of 1e308 would otherwise poison a running scaler for good (every later
        prediction becomes the prior). ``None`` accepts every finite value.

    Examples
    --------
    >>> dec = ItemDecoder()
    >>> batch, errors = dec.decode_batch(
    ...     [b'{"id": "a", "features": [1, 2]}', b'{"id": "b", "features": [1]}'], [None, None])
    >>> batch.ids, batch.X.tolist(), [(i, e.reason) for i, e in errors]
    (['a'], [[1.0, 2.0]], [(1, 'feature_count')])
    """

    def __init__(
        self,
        n_features: int | None = None,
        feature_names: Sequence[str] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_abs: float | None = DEFAULT_MAX_ABS,
    ) -> None:
        names: list[str] | None = None
        if feature_names is not None:
            names = list(feature_names)
            if not names or len(set(names)) != len(names):
                raise ValueError(f"feature_names must be non-empty and unique, got {names[:10]}")
            if n_features is not None and n_features != len(names):
                raise ValueError(
                    f"n_features={n_features} but {len(names)} feature_names were given: "
                    "give one or make them agree"
                )
            n_features = len(names)
        if n_features is not None and n_features < 1:
            raise ValueError(f"n_features must be at least 1, got {n_features}")
        self._n = n_features
        self._names = names
        self._names_set = frozenset(names) if names is not None else None
        self.max_bytes = max_bytes
        if max_abs is not None and not max_abs > 0:
            raise ValueError(f"max_abs must be > 0 (or None), got {max_abs!r}")
        self.max_abs = max_abs

    @property
    def n_features(self) -> int | None:
        """The number of features every item must have (``None`` until known)."""
        return self._n

    @property
    def feature_names(self) -> list[str] | None:
        """Names of dict features in column order (``None`` for list-only streams)."""
        return list(self._names) if self._names is not None else None

    def decode_batch(
        self,
        values: Sequence[bytes | None],
        content_types: Sequence[str | None],
        keys: Sequence[bytes | None] | None = None,
    ) -> tuple[ItemBatch, list[tuple[int, DecodeError]]]:
        """Decode a micro-batch; never raises for bad messages.

        Parameters
        ----------
        values
            Raw Kafka record values (``None`` for tombstones).
        content_types
            The ``content-type`` header of each record (``None`` when absent).
        keys
            The Kafka record keys (``None`` for none): the ids of raw float32 items.
            JSON and msgpack items carry their id in the value and ignore the key;
            without ``keys`` every raw float32 item is rejected as ``missing_id``.

        Returns
        -------
        batch
            The good items, in input order.
        errors
            ``(position, DecodeError)`` for every rejected message, in input order.

        Examples
        --------
        >>> import numpy as np
        >>> raw = np.array([[0.5, 2.0], [1.0, -1.0]], dtype="<f4")
        >>> batch, errors = ItemDecoder().decode_batch(
        ...     [raw[0].tobytes(), raw[1].tobytes(), b"\\x00"], ["application/x-float32"] * 3,
        ...     keys=[b"a", b"b", b"c"])
        >>> batch.ids, batch.X.tolist(), [(i, e.reason) for i, e in errors]
        (['a', 'b'], [[0.5, 2.0], [1.0, -1.0]], [(2, 'bad_float32')])
        """
        if len(values) != len(content_types):
            raise ValueError(
                f"got {len(values)} values but {len(content_types)} content types: "
                "pass one content type (or None) per value"
            )
        if keys is not None and len(keys) != len(values):
            raise ValueError(
                f"got {len(values)} values but {len(keys)} keys: pass one record key (or None) "
                "per value, or no keys"
            )
        if keys is None:
            keys = [None] * len(values)
        raw = _raw_float32(content_types)
        if self._n is None and self._names is None:
            self._fix_schema_by_majority(values, content_types, raw)
        uniform = self._uniform_float32(values, keys, raw) or self._uniform_json(values, content_types)
        if uniform is not None:
            ids, X = uniform
            index = list(range(len(ids)))
            metas = [_NO_META] * len(ids)
            errors: list[tuple[int, DecodeError]] = []
        else:
            ids, X, index, metas, errors = self._decode_each(values, content_types, keys, raw)
        if X.size:
            finite = np.isfinite(X).all(axis=1)
            in_range = finite if self.max_abs is None else (np.abs(X) <= self.max_abs).all(axis=1)
            if not in_range.all():
                bad = np.flatnonzero(~in_range).tolist()
                for r in bad:
                    error = (
                        self._non_finite(ids[r], X[r]) if not finite[r] else self._too_big(ids[r], X[r])
                    )
                    errors.append((index[r], error))
                finite = in_range
                keep = np.flatnonzero(finite).tolist()
                X = X[finite]
                ids = [ids[r] for r in keep]
                index = [index[r] for r in keep]
                metas = [metas[r] for r in keep]
                errors.sort(key=lambda pe: pe[0])
        return ItemBatch(ids=ids, X=X, index=index, meta=metas), errors

    def _uniform_float32(
        self, values: Sequence[bytes | None], keys: Sequence[bytes | None], raw: list[bool]
    ) -> tuple[list[str], np.ndarray] | None:
        """The fast path: every record raw float32 of the expected size with a good key.

        The whole batch is one ``np.frombuffer``; ``None`` sends the batch record by record.
        """
        n = self._n
        if not values or n is None or 4 * n > self.max_bytes or not all(raw):
            return None
        try:
            if set(map(len, values)) != {4 * n}:  # type: ignore[arg-type]
                return None
            ids = [key.decode() for key in keys]  # type: ignore[union-attr]
        except (TypeError, AttributeError, UnicodeDecodeError):  # None or a bad key
            return None
        if not all(ids) or max(map(len, ids)) > MAX_ID_LENGTH:
            return None
        X = np.frombuffer(b"".join(values), dtype="<f4")  # type: ignore[arg-type]
        return ids, X.reshape(len(ids), n).astype(np.float64)

    def _uniform_json(
        self, values: Sequence[bytes | None], content_types: Sequence[str | None]
    ) -> tuple[list[str], np.ndarray] | None:
        """The JSON fast path: every record a plain ``{"id", "features": [n numbers]}`` object
        without a content-type header. A few passes over the batch in C instead of a Python
        call per item; ``None`` sends the batch record by record (with all the checks)."""
        n = self._n
        if n is None or not values or any(content_types):
            return None
        try:
            if max(map(len, values)) > self.max_bytes:  # type: ignore[arg-type]
                return None
            objs = list(map(_orjson_loads, values))  # type: ignore[arg-type]
            if {type(o) for o in objs} != {dict} or set(map(len, objs)) != {2}:
                return None
            ids = [o["id"] for o in objs]
            rows = [o["features"] for o in objs]
        except (TypeError, ValueError, KeyError):  # a tombstone, bad JSON, other fields
            return None
        if (
            set(map(type, ids)) != {str} or not all(ids) or max(map(len, ids)) > MAX_ID_LENGTH
            or set(map(type, rows)) != {list} or set(map(len, rows)) != {n}
            or not _NUMBER_TYPES.issuperset(map(type, chain.from_iterable(rows)))
        ):
            return None
        return ids, np.array(rows, dtype=np.float64)

    def _decode_each(
        self,
        values: Sequence[bytes | None],
        content_types: Sequence[str | None],
        keys: Sequence[bytes | None],
        raw: list[bool],
    ) -> tuple[list[str], np.ndarray, list[int], list[ItemMeta], list[tuple[int, DecodeError]]]:
        """Record by record, yet raw float32 records of the expected size still share one read.

        So one odd message in a raw batch costs only itself, not the fast path of the others.
        """
        size = 4 * self._n if self._n is not None and 4 * self._n <= self.max_bytes else -1
        n = self._n
        ids: list[str] = []
        index: list[int] = []
        metas: list[ItemMeta] = []
        errors: list[tuple[int, DecodeError]] = []
        rows: list[list[Any]] = []  # decoded one by one, at output rows `row_at`
        row_at: list[int] = []
        block: list[bytes] = []  # raw values of the expected size, at output rows `block_at`
        block_at: list[int] = []
        records = zip(values, content_types, keys, raw, strict=True)
        for pos, (value, content_type, key, is_raw) in enumerate(records):
            try:
                if is_raw and value is not None and len(value) == size:
                    item_id, row, meta = _key_id(key), None, _NO_META
                elif is_raw:
                    item_id, row, meta = self._decode_raw(value, key)
                else:
                    plain = self._plain_json(value, content_type, n)
                    if plain is not None:
                        item_id, row = plain
                        meta = _NO_META
                    else:  # anything unusual: the full checks, with their error messages
                        item_id, row, meta = self._decode_one(value, content_type)
            except DecodeError as e:
                errors.append((pos, e))
                continue
            if row is None:
                block_at.append(len(ids))
                block.append(value)  # type: ignore[arg-type]
            else:
                row_at.append(len(ids))
                rows.append(row)
            ids.append(item_id)
            index.append(pos)
            metas.append(meta)
        if not block:
            return ids, self._stack(rows), index, metas, errors
        X = np.empty((len(ids), self._n), dtype=np.float64)  # type: ignore[arg-type]
        X[block_at] = np.frombuffer(b"".join(block), dtype="<f4").reshape(len(block), -1)
        if rows:
            X[row_at] = self._stack(rows)
        return ids, X, index, metas, errors

    def _fix_schema_by_majority(
        self, values: Sequence[bytes | None], content_types: Sequence[str | None], raw: list[bool]
    ) -> None:
        """Fix an unconfigured schema from the most common one in the first batch.

        Batches mix partitions in no set order: taking whichever item came first would let
        one malformed message at the start of a stream reject every good item after it.
        """
        votes: Counter[tuple[str, Any]] = Counter()
        for value, content_type, is_raw in zip(values, content_types, raw, strict=True):
            try:
                if is_raw:
                    feats = float32_row(value, self.max_bytes).tolist()
                else:
                    feats = _parse_object(value, content_type, self.max_bytes, "item").get("features")
            except DecodeError:
                continue
            row = list(feats.values()) if isinstance(feats, dict) else feats
            if (not isinstance(row, list) or not row
                    or not _NUMBER_TYPES.issuperset(map(type, row))
                    or not all(math.isfinite(v) for v in row)):
                continue
            if isinstance(feats, dict):
                if all(isinstance(k, str) and k for k in feats):
                    votes[("dict", tuple(sorted(feats)))] += 1
            else:
                votes[("list", len(row))] += 1
        if not votes:
            return
        (kind, schema), _ = votes.most_common(1)[0]  # ties: the first seen wins
        if kind == "list":
            self._n = schema
        else:
            self._names = list(schema)
            self._names_set = frozenset(self._names)
            self._n = len(self._names)

    def _stack(self, rows: list[list[Any]]) -> np.ndarray:
        if not rows:
            return np.empty((0, self._n or 0), dtype=np.float64)
        # Every value is an int or float and every row has length n, so this cannot fail
        # except for integers beyond the float range, which orjson/msgpack never produce.
        return np.array(rows, dtype=np.float64)

    def _too_big(self, item_id: str, row: np.ndarray) -> DecodeError:
        where = np.flatnonzero(np.abs(row) > self.max_abs).tolist()
        return DecodeError(
            "out_of_range",
            f"features beyond +-{self.max_abs:g} at positions {where[:5]}: rescale them, or raise "
            f"--max-abs-feature (item id={item_id})",
        )

    @staticmethod
    def _non_finite(item_id: str, row: np.ndarray) -> DecodeError:
        where = np.flatnonzero(~np.isfinite(row)).tolist()
        return DecodeError(
            "non_finite",
            f"features contain NaN or infinity at positions {where[:5]}: send finite numbers "
            f"(item id={item_id})",
        )

    def _plain_json(
        self, value: bytes | None, content_type: str | None, n: int | None
    ) -> tuple[str, list[Any]] | None:
        """The common item, checked in a few operations: JSON ``{"id", "features": [n numbers]}``
        and nothing else. ``None`` for anything else (it then takes the full path).

        The full path builds an :class:`ItemMeta` and walks every optional field; for a
        16-feature item that was three quarters of the decoding time.
        """
        if (
            n is None or value is None or len(value) > self.max_bytes
            or not (content_type is None or content_type == JSON)
        ):
            return None
        try:
            obj = _orjson_loads(value)
        except ValueError:
            return None
        if type(obj) is not dict or len(obj) != 2:
            return None
        item_id, row = obj.get("id"), obj.get("features")
        if (
            type(item_id) is str and 0 < len(item_id) <= MAX_ID_LENGTH
            and type(row) is list and len(row) == n and _NUMBER_TYPES.issuperset(map(type, row))
        ):
            return item_id, row
        return None

    def _decode_one(
        self, value: bytes | None, content_type: str | None
    ) -> tuple[str, list[Any], ItemMeta]:
        obj = _parse_object(value, content_type, self.max_bytes, "item")
        item_id = _parse_id(obj, "item")
        row = self._features(obj.get("features"), item_id)
        meta = ItemMeta(
            ts=_optional_float(obj, "ts", item_id),
            stream=_optional_str(obj, "stream", item_id, MAX_STREAM_LENGTH),
            payload_uri=_optional_str(obj, "payload_uri", item_id, MAX_PAYLOAD_URI_LENGTH),
            meta=self._meta(obj.get("meta"), item_id),
        )
        return item_id, row, meta

    def _decode_raw(self, value: bytes | None, key: bytes | None) -> tuple[str, list[Any], ItemMeta]:
        row = float32_row(value, self.max_bytes)
        item_id = _key_id(key)
        # Positional like a list: a raw item matches named features by count.
        return item_id, self._features(row.tolist(), item_id), _NO_META

    @staticmethod
    def _meta(value: Any, item_id: str) -> dict[str, Any] | None:
        if value is None or isinstance(value, dict):
            return value
        raise DecodeError(
            "bad_field", f"'meta' must be an object, got {_describe(value)}{_where(item_id)}"
        )

    def _features(self, feats: Any, item_id: str) -> list[Any]:
        if isinstance(feats, list):
            row = feats
        elif isinstance(feats, dict):
            row = self._dict_row(feats, item_id)
        elif feats is None:
            raise DecodeError(
                "bad_features",
                f"item has no 'features': send a list of numbers or an object name -> number"
                f"{_where(item_id)}",
            )
        else:
            raise DecodeError(
                "bad_features",
                f"'features' must be a list of numbers or an object name -> number, "
                f"got {_describe(feats)}{_where(item_id)}",
            )
        if not row:
            raise DecodeError("bad_features", f"'features' is empty{_where(item_id)}")
        if not _NUMBER_TYPES.issuperset(map(type, row)):
            bad = next(v for v in row if type(v) not in _NUMBER_TYPES)
            raise DecodeError(
                "bad_features",
                f"features must be numbers, got {_describe(bad)}{_where(item_id)}",
            )
        if self._n is None:
            # The first good item fixes the schema, so it must be fully valid first.
            if not all(math.isfinite(v) for v in row):
                raise self._non_finite(item_id, np.array(row, dtype=np.float64))
            if self.max_abs is not None and any(abs(v) > self.max_abs for v in row):
                raise self._too_big(item_id, np.array(row, dtype=np.float64))
            self._n = len(row)
        elif len(row) != self._n:
            raise DecodeError(
                "feature_count",
                f"features has {len(row)} values, the model expects {self._n}{_where(item_id)}",
            )
        return row

    def _dict_row(self, feats: dict, item_id: str) -> list[Any]:
        if self._names is None:
            if self._n is not None:
                raise DecodeError(
                    "bad_features",
                    f"features is an object but this stream has unnamed list features of "
                    f"length {self._n}: send a list, or configure feature_names{_where(item_id)}",
                )
            if not feats or not all(isinstance(k, str) for k in feats):
                raise DecodeError(
                    "bad_features",
                    f"feature names must be non-empty strings, got {_describe(list(feats))}"
                    f"{_where(item_id)}",
                )
            row = [feats[k] for k in sorted(feats)]
            if _NUMBER_TYPES.issuperset(map(type, row)) and all(math.isfinite(v) for v in row):
                # Fix the names only from a fully valid item; _features re-checks the values.
                self._names = sorted(feats)
                self._names_set = frozenset(self._names)
            return row
        if feats.keys() != self._names_set:
            raise DecodeError(
                "feature_count",
                f"features has {len(feats)} names, the model expects {len(self._names)}: "
                f"{_names_diff(self._names, feats)}{_where(item_id)}",
            )
        return [feats[k] for k in self._names]


def canonical_label(label: str | int) -> str | int:
    """The one form a class label has: a string that writes a decimal integer in canonical
    form (``"7"``, ``"-3"``; not ``"07"``, ``"+7"``, ``"7.0"``, non-ASCII digits) is that
    integer, so ``1`` and ``"1"`` are one class (their ``proba`` keys would collide on the wire);
    every other label is unchanged.

    >>> canonical_label("7"), canonical_label("-3"), canonical_label("07"), canonical_label("cat")
    (7, -3, '07', 'cat')
    """
    if type(label) is not str or not label or len(label) > 19 or not label.isascii():
        return label
    if not label.lstrip("-").isdigit():
        return label
    number = int(label)
    return number if str(number) == label else label


def decode_label(
    value: bytes | None, content_type: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> LabelMessage:
    """Decode and validate one label message.

    A label is a non-empty string (at most 256 characters) or an integer, in its canonical
    form (:func:`canonical_label`: ``"1"`` is the class ``1``). Booleans are rejected (``true``
    is not a class). An integral float such as ``1.0`` is
    accepted as the integer ``1``, because some JSON writers emit every number as a
    float; any other float is rejected.

    Raises
    ------
    DecodeError
        With reason ``bad_label`` for a bad label, or any of the format reasons.

    Examples
    --------
    >>> decode_label(b'{"id": "a", "label": 1.0, "annotator": "ann"}')
    LabelMessage(id='a', label=1, annotator='ann', ts=None)
    """
    obj = _parse_object(value, content_type, max_bytes, "label")
    item_id = _parse_id(obj, "label")
    if "label" not in obj:
        raise DecodeError("bad_label", f"label message has no 'label'{_where(item_id)}")
    label = obj["label"]
    kind = type(label)
    if kind is float and math.isfinite(label) and label.is_integer():
        label = int(label)
    elif kind is str:
        if not label or len(label) > MAX_LABEL_LENGTH:
            raise DecodeError(
                "bad_label",
                f"label must be a non-empty string of at most {MAX_LABEL_LENGTH} characters"
                f"{_where(item_id)}",
            )
    elif kind is not int:
        raise DecodeError(
            "bad_label",
            f"label must be a string or an integer class, got {_describe(label)}{_where(item_id)}",
        )
    return LabelMessage(
        id=item_id,
        label=canonical_label(label),
        annotator=_optional_str(obj, "annotator", item_id),
        ts=_optional_float(obj, "ts", item_id),
    )
