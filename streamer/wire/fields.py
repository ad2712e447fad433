"""The fields every message shares: limits, ids, optional fields, and error wording.

Items, labels and label requests (:mod:`streamer.label.requests`) all read an object with an
``id`` and optional fields; these helpers check each one and say, in the
:class:`~streamer.wire.formats.DecodeError`, what is wrong and with which item.
"""

from __future__ import annotations

import math
import reprlib
from typing import Any

from streamer.wire.formats import DecodeError, loads

MAX_ID_LENGTH = 256
MAX_LABEL_LENGTH = 256
# Label requests echo these fields: unbounded, a valid item just under the size limit made a
# label request over the producer's limit, which stopped the service.
MAX_STREAM_LENGTH = 256
MAX_PAYLOAD_URI_LENGTH = 65_536
NUMBER_TYPES = frozenset({int, float})  # bool is a distinct type, so it is excluded

# Bounded repr for error messages: a plain repr of a value nested 1000 deep (legal JSON)
# raises RecursionError, and of a 1 MB value costs a full copy.
_short_repr = reprlib.Repr()
_short_repr.maxlevel = 3
_short_repr.maxstring = _short_repr.maxother = _short_repr.maxlong = 60


def describe(value: Any) -> str:
    """A short description of a bad value for error messages."""
    text = _short_repr.repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def where(item_id: str | None) -> str:
    """The ``" (item id=...)"`` that ends an error message, or nothing without an id."""
    return f" (item id={item_id})" if item_id is not None else ""


def parse_object(value: bytes | None, content_type: str | None, max_bytes: int, what: str) -> dict:
    """Parse one message (JSON or msgpack) that must be an object."""
    obj = loads(value, content_type, max_bytes, f"{what}s")
    if not isinstance(obj, dict):
        raise DecodeError(
            "not_object", f'{what} must be an object like {{"id": ...}}, got {describe(obj)}'
        )
    return obj


def parse_id(obj: dict, what: str) -> str:
    """The ``id`` of a message: a non-empty string of at most :data:`MAX_ID_LENGTH`."""
    if "id" not in obj:
        raise DecodeError("missing_id", f"{what} has no 'id': every {what} needs a string id")
    item_id = obj["id"]
    if not isinstance(item_id, str) or not item_id or len(item_id) > MAX_ID_LENGTH:
        raise DecodeError(
            "bad_id",
            f"{what} id must be a non-empty string of at most {MAX_ID_LENGTH} characters, "
            f"got {describe(item_id)}",
        )
    return item_id


def optional_float(obj: dict, key: str, item_id: str) -> float | None:
    """``obj[key]`` as a float: absent or null is ``None``, else it must be a finite number."""
    value = obj.get(key)
    if value is None:
        return None
    if type(value) not in NUMBER_TYPES or not math.isfinite(value):
        raise DecodeError(
            "bad_field", f"'{key}' must be a finite number, got {describe(value)}{where(item_id)}"
        )
    return float(value)


def optional_str(obj: dict, key: str, item_id: str, max_length: int | None = None) -> str | None:
    """``obj[key]``: absent or null is ``None``, else a string of at most ``max_length``."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DecodeError(
            "bad_field", f"'{key}' must be a string, got {describe(value)}{where(item_id)}"
        )
    if max_length is not None and len(value) > max_length:
        raise DecodeError(
            "bad_field",
            f"'{key}' has {len(value)} characters, at most {max_length} are allowed"
            f"{where(item_id)}",
        )
    return value


def optional_object(obj: dict, key: str, item_id: str) -> dict[str, Any] | None:
    """``obj[key]``: absent or null is ``None``, else it must be an object."""
    value = obj.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise DecodeError(
        "bad_field", f"'{key}' must be an object, got {describe(value)}{where(item_id)}"
    )
