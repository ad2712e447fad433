"""The ways a batch of items is read, format by format: the paths that
:class:`~streamer.wire.items.ItemDecoder` takes, as functions.

The fast paths take a whole batch in a few passes in C (:func:`uniform_float32`,
:func:`uniform_json`) or one common item in a few operations (:func:`plain_json`), and return
``None`` for anything they do not cover: the decoder then reads record by record, with every
check and its error message. The errors about feature values that every path shares are
worded here too.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
from orjson import loads as _orjson_loads

from streamer.wire.fields import MAX_ID_LENGTH, NUMBER_TYPES, describe, parse_object
from streamer.wire.formats import FLOAT32, JSON, DecodeError, float32_row, normalize_content_type


def key_id(key: bytes | None) -> str:
    """The id of a raw float32 item: its record key, UTF-8, with the same rules as JSON ids."""
    if not key:
        raise DecodeError(
            "missing_id",
            "raw float32 item has no record key: send the item id as the Kafka key (UTF-8)",
        )
    if not isinstance(key, bytes | bytearray | memoryview):
        raise DecodeError("bad_id", f"record key must be bytes, got {describe(key)}")
    try:
        item_id = bytes(key).decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(
            "bad_id", f"record key of a raw float32 item is not UTF-8: {describe(bytes(key))}"
        ) from None
    if len(item_id) > MAX_ID_LENGTH:
        raise DecodeError(
            "bad_id",
            f"record key has {len(item_id)} characters, an item id has at most {MAX_ID_LENGTH}",
        )
    return item_id


def raw_float32_flags(content_types: Sequence[str | None]) -> list[bool]:
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


def uniform_float32(
    values: Sequence[bytes | None],
    keys: Sequence[bytes | None],
    raw: list[bool],
    n: int | None,
    max_bytes: int,
) -> tuple[list[str], np.ndarray] | None:
    """The fast path: every record raw float32 of the expected size with a good key.

    The whole batch is one ``np.frombuffer``; ``None`` sends the batch record by record.
    """
    if not values or n is None or 4 * n > max_bytes or not all(raw):
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


def uniform_json(
    values: Sequence[bytes | None],
    content_types: Sequence[str | None],
    n: int | None,
    max_bytes: int,
) -> tuple[list[str], np.ndarray] | None:
    """The JSON fast path: every record a plain ``{"id", "features": [n numbers]}`` object
    without a content-type header. A few passes over the batch in C instead of a Python
    call per item; ``None`` sends the batch record by record (with all the checks)."""
    if n is None or not values or any(content_types):
        return None
    try:
        if max(map(len, values)) > max_bytes:  # type: ignore[arg-type]
            return None
        objs = list(map(_orjson_loads, values))  # type: ignore[arg-type]
        if set(map(type, objs)) != {dict} or set(map(len, objs)) != {2}:
            return None
        ids = list(map(_ID, objs))
        rows = list(map(_FEATURES, objs))
    except (TypeError, ValueError, KeyError):  # a tombstone, bad JSON, other fields
        return None
    if set(map(type, ids)) != {str} or not all(ids) or max(map(len, ids)) > MAX_ID_LENGTH:
        return None
    if (
        set(map(type, rows)) != {list} or set(map(len, rows)) != {n}
        or not NUMBER_TYPES.issuperset(map(type, chain.from_iterable(rows)))
    ):
        return None
    return ids, np.array(rows, dtype=np.float64)


_ID, _FEATURES = itemgetter("id"), itemgetter("features")


def plain_json(
    value: bytes | None, content_type: str | None, n: int | None, max_bytes: int
) -> tuple[str, list[Any]] | None:
    """The common item, checked in a few operations: JSON ``{"id", "features": [n numbers]}``
    and nothing else. ``None`` for anything else (it then takes the full path).

    The full path builds an :class:`~streamer.wire.items.ItemMeta` and walks every optional
    field; for a 16-feature item that was three quarters of the decoding time.
    """
    if (
        n is None or value is None or len(value) > max_bytes
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
        and type(row) is list and len(row) == n and NUMBER_TYPES.issuperset(map(type, row))
    ):
        return item_id, row
    return None


def majority_schema(
    values: Sequence[bytes | None],
    content_types: Sequence[str | None],
    raw: list[bool],
    max_bytes: int,
) -> tuple[str, Any] | None:
    """The most common schema among the good items of a batch: ``("list", n)`` or
    ``("dict", sorted names)``, or ``None`` when no item is good.
    """
    votes: Counter[tuple[str, Any]] = Counter()
    for value, content_type, is_raw in zip(values, content_types, raw, strict=True):
        try:
            if is_raw:
                feats = float32_row(value, max_bytes).tolist()
            else:
                feats = parse_object(value, content_type, max_bytes, "item").get("features")
        except DecodeError:
            continue
        row = list(feats.values()) if isinstance(feats, dict) else feats
        if (not isinstance(row, list) or not row
                or not NUMBER_TYPES.issuperset(map(type, row))
                or not all(math.isfinite(v) for v in row)):
            continue
        if isinstance(feats, dict):
            if all(isinstance(k, str) and k for k in feats):
                votes[("dict", tuple(sorted(feats)))] += 1
        else:
            votes[("list", len(row))] += 1
    if not votes:
        return None
    return votes.most_common(1)[0][0]  # ties: the first seen wins


def non_finite_error(item_id: str, row: np.ndarray) -> DecodeError:
    """The error for a row with NaN or infinity, naming the first positions."""
    at = np.flatnonzero(~np.isfinite(row)).tolist()
    return DecodeError(
        "non_finite",
        f"features contain NaN or infinity at positions {at[:5]}: send finite numbers "
        f"(item id={item_id})",
    )


def out_of_range_error(item_id: str, row: np.ndarray, max_abs: float) -> DecodeError:
    """The error for a row with values beyond ``max_abs``, naming the first positions."""
    at = np.flatnonzero(np.abs(row) > max_abs).tolist()
    return DecodeError(
        "out_of_range",
        f"features beyond +-{max_abs:g} at positions {at[:5]}: rescale them, or raise "
        f"--max-abs-feature (item id={item_id})",
    )


def names_diff(expected: Sequence[str], got: Any) -> str:
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
