"""Label requests as the labelling edges read them, and answers turned back into labels.

The service writes label requests (:func:`streamer.wire.encode_label_request`); the
edges (the Label Studio bridge, the built-in page) read them from Kafka, where anything may
have been written. :func:`decode_label_request` validates one and says what is wrong, so a bad
request becomes a dead letter instead of a crash.

An annotation tool answers with text. :class:`ClassBook` turns that text back into the class the
model knows: ``proba`` keys are ``str(class)`` on the wire, so ``"1"`` may stand for the integer
class ``1``. The rule, the same in both edges: an answer equal to a class seen as a typed
``prediction`` is that class; else the labels decoder's canonical form
(:func:`streamer.wire.canonical_label`: ``"17"`` is the integer 17).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from streamer.wire import DEFAULT_MAX_BYTES, DecodeError, canonical_label
from streamer.wire.fields import (
    describe,
    optional_float,
    optional_str,
    parse_id,
    parse_object,
    where,
)

MAX_CLASSES_SHOWN = 1_000  # a request with more proba keys is refused (no page can show them)
_NUMBER = (int, float)


@dataclass(slots=True)
class LabelRequest:
    """One label request, validated."""

    id: str
    prediction: str | int | None
    proba: dict[str, float]
    model_version: int
    requested_at: float
    reason: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    features: list[float] | dict[str, float] | None = None
    payload_uri: str | None = None
    stream: str | None = None

    @property
    def margin(self) -> float:
        """Top probability minus the runner-up (1 when one class is certain; 0 = a coin flip).

        >>> LabelRequest("a", "x", {"x": 0.6, "y": 0.3, "z": 0.1}, 1, 0.0).margin
        0.3
        >>> LabelRequest("a", None, {}, 0, 0.0).margin
        0.0
        """
        top = sorted(self.proba.values(), reverse=True)[:2]
        if not top:
            return 0.0
        return round(top[0] - (top[1] if len(top) > 1 else 0.0), 12)

    @property
    def uncertainty(self) -> float:
        """1 - margin: the queue shows the largest first."""
        return 1.0 - self.margin


def decode_label_request(
    value: bytes | None, content_type: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> LabelRequest:
    """Decode and validate one label request.

    Raises
    ------
    DecodeError
        ``bad_request`` for a missing or ill-typed field, or any format reason (``bad_json``, ...).

    Examples
    --------
    >>> r = decode_label_request(b'{"id":"a","prediction":1,"proba":{"0":0.4,"1":0.6},'
    ...     b'"scores":{"margin":0.8},"reason":"uncertainty","model_version":3,"requested_at":1.5}')
    >>> r.id, r.prediction, r.proba, r.margin
    ('a', 1, {'0': 0.4, '1': 0.6}, 0.2)
    >>> decode_label_request(b'{"id":"a","proba":[0.4]}')
    Traceback (most recent call last):
    ...
    streamer.wire.formats.DecodeError: 'proba' must be an object of class -> probability, got list [0.4] (item id=a)
    """
    obj = parse_object(value, content_type, max_bytes, "label request")
    item_id = parse_id(obj, "label request")
    return LabelRequest(
        id=item_id,
        prediction=_prediction(obj.get("prediction"), item_id),
        proba=_proba(obj.get("proba"), item_id),
        model_version=_version(obj.get("model_version", 0), item_id),
        requested_at=optional_float(obj, "requested_at", item_id) or 0.0,
        reason=optional_str(obj, "reason", item_id, max_length=64) or "",
        scores=_scores(obj.get("scores"), item_id),
        features=_features(obj.get("features"), item_id),
        payload_uri=optional_str(obj, "payload_uri", item_id, max_length=4096),
        stream=optional_str(obj, "stream", item_id, max_length=256),
    )


def _bad(message: str, item_id: str) -> DecodeError:
    return DecodeError("bad_request", f"{message}{where(item_id)}")


def _prediction(value: Any, item_id: str) -> str | int | None:
    if value is None or (type(value) is str and value) or type(value) is int:
        return value
    raise _bad(f"'prediction' must be a class (string or integer) or null, got {describe(value)}",
               item_id)


def _finite(value: Any) -> bool:
    return type(value) in _NUMBER and math.isfinite(value)


def _proba(value: Any, item_id: str) -> dict[str, float]:
    if not isinstance(value, dict):
        raise _bad(f"'proba' must be an object of class -> probability, got {describe(value)}",
                   item_id)
    if len(value) > MAX_CLASSES_SHOWN:
        raise _bad(f"'proba' has {len(value):,} classes; at most {MAX_CLASSES_SHOWN:,} can be shown",
                   item_id)
    if not all(_finite(p) and 0.0 <= p <= 1.0 for p in value.values()):
        raise _bad("every 'proba' value must be a probability in [0, 1]", item_id)
    return {str(k): float(p) for k, p in value.items()}


def _version(value: Any, item_id: str) -> int:
    if type(value) is not int:
        raise _bad(f"'model_version' must be an integer, got {describe(value)}", item_id)
    return value


def _scores(value: Any, item_id: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(_finite(v) for v in value.values()):
        raise _bad("'scores' must be an object of name -> finite number", item_id)
    return {str(k): float(v) for k, v in value.items()}


def _features(value: Any, item_id: str) -> list[float] | dict[str, float] | None:
    if value is None:
        return None
    values = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    if values is None or not all(type(v) in _NUMBER for v in values):
        raise _bad("'features' must be a list of numbers or an object of name -> number", item_id)
    return value


class ClassBook:
    """The classes an edge has seen, and how an answer's text maps back to one.

    >>> book = ClassBook(["cat"])
    >>> book.see(LabelRequest("a", 1, {"0": 0.5, "1": 0.5}, 1, 0.0))
    ['0', '1']
    >>> book.label("1"), book.label("cat"), book.label("zebra"), book.names
    (1, 'cat', 'zebra', ['cat', '0', '1'])
    """

    def __init__(self, declared: list[str] | None = None) -> None:
        self._typed: dict[str, str | int] = {}  # text -> class as the model's predictions write it
        self.names: list[str] = []  # every class, in order of first sight (the tools' choices)
        for name in declared or []:
            self.add(name)

    def add(self, name: str) -> bool:
        """Offer ``name`` from now on (an answer typed as a class not listed); True if new."""
        if name in self.names:
            return False
        self.names.append(name)
        return True

    def see(self, request: LabelRequest) -> list[str]:
        """Learn the classes of ``request``; return those new to the book (in order)."""
        new = [name for name in request.proba if self.add(name)]
        if request.prediction is not None:
            text = str(request.prediction)
            self._typed[text] = request.prediction
            if self.add(text):
                new.append(text)
        return new

    def label(self, answer: str | int) -> str | int:
        """The class to send for an annotation tool's ``answer``."""
        if type(answer) is int:
            return answer
        text = str(answer)
        if text in self._typed:
            return self._typed[text]
        return canonical_label(text)


def features_table(features: list[float] | dict[str, float] | None) -> dict[str, float]:
    """Features as the name -> value object a Table shows (a list is named f0, f1, ...).

    >>> features_table([0.5, 2.0])
    {'f0': 0.5, 'f1': 2.0}
    """
    if features is None:
        return {}
    if isinstance(features, dict):
        return dict(features)
    return {f"f{i}": value for i, value in enumerate(features)}
