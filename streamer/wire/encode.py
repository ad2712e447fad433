"""Encoders of what the service and the feeders produce.

Encoders accept numpy values and write plain JSON
(or msgpack when asked); class labels used as ``proba`` keys become strings because
JSON object keys must be strings. Items may also be raw float32 (:data:`FLOAT32`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from streamer.wire.formats import (
    CONTENT_TYPE_HEADER,
    FLOAT32,
    JSON,
    DecodeError,
    dumps,
    normalize_content_type,
)

DEFAULT_MAX_RAW_BYTES = 65_536  # enough to debug a message, small enough for any broker limit


def content_type_headers(content_type: str | None) -> list[tuple[str, bytes]]:
    """Kafka headers announcing the format of a value written with ``content_type``.

    Examples
    --------
    >>> content_type_headers("application/msgpack")
    [('content-type', b'application/msgpack')]
    """
    return [(CONTENT_TYPE_HEADER, normalize_content_type(content_type).encode())]


def _features(features: Sequence[float] | Mapping[str, float] | np.ndarray) -> Any:
    if isinstance(features, np.ndarray):
        return features.astype(np.float64, copy=False).tolist()
    if isinstance(features, Mapping):
        return {str(k): float(v) for k, v in features.items()}
    return [float(v) for v in features]


def _plain_label(label: Any) -> Any:
    """numpy scalars (np.int64, np.str_) become int/str so every writer agrees."""
    return label.item() if isinstance(label, np.generic) else label


def _put_optional(msg: dict[str, Any], **fields: Any) -> dict[str, Any]:
    # Absent optional fields are left out rather than written as null: smaller messages.
    msg.update({k: v for k, v in fields.items() if v is not None})
    return msg


def encode_item(
    id: str,  # named like the wire field
    features: Sequence[float] | Mapping[str, float] | np.ndarray,
    *,
    ts: float | None = None,
    stream: str | None = None,
    payload_uri: str | None = None,
    meta: Mapping[str, Any] | None = None,
    content_type: str | None = None,
) -> bytes:
    """Encode an item for the items topic (feeders, simulators, tests).

    With ``content_type=FLOAT32`` the value is only the features as little-endian
    float32 (precision drops to float32); send ``id`` as the record key.

    Examples
    --------
    >>> encode_item("cam3-1", np.array([0.5, 1.0]), stream="cam3")
    b'{"id":"cam3-1","features":[0.5,1.0],"stream":"cam3"}'
    >>> encode_item("cam3-1", [0.5, 1.0], content_type=FLOAT32)
    b'\\x00\\x00\\x00?\\x00\\x00\\x80?'
    """
    if content_type is not None and normalize_content_type(content_type) == FLOAT32:
        return _float32_features(
            features, ts=ts, stream=stream, payload_uri=payload_uri, meta=meta or None
        )
    msg = {"id": id, "features": _features(features)}
    _put_optional(
        msg, ts=ts, stream=stream, payload_uri=payload_uri, meta=dict(meta) if meta else None
    )
    return dumps(msg, content_type)


def _float32_features(
    features: Sequence[float] | Mapping[str, float] | np.ndarray, **optional: Any
) -> bytes:
    given = [name for name, value in optional.items() if value is not None]
    if given or isinstance(features, Mapping):
        what = f"{', '.join(given)} given" if given else "features are named (a dict)"
        raise ValueError(
            f"raw float32 carries only the features, as a list, and the id goes in the record "
            f"key ({what}): send {FLOAT32} items without them, or use JSON or msgpack"
        )
    values = np.asarray(features, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"features must be one row of numbers, got shape {values.shape}")
    with np.errstate(over="ignore"):
        row = values.astype("<f4")
    overflow = np.flatnonzero(np.isfinite(values) & ~np.isfinite(row)).tolist()
    if overflow:
        raise ValueError(
            f"features at positions {overflow[:5]} are beyond the float32 range (3.4e38): "
            "rescale them, or send JSON or msgpack"
        )
    return row.tobytes()


def encode_label(
    id: str,  # named like the wire field
    label: str | int,
    *,
    annotator: str | None = None,
    ts: float | None = None,
    content_type: str | None = None,
) -> bytes:
    """Encode a label for the labels topic (annotator bridges, simulators, tests).

    Examples
    --------
    >>> encode_label("cam3-1", np.int64(2), annotator="sim")
    b'{"id":"cam3-1","label":2,"annotator":"sim"}'
    """
    msg = {"id": id, "label": _plain_label(label)}
    return dumps(_put_optional(msg, annotator=annotator, ts=ts), content_type)


def encode_label_request(
    id: str,  # named like the wire field
    *,
    prediction: Any,
    proba: Mapping[Any, float],
    scores: Mapping[str, float],
    reason: str,
    model_version: int,
    requested_at: float,
    features: Sequence[float] | Mapping[str, float] | np.ndarray | None = None,
    payload_uri: str | None = None,
    stream: str | None = None,
    model_leader: str | None = None,
    content_type: str | None = None,
) -> bytes:
    """Encode a label request: enough for an annotation tool to show, pre-annotate and rank.

    ``prediction`` is ``null`` while the model knows no class. ``model_leader`` (optional) is
    the member of an ``auto`` model that made the prediction.

    Examples
    --------
    >>> encode_label_request("a", prediction=np.int64(1), proba={0: 0.4, np.int64(1): 0.6},
    ...     scores={"margin": 0.2}, reason="uncertainty", model_version=3, requested_at=10.0)
    b'{"id":"a","prediction":1,"proba":{"0":0.4,"1":0.6},"scores":{"margin":0.2},"reason":"uncertainty","model_version":3,"requested_at":10.0}'
    """
    msg: dict[str, Any] = {
        "id": id,
        "prediction": _plain_label(prediction),
        "proba": {str(_plain_label(c)): float(p) for c, p in proba.items()},
        "scores": {str(k): float(v) for k, v in scores.items()},
        "reason": reason,
        "model_version": int(model_version),
        "requested_at": float(requested_at),
    }
    _put_optional(
        msg,
        features=_features(features) if features is not None else None,
        payload_uri=payload_uri,
        stream=stream,
        model_leader=model_leader,
    )
    return dumps(msg, content_type)


def encode_prediction(
    id: str,  # named like the wire field
    prediction: Any,
    confidence: float,
    model_version: int,
    *,
    content_type: str | None = None,
) -> bytes:
    """Encode one prediction for the optional predictions topic.

    Examples
    --------
    >>> encode_prediction("a", "cat", np.float64(0.9), 4)
    b'{"id":"a","prediction":"cat","confidence":0.9,"model_version":4}'
    """
    msg = {
        "id": id,
        "prediction": _plain_label(prediction),
        "confidence": float(confidence),
        "model_version": int(model_version),
    }
    return dumps(msg, content_type)


def encode_dead_letter(
    source_topic: str,
    partition: int,
    offset: int,
    error: str | BaseException,
    raw: bytes | None,
    *,
    reason: str | None = None,
    max_raw_bytes: int = DEFAULT_MAX_RAW_BYTES,
) -> bytes:
    """Encode a dead letter (always JSON, for people to read) keeping the original bytes.

    ``raw`` is the original value as a UTF-8 string when it decodes, else base64 with
    ``"raw_encoding": "base64"``; values over ``max_raw_bytes`` are cut and flagged
    ``"raw_truncated": true``. ``reason`` (a short machine reason, taken from ``error``
    when it is a :class:`DecodeError`) is added as ``"reason"``.

    Examples
    --------
    >>> encode_dead_letter("items", 0, 7, DecodeError("bad_json", "not JSON"), b"\\xff")
    b'{"source_topic":"items","partition":0,"offset":7,"error":"not JSON","raw":"/w==","raw_encoding":"base64","reason":"bad_json"}'
    """
    msg: dict[str, Any] = {
        "source_topic": source_topic,
        "partition": int(partition),
        "offset": int(offset),
        "error": str(error),
        "raw": None,
    }
    if raw is not None:
        data = bytes(raw)
        truncated = len(data) > max_raw_bytes
        if truncated:
            data = data[:max_raw_bytes]
        text = _utf8_or_none(data, truncated)
        if text is not None:
            msg["raw"] = text
        else:
            msg["raw"] = base64.b64encode(data).decode("ascii")
            msg["raw_encoding"] = "base64"
        if truncated:
            msg["raw_truncated"] = True
    if reason is None and isinstance(error, DecodeError):
        reason = error.reason
    if reason is not None:
        msg["reason"] = reason
    return dumps(msg, JSON)


def _utf8_or_none(data: bytes, truncated: bool) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        # Cutting may split a multi-byte character at the end: drop that partial character.
        if truncated and e.start >= len(data) - 3 and e.reason == "unexpected end of data":
            return data[: e.start].decode("utf-8")
        return None
