"""Labels from annotators: one message in, a :class:`LabelMessage` with a canonical class out."""

from __future__ import annotations

import math
from dataclasses import dataclass

from streamer.wire.fields import (
    MAX_LABEL_LENGTH,
    describe,
    optional_float,
    optional_str,
    parse_id,
    parse_object,
    where,
)
from streamer.wire.formats import DEFAULT_MAX_BYTES, DecodeError


@dataclass(slots=True)
class LabelMessage:
    """One label from an annotator."""

    id: str
    label: str | int
    annotator: str | None = None
    ts: float | None = None


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
    obj = parse_object(value, content_type, max_bytes, "label")
    item_id = parse_id(obj, "label")
    if "label" not in obj:
        raise DecodeError("bad_label", f"label message has no 'label'{where(item_id)}")
    label = obj["label"]
    kind = type(label)
    if kind is float and math.isfinite(label) and label.is_integer():
        label = int(label)
    elif kind is str:
        if not label or len(label) > MAX_LABEL_LENGTH:
            raise DecodeError(
                "bad_label",
                f"label must be a non-empty string of at most {MAX_LABEL_LENGTH} characters"
                f"{where(item_id)}",
            )
    elif kind is not int:
        raise DecodeError(
            "bad_label",
            f"label must be a string or an integer class, got {describe(label)}{where(item_id)}",
        )
    return LabelMessage(
        id=item_id,
        label=canonical_label(label),
        annotator=optional_str(obj, "annotator", item_id),
        ts=optional_float(obj, "ts", item_id),
    )
