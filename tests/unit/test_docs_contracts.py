"""docs/reference/contracts.md names exactly the fields the codecs write and read, optional ones
marked ``?``: a field added to a codec without the docs (or the reverse) fails here."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import orjson
import pytest

from streamer.kafka.produce import encode_predictions
from streamer.wire import (
    ItemDecoder,
    ItemMeta,
    decode_label,
    encode_dead_letter,
    encode_item,
    encode_label,
    encode_label_request,
    encode_prediction,
)
from streamer.wire.fields import DecodeError

CONTRACTS = Path(__file__).resolve().parents[2] / "docs" / "reference" / "contracts.md"
ROW = re.compile(r"^\| `(?P<topic>[\w-]+)` \| `(?P<message>\{.*\})`", re.M)
FIELD = re.compile(r'"(?P<name>\w+)"(?::\s*(?:\{[^}]*\}|\[[^\]]*\]|[^,"}]+?))?(?P<optional>\?)?(?=[,}])')


def documented() -> dict[str, tuple[set[str], set[str]]]:
    """topic -> (required fields, optional fields), from the contracts table."""
    table: dict[str, tuple[set[str], set[str]]] = {}
    for row in ROW.finditer(CONTRACTS.read_text()):
        required: set[str] = set()
        optional: set[str] = set()
        # only the top level: drop the insides of nested objects such as {class: p}
        message = row["message"][1:-1]
        for field in FIELD.finditer("{" + message + "}"):
            (optional if field["optional"] else required).add(field["name"])
        table[row["topic"]] = (required, optional)
    return table


def keys(encoded: bytes) -> set[str]:
    return set(orjson.loads(encoded))


def test_the_table_covers_every_topic() -> None:
    assert set(documented()) == {"items", "label-requests", "labels", "predictions", "dead-letters"}


def test_items_fields() -> None:
    required, optional = documented()["items"]
    assert keys(encode_item("a", [1.0, 2.0])) == required
    full = encode_item("a", [1.0, 2.0], ts=1.0, stream="cam", payload_uri="file:///x.png", meta={"k": 1})
    assert keys(full) == required | optional
    batch, errors = ItemDecoder().decode_batch([full], [None])
    assert not errors and batch.ids == ["a"]
    # what the decoder keeps of an item beyond id and features: the documented optional fields
    read = {f.name: getattr(batch.meta[0], f.name) for f in dataclasses.fields(ItemMeta)}
    assert set(read) == optional and all(v is not None for v in read.values())


def test_label_request_fields() -> None:
    required, optional = documented()["label-requests"]
    minimal = dict(prediction=1, proba={0: 0.4, 1: 0.6}, scores={"margin": 0.2}, reason="uncertainty",
                   model_version=3, requested_at=10.0)
    assert keys(encode_label_request("a", **minimal)) == required
    full = encode_label_request("a", **minimal, features=[1.0], payload_uri="file:///x.png", stream="cam",
                                model_leader="logistic")
    assert keys(full) == required | optional


def test_labels_fields() -> None:
    required, optional = documented()["labels"]
    assert keys(encode_label("a", "cat")) == required
    full = encode_label("a", "cat", annotator="ann", ts=1.0)
    assert keys(full) == required | optional
    assert decode_label(full, None, max_bytes=1000).label == "cat"


def test_predictions_fields_of_both_encoders() -> None:
    required, optional = documented()["predictions"]
    assert not optional
    assert keys(encode_prediction("a", "cat", 0.9, 4)) == required
    (batched,) = encode_predictions(["a"], ["cat"], np.array([0.9]), 4)
    assert keys(batched) == required


@pytest.mark.parametrize("raw", [b"plain text", b"\xff\xfe", b"x" * 100])
def test_dead_letter_fields(raw: bytes) -> None:
    required, optional = documented()["dead-letters"]
    encoded = encode_dead_letter("items", 0, 7, DecodeError("bad_json", "not JSON"), raw, max_raw_bytes=50)
    assert required <= keys(encoded) <= required | optional
