"""Label requests as the labelling edges read them: decoding, class mapping, open offsets."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.label.offsets import OpenOffsets
from streamer.label.requests import ClassBook, LabelRequest, decode_label_request
from streamer.wire import DecodeError, encode_label_request

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_a_decode_error(raw: bytes) -> None:
    try:
        decode_label_request(raw)
    except DecodeError as exc:
        assert exc.reason and str(exc)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "prediction", "proba", "scores", "features", "model_version",
                                        "requested_at", "payload_uri", "reason", "stream"]),
                       json_values, max_size=10))
def test_any_json_object_decodes_or_raises_a_decode_error(fields: dict) -> None:
    try:
        request = decode_label_request(orjson.dumps(fields))
    except DecodeError as exc:
        assert exc.reason in {"bad_request", "bad_id", "missing_id", "bad_field"}, exc.reason
        return
    assert 0.0 <= request.uncertainty <= 1.0 + 1e-9


@settings(max_examples=200, deadline=None)
@given(classes=st.lists(st.integers(-5, 50) | st.text(min_size=1, max_size=5), min_size=1, max_size=6,
                        unique_by=str),
       data=st.data())
def test_what_the_service_writes_decodes_and_answers_map_back_to_its_classes(classes, data) -> None:
    proba = {c: 1.0 / len(classes) for c in classes}
    prediction = data.draw(st.sampled_from(classes))
    raw = encode_label_request("item-1", prediction=prediction, proba=proba, scores={"margin": 0.1},
                               reason="uncertainty", model_version=3, requested_at=5.0, features=[1.0, 2.0])
    request = decode_label_request(raw)
    assert request.prediction == prediction and set(request.proba) == {str(c) for c in classes}
    book = ClassBook()
    book.see(request)
    # the predicted class comes back typed exactly as the model wrote it
    assert book.label(str(prediction)) == prediction
    assert type(book.label(str(prediction))) is type(prediction)


@pytest.mark.parametrize(("answer", "expected"), [("7", 7), ("-2", -2), ("07", "07"), ("1.0", "1.0"),
                                                  ("cat", "cat"), ("١", "١")])
def test_an_unseen_answer_is_an_integer_only_in_canonical_decimal_form(answer, expected) -> None:
    assert ClassBook().label(answer) == expected


def test_a_string_class_that_looks_like_a_number_stays_a_string() -> None:
    book = ClassBook()
    book.see(LabelRequest("a", "1", {"1": 0.5, "2": 0.5}, 1, 0.0))
    assert book.label("1") == "1"  # the model predicted the string "1"
    assert book.label("2") == 2  # never predicted: the canonical rule


def test_declared_classes_come_first_and_new_ones_are_reported_once() -> None:
    book = ClassBook(["b", "a"])
    assert book.see(LabelRequest("x", "c", {"a": 0.2, "c": 0.8}, 1, 0.0)) == ["c"]
    assert book.see(LabelRequest("y", "c", {"a": 0.2, "c": 0.8}, 1, 0.0)) == []
    assert book.names == ["b", "a", "c"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=30, unique=True), st.randoms(use_true_random=False))
def test_the_committed_offset_never_passes_an_unfinished_request(offsets, rnd) -> None:
    tracker: OpenOffsets[str] = OpenOffsets()
    ordered = sorted(offsets)
    for offset in ordered:
        tracker.opened("p", offset)
    finished: set[int] = set()
    order = list(ordered)
    rnd.shuffle(order)
    committed = None
    for offset in order:
        tracker.finished("p", offset)
        finished.add(offset)
        moved = tracker.committable()
        if "p" in moved:
            assert committed is None or moved["p"] > committed, "commits only move forward"
            committed = moved["p"]
        # every offset below the commit is finished
        assert committed is None or all(o in finished for o in ordered if o < committed)
        assert tracker.open_count() == len(ordered) - len(finished)
    assert committed == ordered[-1] + 1
