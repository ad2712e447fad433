"""Validation of incoming items: bytes in, one float64 matrix and their metadata out.

Decoding is batch-native: the service hands a whole micro-batch to
:meth:`ItemDecoder.decode_batch` and gets back one ``(B, d)`` float64 matrix of the
good items plus a list of ``(position, DecodeError)`` for the others, so one bad
message never costs the good ones around it. A batch of raw float32 items
(``application/x-float32``) all of the expected size is read with one ``np.frombuffer``
(the paths for each format are in :mod:`streamer.wire.item_paths`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamer.wire.fields import (
    MAX_PAYLOAD_URI_LENGTH,
    MAX_STREAM_LENGTH,
    NUMBER_TYPES,
    describe,
    optional_float,
    optional_object,
    optional_str,
    parse_id,
    parse_object,
    where,
)
from streamer.wire.formats import DEFAULT_MAX_ABS, DEFAULT_MAX_BYTES, DecodeError, float32_row
from streamer.wire.item_paths import (
    key_id,
    majority_schema,
    names_diff,
    non_finite_error,
    out_of_range_error,
    plain_json,
    raw_float32_flags,
    uniform_float32,
    uniform_json,
)


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
        raw = raw_float32_flags(content_types)
        if self._n is None and self._names is None:
            self._fix_schema_by_majority(values, content_types, raw)
        uniform = uniform_float32(values, keys, raw, self._n, self.max_bytes) or uniform_json(
            values, content_types, self._n, self.max_bytes
        )
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
                        non_finite_error(ids[r], X[r]) if not finite[r]
                        else out_of_range_error(ids[r], X[r], self.max_abs)
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
                    item_id, row, meta = key_id(key), None, _NO_META
                elif is_raw:
                    item_id, row, meta = self._decode_raw(value, key)
                else:
                    plain = plain_json(value, content_type, n, self.max_bytes)
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
        schema = majority_schema(values, content_types, raw, self.max_bytes)
        if schema is None:
            return
        kind, fixed = schema
        if kind == "list":
            self._n = fixed
        else:
            self._names = list(fixed)
            self._names_set = frozenset(self._names)
            self._n = len(self._names)

    def _stack(self, rows: list[list[Any]]) -> np.ndarray:
        if not rows:
            return np.empty((0, self._n or 0), dtype=np.float64)
        # Every value is an int or float and every row has length n, so this cannot fail
        # except for integers beyond the float range, which orjson/msgpack never produce.
        return np.array(rows, dtype=np.float64)

    def _decode_one(
        self, value: bytes | None, content_type: str | None
    ) -> tuple[str, list[Any], ItemMeta]:
        obj = parse_object(value, content_type, self.max_bytes, "item")
        item_id = parse_id(obj, "item")
        row = self._features(obj.get("features"), item_id)
        meta = ItemMeta(
            ts=optional_float(obj, "ts", item_id),
            stream=optional_str(obj, "stream", item_id, MAX_STREAM_LENGTH),
            payload_uri=optional_str(obj, "payload_uri", item_id, MAX_PAYLOAD_URI_LENGTH),
            meta=optional_object(obj, "meta", item_id),
        )
        return item_id, row, meta

    def _decode_raw(self, value: bytes | None, key: bytes | None) -> tuple[str, list[Any], ItemMeta]:
        row = float32_row(value, self.max_bytes)
        item_id = key_id(key)
        # Positional like a list: a raw item matches named features by count.
        return item_id, self._features(row.tolist(), item_id), _NO_META

    def _features(self, feats: Any, item_id: str) -> list[Any]:
        if isinstance(feats, list):
            row = feats
        elif isinstance(feats, dict):
            row = self._dict_row(feats, item_id)
        elif feats is None:
            raise DecodeError(
                "bad_features",
                f"item has no 'features': send a list of numbers or an object name -> number"
                f"{where(item_id)}",
            )
        else:
            raise DecodeError(
                "bad_features",
                f"'features' must be a list of numbers or an object name -> number, "
                f"got {describe(feats)}{where(item_id)}",
            )
        if not row:
            raise DecodeError("bad_features", f"'features' is empty{where(item_id)}")
        if not NUMBER_TYPES.issuperset(map(type, row)):
            bad = next(v for v in row if type(v) not in NUMBER_TYPES)
            raise DecodeError(
                "bad_features",
                f"features must be numbers, got {describe(bad)}{where(item_id)}",
            )
        if self._n is None:
            # The first good item fixes the schema, so it must be fully valid first.
            if not all(math.isfinite(v) for v in row):
                raise non_finite_error(item_id, np.array(row, dtype=np.float64))
            if self.max_abs is not None and any(abs(v) > self.max_abs for v in row):
                raise out_of_range_error(item_id, np.array(row, dtype=np.float64), self.max_abs)
            self._n = len(row)
        elif len(row) != self._n:
            raise DecodeError(
                "feature_count",
                f"features has {len(row)} values, the model expects {self._n}{where(item_id)}",
            )
        return row

    def _dict_row(self, feats: dict, item_id: str) -> list[Any]:
        if self._names is None:
            if self._n is not None:
                raise DecodeError(
                    "bad_features",
                    f"features is an object but this stream has unnamed list features of "
                    f"length {self._n}: send a list, or configure feature_names{where(item_id)}",
                )
            if not feats or not all(isinstance(k, str) for k in feats):
                raise DecodeError(
                    "bad_features",
                    f"feature names must be non-empty strings, got {describe(list(feats))}"
                    f"{where(item_id)}",
                )
            row = [feats[k] for k in sorted(feats)]
            if NUMBER_TYPES.issuperset(map(type, row)) and all(math.isfinite(v) for v in row):
                # Fix the names only from a fully valid item; _features re-checks the values.
                self._names = sorted(feats)
                self._names_set = frozenset(self._names)
            return row
        if feats.keys() != self._names_set:
            raise DecodeError(
                "feature_count",
                f"features has {len(feats)} names, the model expects {len(self._names)}: "
                f"{names_diff(self._names, feats)}{where(item_id)}",
            )
        return [feats[k] for k in self._names]
