"""Wire codecs: what is accepted, what is rejected and why, and what is written."""

from __future__ import annotations

import base64
import contextlib
import math

import msgpack
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.wire import (
    MSGPACK,
    DecodeError,
    ItemDecoder,
    canonical_label,
    content_type_headers,
    decode_label,
    encode_dead_letter,
    encode_item,
    encode_label,
    encode_label_request,
    encode_prediction,
    header_content_type,
)


def js(obj: object) -> bytes:
    return orjson.dumps(obj)


def mp(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def decode_one(value: bytes | None, content_type: str | None = None, **config: object):
    """Decode a batch of one; return (batch, reason or None)."""
    batch, errors = ItemDecoder(**config).decode_batch([value], [content_type])  # type: ignore[arg-type]
    return batch, (errors[0][1].reason if errors else None)


def reason_of(value: bytes | None, content_type: str | None = None, **config: object) -> str:
    _, reason = decode_one(value, content_type, **config)
    assert reason is not None, "expected the item to be rejected"
    return reason


def error_of(decoder: ItemDecoder, value: bytes) -> DecodeError:
    _, errors = decoder.decode_batch([value], [None])
    assert len(errors) == 1
    return errors[0][1]


# ---------------------------------------------------------------- items: accepted


def test_a_list_item_becomes_one_float64_row_with_its_meta() -> None:
    item = {
        "id": "cam3-1",
        "features": [1, 2.5, -3],
        "ts": 17.0,
        "stream": "cam3",
        "payload_uri": "s3://b/1.jpg",
        "meta": {"k": "v"},
    }
    batch, reason = decode_one(js(item))

    assert reason is None
    assert batch.ids == ["cam3-1"]
    assert batch.X.dtype == np.float64 and batch.X.tolist() == [[1.0, 2.5, -3.0]]
    assert batch.index == [0]
    meta = batch.meta[0]
    assert (meta.ts, meta.stream, meta.payload_uri, meta.meta) == (
        17.0,
        "cam3",
        "s3://b/1.jpg",
        {"k": "v"},
    )


def test_optional_fields_may_be_absent_or_null() -> None:
    batch, reason = decode_one(js({"id": "a", "features": [1.0], "ts": None, "meta": None}))

    assert reason is None
    assert batch.meta[0].ts is None and batch.meta[0].meta is None


def test_stream_and_payload_uri_may_be_as_long_as_their_limits() -> None:
    # Label requests echo both fields; their limits keep a request near the size of its item.
    item = {"id": "a", "features": [1.0], "stream": "s" * 256, "payload_uri": "u" * 65_536}

    batch, reason = decode_one(js(item))

    assert reason is None and batch.meta[0].stream == "s" * 256


def test_unknown_extra_fields_are_ignored_so_producers_can_extend_messages() -> None:
    assert decode_one(js({"id": "a", "features": [1.0], "camera_angle": 30}))[1] is None


def test_dict_features_are_ordered_by_sorted_name() -> None:
    decoder = ItemDecoder()
    batch, _ = decoder.decode_batch([js({"id": "a", "features": {"b": 2, "a": 1, "c": 3}})], [None])

    assert batch.X.tolist() == [[1.0, 2.0, 3.0]]
    assert decoder.feature_names == ["a", "b", "c"]
    assert decoder.n_features == 3


def test_configured_feature_names_fix_the_column_order() -> None:
    decoder = ItemDecoder(feature_names=["z", "a"])
    batch, errors = decoder.decode_batch(
        [js({"id": "a", "features": {"a": 1, "z": 2}}), js({"id": "b", "features": [5, 6]})],
        [None, None],
    )

    assert errors == []
    assert batch.X.tolist() == [[2.0, 1.0], [5.0, 6.0]]


def test_msgpack_items_are_decoded_when_the_header_says_so() -> None:
    batch, reason = decode_one(mp({"id": "a", "features": [1.0, 2.0]}), "application/msgpack")

    assert reason is None and batch.X.tolist() == [[1.0, 2.0]]


@pytest.mark.parametrize(
    "content_type", [None, "", "application/json", "Application/JSON; charset=utf-8"]
)
def test_json_is_the_default_and_header_case_and_parameters_are_ignored(
    content_type: str | None,
) -> None:
    assert decode_one(js({"id": "a", "features": [1.0]}), content_type)[1] is None


def test_an_empty_batch_gives_an_empty_matrix_of_the_configured_width() -> None:
    batch, errors = ItemDecoder(n_features=5).decode_batch([], [])

    assert batch.X.shape == (0, 5) and batch.ids == [] and errors == []


# ---------------------------------------------------------------- items: rejected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "bad_json"),
        (b"[1, 2]", "not_object"),
        (js({"features": [1.0]}), "missing_id"),
        (js({"id": "", "features": [1.0]}), "bad_id"),
        (js({"id": 12, "features": [1.0]}), "bad_id"),
        (js({"id": "x" * 257, "features": [1.0]}), "bad_id"),
        (js({"id": "a"}), "bad_features"),
        (js({"id": "a", "features": []}), "bad_features"),
        (js({"id": "a", "features": "1,2"}), "bad_features"),
        (js({"id": "a", "features": [1.0, "2"]}), "bad_features"),
        (js({"id": "a", "features": [1.0, True]}), "bad_features"),
        (js({"id": "a", "features": [1.0, None]}), "bad_features"),
        (js({"id": "a", "features": [[1.0]]}), "bad_features"),
        (js({"id": "a", "features": {}}), "bad_features"),
        (js({"id": "a", "features": {"x": "1"}}), "bad_features"),
        (js({"id": "a", "features": [1.0], "ts": "noon"}), "bad_field"),
        (js({"id": "a", "features": [1.0], "stream": 3}), "bad_field"),
        (js({"id": "a", "features": [1.0], "meta": [1]}), "bad_field"),
        (js({"id": "a", "features": [1.0], "stream": "s" * 257}), "bad_field"),
        (js({"id": "a", "features": [1.0], "payload_uri": "u" * 65_537}), "bad_field"),
    ],
)
def test_bad_items_are_rejected_with_their_reason(value: bytes, reason: str) -> None:
    assert reason_of(value) == reason


def test_a_null_value_tombstone_is_rejected() -> None:
    assert reason_of(None) == "null_value"


def test_an_unknown_content_type_is_rejected_and_named() -> None:
    _, errors = ItemDecoder().decode_batch([js({"id": "a", "features": [1]})], ["text/csv"])

    assert errors[0][1].reason == "bad_content_type"
    assert "text/csv" in str(errors[0][1])


def test_invalid_msgpack_is_rejected() -> None:
    assert reason_of(b"\xc1", MSGPACK) == "bad_msgpack"


@pytest.mark.parametrize(
    "value",
    [
        b"[" * 1023 + b"]" * 1023,
        b'{"id": "a", "features": [1.0], "ts": ' + b"[" * 1023 + b"]" * 1023 + b"}",
        b'{"id": ' + b"[" * 1023 + b"]" * 1023 + b', "features": [1.0]}',
    ],
)
def test_values_nested_as_deep_as_json_allows_are_rejected_not_raised(value: bytes) -> None:
    # A plain repr() of such a value in the error message raised RecursionError.
    _, errors = ItemDecoder().decode_batch([value], [None])
    with pytest.raises(DecodeError):
        decode_label(value)

    assert len(errors) == 1 and len(str(errors[0][1])) < 300


def test_a_message_over_max_bytes_is_rejected_before_parsing() -> None:
    # Not even valid JSON: the size check comes first.
    assert reason_of(b"{" * 2000, max_bytes=1000) == "too_large"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_features_are_rejected(bad: float) -> None:
    # JSON cannot carry NaN; msgpack can.
    assert reason_of(mp({"id": "a", "features": [1.0, bad]}), MSGPACK) == "non_finite"


def test_a_non_finite_item_does_not_fix_the_feature_count() -> None:
    decoder = ItemDecoder()
    batch, errors = decoder.decode_batch(
        [mp({"id": "a", "features": [math.nan]}), mp({"id": "b", "features": [1.0, 2.0]})],
        [MSGPACK, MSGPACK],
    )

    assert [i for i, _ in errors] == [0]
    assert batch.ids == ["b"] and decoder.n_features == 2


def test_the_first_good_item_fixes_the_feature_count() -> None:
    decoder = ItemDecoder()
    decoder.decode_batch([js({"id": "a", "features": [1.0] * 64})], [None])

    error = error_of(decoder, js({"id": "cam3-000123", "features": [1.0] * 63}))

    assert error.reason == "feature_count"
    assert str(error) == "features has 63 values, the model expects 64 (item id=cam3-000123)"


def test_a_configured_feature_count_is_enforced_from_the_first_item() -> None:
    assert reason_of(js({"id": "a", "features": [1.0, 2.0]}), n_features=3) == "feature_count"


def test_dict_items_with_other_names_are_rejected_naming_the_difference() -> None:
    decoder = ItemDecoder(feature_names=["a", "b"])

    error = error_of(decoder, js({"id": "x1", "features": {"a": 1, "c": 2}}))

    assert error.reason == "feature_count"
    assert "missing ['b']" in str(error) and "unexpected ['c']" in str(error)
    assert "item id=x1" in str(error)


def test_dict_items_on_a_stream_of_unnamed_lists_are_rejected() -> None:
    decoder = ItemDecoder(n_features=2)

    assert error_of(decoder, js({"id": "a", "features": {"a": 1, "b": 2}})).reason == (
        "bad_features"
    )


def test_one_bad_item_does_not_lose_the_good_items_around_it() -> None:
    values = [
        js({"id": "a", "features": [1.0, 2.0]}),
        b"garbage",
        js({"id": "c", "features": [3.0]}),
        mp({"id": "d", "features": [5.0, math.inf]}),
        js({"id": "e", "features": [4.0, 5.0]}),
    ]
    batch, errors = ItemDecoder().decode_batch(values, [None, None, None, MSGPACK, None])

    assert batch.ids == ["a", "e"]
    assert batch.index == [0, 4]
    assert batch.X.tolist() == [[1.0, 2.0], [4.0, 5.0]]
    assert [(i, e.reason) for i, e in errors] == [
        (1, "bad_json"),
        (2, "feature_count"),
        (3, "non_finite"),
    ]


def test_values_and_content_types_of_different_lengths_are_a_caller_error() -> None:
    with pytest.raises(ValueError, match="2 values but 1 content types"):
        ItemDecoder().decode_batch([b"{}", b"{}"], [None])


def test_inconsistent_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="n_features=3 but 2 feature_names"):
        ItemDecoder(n_features=3, feature_names=["a", "b"])


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize(("label", "expected"), [("cat", "cat"), (3, 3), (-1, -1), (2.0, 2)])
def test_labels_are_strings_or_integers_and_integral_floats_become_integers(
    label: object, expected: object
) -> None:
    message = decode_label(js({"id": "a", "label": label, "annotator": "ann", "ts": 5}))

    assert message.label == expected and type(message.label) is type(expected)
    assert (message.id, message.annotator, message.ts) == ("a", "ann", 5.0)


@pytest.mark.parametrize("label", [True, False, 0.5, None, "", "x" * 257, [1], {"a": 1}])
def test_other_labels_are_rejected_as_bad_label(label: object) -> None:
    with pytest.raises(DecodeError) as excinfo:
        decode_label(js({"id": "a", "label": label}))

    assert excinfo.value.reason == "bad_label"


def test_a_label_message_without_label_is_rejected() -> None:
    with pytest.raises(DecodeError, match="no 'label'"):
        decode_label(js({"id": "a"}))


def test_a_non_string_annotator_is_rejected() -> None:
    with pytest.raises(DecodeError) as excinfo:
        decode_label(js({"id": "a", "label": 1, "annotator": 7}))

    assert excinfo.value.reason == "bad_field"


@pytest.mark.parametrize(
    ("value", "content_type", "reason"),
    [
        (None, None, "null_value"),
        (b"nope", None, "bad_json"),
        (js({"label": 1}), None, "missing_id"),
        (js({"id": "a", "label": 1}), "text/plain", "bad_content_type"),
        (js({"id": "a", "label": "x" * 100}), None, "too_large"),
    ],
)
def test_bad_label_messages_name_their_reason(
    value: bytes | None, content_type: str | None, reason: str
) -> None:
    with pytest.raises(DecodeError) as excinfo:
        decode_label(value, content_type, max_bytes=64)

    assert excinfo.value.reason == reason


# ---------------------------------------------------------------- encoders


def test_a_label_request_has_string_class_keys_and_plain_numbers() -> None:
    value = encode_label_request(
        "a",
        prediction=np.int64(1),
        proba={np.int64(0): np.float32(0.25), 1: 0.75},
        scores={"margin": np.float64(0.5)},
        reason="uncertainty",
        model_version=np.int64(7),
        requested_at=123.5,
        features=np.array([1.0, 2.0]),
        stream="cam3",
    )

    assert orjson.loads(value) == {
        "id": "a",
        "prediction": 1,
        "proba": {"0": 0.25, "1": 0.75},
        "scores": {"margin": 0.5},
        "reason": "uncertainty",
        "model_version": 7,
        "requested_at": 123.5,
        "features": [1.0, 2.0],
        "stream": "cam3",
    }


def test_a_prediction_before_any_class_is_known_is_null() -> None:
    assert orjson.loads(encode_prediction("a", None, 0.0, 0)) == {
        "id": "a",
        "prediction": None,
        "confidence": 0.0,
        "model_version": 0,
    }


def test_msgpack_encoding_is_announced_by_the_headers_and_round_trips() -> None:
    value = encode_prediction("a", np.str_("cat"), np.float64(0.9), 1, content_type=MSGPACK)

    assert header_content_type(content_type_headers(MSGPACK)) == MSGPACK
    assert msgpack.unpackb(value) == {
        "id": "a",
        "prediction": "cat",
        "confidence": 0.9,
        "model_version": 1,
    }


def test_a_dead_letter_keeps_utf8_raw_bytes_as_text_and_the_reason() -> None:
    error = DecodeError("bad_json", "message is not valid JSON")

    letter = orjson.loads(encode_dead_letter("items", 2, 40, error, b"{oops"))

    assert letter == {
        "source_topic": "items",
        "partition": 2,
        "offset": 40,
        "error": "message is not valid JSON",
        "raw": "{oops",
        "reason": "bad_json",
    }


def test_a_dead_letter_keeps_binary_raw_bytes_as_base64() -> None:
    letter = orjson.loads(encode_dead_letter("items", 0, 1, "x", b"\x80\x81"))

    assert letter["raw_encoding"] == "base64"
    assert base64.b64decode(letter["raw"]) == b"\x80\x81"


def test_a_dead_letter_truncates_large_raw_values_without_splitting_a_character() -> None:
    raw = "é".encode() * 10  # two bytes per character

    letter = orjson.loads(encode_dead_letter("items", 0, 1, "x", raw, max_raw_bytes=5))

    assert letter["raw"] == "éé" and letter["raw_truncated"] is True


def test_a_dead_letter_of_a_tombstone_has_null_raw() -> None:
    assert orjson.loads(encode_dead_letter("labels", 0, 1, "x", None))["raw"] is None


def test_header_content_type_is_found_case_insensitively() -> None:
    headers = [("X-Trace", b"1"), ("Content-Type", b"application/msgpack")]

    assert header_content_type(headers) == MSGPACK
    assert header_content_type([]) is None


# ---------------------------------------------------------------- properties

ints = st.integers(-(2**63), 2**64 - 1)  # what JSON (orjson) and msgpack can carry
json_values = st.recursive(
    st.none()
    | st.booleans()
    | ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
msgpack_values = st.recursive(
    st.none() | st.booleans() | ints | st.floats() | st.text(max_size=20) | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=10) | ints | st.binary(max_size=5), children, max_size=5)
    ),
    max_leaves=20,
)
item_like = st.fixed_dictionaries(
    {"id": st.one_of(st.text(max_size=5), ints, st.none())},
    optional={
        "features": st.one_of(
            st.lists(st.floats() | ints | st.booleans() | st.text(max_size=2), max_size=4),
            st.dictionaries(st.sampled_from("abcd"), st.floats() | ints, max_size=4),
            json_values,
        ),
        "ts": json_values,
        "stream": json_values,
        "meta": json_values,
        "label": json_values,
        "annotator": json_values,
    },
)
content_types = st.sampled_from([None, "application/json", MSGPACK, "text/plain"])
# derandomize: the same examples on every run and machine, so CI failures reproduce.
fast = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def encode_any(obj: object, content_type: str | None) -> bytes:
    if content_type == MSGPACK:
        return mp(obj)
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


@fast
@given(st.lists(st.binary(max_size=60) | st.none(), max_size=6), st.data())
def test_arbitrary_bytes_only_ever_give_decode_errors(values: list, data: st.DataObject) -> None:
    cts = [data.draw(content_types) for _ in values]
    batch, errors = ItemDecoder().decode_batch(values, cts)

    assert len(batch) + len(errors) == len(values)
    for value, ct in zip(values, cts, strict=True):
        with contextlib.suppress(DecodeError):
            decode_label(value, ct)


@fast
@given(st.lists(st.tuples(json_values | item_like, content_types), max_size=6))
def test_arbitrary_values_only_ever_give_decode_errors(pairs: list) -> None:
    values = [encode_any(obj, ct) for obj, ct in pairs]
    cts = [ct for _, ct in pairs]
    batch, errors = ItemDecoder().decode_batch(values, cts)

    assert sorted(batch.index + [i for i, _ in errors]) == list(range(len(values)))
    assert batch.X.shape[0] == len(batch.ids) == len(batch.meta)
    assert np.isfinite(batch.X).all()
    for value, ct in pairs:
        with contextlib.suppress(DecodeError):
            decode_label(encode_any(value, ct), ct)


@fast
@given(st.lists(msgpack_values | item_like, max_size=6))
def test_arbitrary_msgpack_values_only_ever_give_decode_errors(objs: list) -> None:
    values = [mp(obj) for obj in objs]
    batch, errors = ItemDecoder().decode_batch(values, [MSGPACK] * len(values))

    assert len(batch) + len(errors) == len(values)
    for value in values:
        with contextlib.suppress(DecodeError):
            decode_label(value, MSGPACK)


finite = st.floats(min_value=-1e15, max_value=1e15)  # within the default --max-abs-feature


@fast
@given(
    good=st.lists(st.lists(finite, min_size=3, max_size=3), min_size=1, max_size=5),
    bad=st.lists(json_values | item_like, max_size=5),
    seed=st.integers(0, 2**16),
)
def test_bad_items_never_lose_the_good_ones_around_them(
    good: list[list[float]], bad: list, seed: int
) -> None:
    decoder = ItemDecoder(n_features=3)
    good_values = [js({"id": f"good-{k}", "features": row}) for k, row in enumerate(good)]
    bad_values = [encode_any(obj, None) for obj in bad]
    values = good_values + bad_values
    order = np.random.default_rng(seed).permutation(len(values)).tolist()
    shuffled = [values[i] for i in order]

    batch, _ = decoder.decode_batch(shuffled, [None] * len(shuffled))

    kept = dict(zip(batch.ids, batch.X.tolist(), strict=True))
    for k, row in enumerate(good):
        assert kept[f"good-{k}"] == row


@fast
@given(
    item_id=st.text(min_size=1, max_size=256),
    rows=st.lists(finite, min_size=1, max_size=8),
    stream=st.none() | st.text(max_size=10),
    ts=st.none() | finite,
    content_type=st.sampled_from([None, MSGPACK]),
)
def test_items_round_trip_through_encode_and_decode(
    item_id: str, rows: list[float], stream: str | None, ts: float | None, content_type: str | None
) -> None:
    value = encode_item(item_id, rows, stream=stream, ts=ts, content_type=content_type)

    batch, errors = ItemDecoder().decode_batch([value], [content_type])

    assert errors == []
    assert batch.ids == [item_id]
    assert batch.X[0].tolist() == rows
    assert (batch.meta[0].stream, batch.meta[0].ts) == (stream, ts)


@fast
@given(
    names=st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=6, unique=True),
    data=st.data(),
)
def test_dict_items_round_trip_in_sorted_name_order(names: list[str], data: st.DataObject) -> None:
    feats = {name: data.draw(finite) for name in names}
    decoder = ItemDecoder()

    batch, errors = decoder.decode_batch([encode_item("a", feats)], [None])

    assert errors == []
    assert batch.X[0].tolist() == [feats[n] for n in sorted(names)]


@fast
@given(
    item_id=st.text(min_size=1, max_size=256),
    label=st.text(min_size=1, max_size=256) | st.integers(-(2**63), 2**63 - 1),
    annotator=st.none() | st.text(max_size=10),
    ts=st.none() | finite,
    content_type=st.sampled_from([None, MSGPACK]),
)
def test_labels_round_trip_through_encode_and_decode(
    item_id: str,
    label: str | int,
    annotator: str | None,
    ts: float | None,
    content_type: str | None,
) -> None:
    value = encode_label(item_id, label, annotator=annotator, ts=ts, content_type=content_type)

    message = decode_label(value, content_type)

    assert (message.id, message.label, message.annotator, message.ts) == (
        item_id,
        canonical_label(label),  # "7" is the class 7: one form per class
        annotator,
        ts,
    )


@fast
@given(raw=st.binary(max_size=300) | st.none(), limit=st.integers(1, 400))
def test_dead_letters_of_arbitrary_bytes_are_valid_json_that_keeps_the_bytes(
    raw: bytes | None, limit: int
) -> None:
    letter = orjson.loads(encode_dead_letter("items", 0, 0, "boom", raw, max_raw_bytes=limit))

    if raw is None:
        assert letter["raw"] is None
        return
    kept = (
        base64.b64decode(letter["raw"])
        if letter.get("raw_encoding") == "base64"
        else letter["raw"].encode()
    )
    assert raw.startswith(kept)
    assert letter.get("raw_truncated", False) == (len(raw) > limit)
    if len(raw) <= limit:
        assert kept == raw


def test_one_odd_item_at_the_start_of_a_stream_does_not_fix_the_feature_count() -> None:
    # A micro-batch mixes partitions in no set order: the majority decides the schema.
    decoder = ItemDecoder()
    values = [b'{"id": "odd", "features": [1.0, 2.0]}'] + [
        f'{{"id": "ok{i}", "features": [1.0, 2.0, 3.0]}}'.encode() for i in range(5)
    ]
    batch, errors = decoder.decode_batch(values, [None] * len(values))
    assert decoder.n_features == 3
    assert batch.ids == [f"ok{i}" for i in range(5)]
    assert [(i, e.reason) for i, e in errors] == [(0, "feature_count")]


def test_the_majority_of_named_features_fixes_the_names() -> None:
    decoder = ItemDecoder()
    values = [b'{"id": "odd", "features": {"a": 1}}'] + [
        f'{{"id": "ok{i}", "features": {{"b": 1, "a": 2}}}}'.encode() for i in range(3)
    ]
    batch, errors = decoder.decode_batch(values, [None] * len(values))
    assert decoder.feature_names == ["a", "b"]
    assert batch.X.tolist() == [[2.0, 1.0]] * 3 and [i for i, _ in errors] == [0]


def test_finite_features_beyond_max_abs_are_out_of_range() -> None:
    from streamer.wire import ItemDecoder

    dec = ItemDecoder(n_features=2)
    batch, errors = dec.decode_batch(
        [b'{"id": "a", "features": [1, 2]}', b'{"id": "b", "features": [1e308, 2]}',
         b'{"id": "c", "features": [-1e16, 2]}', b'{"id": "d", "features": [1e15, -1e15]}'],
        [None] * 4,
    )

    assert batch.ids == ["a", "d"]
    assert [(i, e.reason) for i, e in errors] == [(1, "out_of_range"), (2, "out_of_range")]
    assert "--max-abs-feature" in str(errors[0][1])


def test_max_abs_none_accepts_every_finite_value() -> None:
    from streamer.wire import ItemDecoder

    batch, errors = ItemDecoder(max_abs=None).decode_batch([b'{"id": "a", "features": [1e308]}'], [None])

    assert batch.ids == ["a"] and not errors


def test_the_first_item_cannot_fix_the_schema_with_an_out_of_range_value() -> None:
    from streamer.wire import ItemDecoder

    dec = ItemDecoder(max_abs=10.0)
    batch, errors = dec.decode_batch([b'{"id": "a", "features": [11.0, 1.0]}'], [None])

    assert not batch.ids and errors[0][1].reason == "out_of_range"
