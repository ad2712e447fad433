"""Bytes <-> Python values: content types, JSON (orjson), msgpack, raw float32, the DecodeError.

Every message on our topics is JSON unless its ``content-type`` header says
``application/msgpack``, or, for items only, ``application/x-float32`` (the value is
just the features as little-endian float32, the id is the record key). This module
knows formats, not schemas: what the values must contain is checked in
:mod:`streamer.wire.items` and :mod:`streamer.wire.labels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np
import orjson

JSON = "application/json"
MSGPACK = "application/msgpack"
# Items only: the value is d little-endian IEEE float32 numbers, nothing else; opt-in for speed.
FLOAT32 = "application/x-float32"
# Spellings seen in the wild for the same format; we accept them on input, write only the above.
_ALIASES = {
    "": JSON,
    JSON: JSON,
    "text/json": JSON,
    MSGPACK: MSGPACK,
    "application/x-msgpack": MSGPACK,
    "application/vnd.msgpack": MSGPACK,
    FLOAT32: FLOAT32,
    "application/vnd.streamer.float32": FLOAT32,
}
CONTENT_TYPE_HEADER = "content-type"
DEFAULT_MAX_BYTES = 1_048_576
# Finite features beyond this are refused: squares of larger values overflow float64 in running
# statistics (a scaler fed 1e200 predicts the prior for ever after).
DEFAULT_MAX_ABS = 1e15

_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY


class DecodeError(ValueError):
    """A message that cannot be used, with a short machine reason and a human message.

    Parameters
    ----------
    reason
        Short machine-readable cause, e.g. ``"bad_json"``, ``"feature_count"``; used as
        a metric label and in dead letters.
    message
        What was wrong and what to do, naming the item id when known.

    Examples
    --------
    >>> e = DecodeError("missing_id", "item has no 'id': every item needs a string id")
    >>> e.reason, str(e)
    ('missing_id', "item has no 'id': every item needs a string id")
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep DecodeError picklable (multiprocessing, hypothesis reports) despite the 2-arg init.
        return (type(self), (self.reason, str(self)))


def header_content_type(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """Return the ``content-type`` header of a Kafka record, or ``None`` when absent.

    Header names are compared case-insensitively; the first match wins.

    Examples
    --------
    >>> header_content_type([("trace", b"x"), ("Content-Type", b"application/msgpack")])
    'application/msgpack'
    >>> header_content_type(None) is None
    True
    """
    if not headers:
        return None
    for key, value in headers:
        if key.lower() == CONTENT_TYPE_HEADER:
            if value is None:
                return None
            if isinstance(value, bytes | bytearray | memoryview):
                return bytes(value).decode("utf-8", errors="replace")
            return str(value)
    return None


def normalize_content_type(content_type: str | None) -> str:
    """Map a header value to ``JSON``, ``MSGPACK`` or ``FLOAT32``; raise DecodeError otherwise.

    Parameters like ``; charset=utf-8`` and letter case are ignored; absent or empty
    means JSON.

    Examples
    --------
    >>> normalize_content_type("Application/JSON; charset=utf-8")
    'application/json'
    >>> normalize_content_type(None)
    'application/json'
    >>> normalize_content_type("application/vnd.streamer.float32")
    'application/x-float32'
    """
    if content_type is None:
        return JSON
    base = content_type.split(";", 1)[0].strip().lower()
    try:
        return _ALIASES[base]
    except KeyError:
        raise DecodeError(
            "bad_content_type",
            f"unsupported content-type {content_type[:100]!r}: send "
            f"'{JSON}' (or no header), '{MSGPACK}', or for items '{FLOAT32}'",
        ) from None


def check_size(value: bytes | None, max_bytes: int) -> bytes:
    """Return ``value`` if it is not a tombstone and not over ``max_bytes``; else raise.

    Raises
    ------
    DecodeError
        ``null_value`` (tombstone) or ``too_large``.
    """
    if value is None:
        raise DecodeError(
            "null_value", "message has no value (a tombstone): send a JSON or msgpack object"
        )
    if len(value) > max_bytes:
        # Checked before parsing so a huge message costs nothing.
        raise DecodeError(
            "too_large",
            f"message is {len(value)} bytes, the limit is {max_bytes}: "
            "send a payload_uri instead of large payloads, or raise the limit",
        )
    return value


def loads(
    value: bytes | None, content_type: str | None, max_bytes: int, what: str = "this message"
) -> Any:
    """Parse one JSON or msgpack message value into Python values, checking size and format first.

    Raises
    ------
    DecodeError
        ``null_value`` (tombstone), ``too_large``, ``bad_content_type`` (also for raw
        float32, which only items may use, through :func:`float32_row`), ``bad_json``
        or ``bad_msgpack``.
    """
    value = check_size(value, max_bytes)
    kind = normalize_content_type(content_type)
    if kind == JSON:
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as e:
            raise DecodeError("bad_json", f"message is not valid JSON: {e}") from None
    if kind == FLOAT32:
        raise DecodeError(
            "bad_content_type",
            f"content-type {content_type[:100]!r} is raw float32, which carries only the "
            f"features of items: send {what} as '{JSON}' or '{MSGPACK}'",
        )
    try:
        return msgpack.unpackb(value, raw=False, strict_map_key=False)
    except Exception as e:  # msgpack raises many types (ExtraData, FormatError, ValueError...)
        raise DecodeError("bad_msgpack", f"message is not valid msgpack: {e}") from None


def float32_row(value: bytes | None, max_bytes: int) -> np.ndarray:
    """Read a raw float32 value: the features as little-endian IEEE float32, nothing else.

    Raises
    ------
    DecodeError
        ``null_value``, ``too_large``, or ``bad_float32`` when the length is not a
        non-zero multiple of 4 bytes.

    Examples
    --------
    >>> float32_row(b"\\x00\\x00\\x80\\x3f\\x00\\x00\\x00\\xc0", max_bytes=100).tolist()
    [1.0, -2.0]
    """
    value = check_size(value, max_bytes)
    if not value or len(value) % 4:
        raise DecodeError(
            "bad_float32",
            f"raw float32 value is {len(value)} bytes, not a non-zero multiple of 4: send only "
            "the features as little-endian float32 (4 bytes each), the id as the record key",
        )
    return np.frombuffer(value, dtype="<f4")


def _plain(obj: Any) -> Any:
    """msgpack ``default`` hook: numpy values become plain Python values."""
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot serialize {type(obj).__name__} to msgpack")


def dumps(obj: Any, content_type: str | None = None) -> bytes:
    """Serialize a message as JSON (default) or msgpack; numpy values become plain values.

    Examples
    --------
    >>> dumps({"id": "a", "x": np.float32(0.5)})
    b'{"id":"a","x":0.5}'
    """
    kind = normalize_content_type(content_type)
    if kind == JSON:
        return orjson.dumps(obj, option=_JSON_OPTS)
    if kind == FLOAT32:
        raise ValueError(
            f"'{FLOAT32}' carries only the features of items (encode_item writes it): "
            f"write other messages as '{JSON}' or '{MSGPACK}'"
        )
    return msgpack.packb(obj, default=_plain, use_bin_type=True)
