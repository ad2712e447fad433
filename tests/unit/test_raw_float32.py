"""Raw float32 items (``application/x-float32``): the value is the features, the key is the id."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from streamer.cli import _produce, build_parser
from streamer.replay import LabelledStream
from streamer.wire import (
    FLOAT32,
    JSON,
    MAX_ID_LENGTH,
    DecodeError,
    ItemDecoder,
    content_type_headers,
    decode_label,
    encode_item,
    encode_label,
    normalize_content_type,
)

D = 4


def f32(*rows: list[float]) -> list[bytes]:
    return [np.asarray(row, dtype="<f4").tobytes() for row in rows]


def decode(values: list, keys: list | None, content_types: list | None = None, **config: object):
    decoder = ItemDecoder(**({"n_features": D} | config))  # type: ignore[arg-type]
    return decoder.decode_batch(values, content_types or [FLOAT32] * len(values), keys)


def reasons(errors: list[tuple[int, DecodeError]]) -> list[tuple[int, str]]:
    return [(pos, e.reason) for pos, e in errors]


def reason_of(value: bytes | None, key: bytes | None = b"a", **config: object) -> str:
    _, errors = decode([value], [key], **config)
    assert len(errors) == 1, "expected the item to be rejected"
    return errors[0][1].reason


# ---------------------------------------------------------------- accepted


def test_a_raw_batch_is_the_float32_values_as_float64_rows_with_the_keys_as_ids() -> None:
    rows = np.random.default_rng(0).normal(size=(100, D)).astype("<f4")

    batch, errors = decode([row.tobytes() for row in rows], [f"i{k}".encode() for k in range(100)])

    assert errors == []
    assert batch.ids == [f"i{k}" for k in range(100)] and batch.index == list(range(100))
    assert batch.X.dtype == np.float64 and np.array_equal(batch.X, rows.astype(np.float64))
    assert all(m.ts is m.stream is m.payload_uri is m.meta is None for m in batch.meta)


@pytest.mark.parametrize(
    "content_type",
    [FLOAT32, "application/vnd.streamer.float32", "Application/X-Float32; endian=little"],
)
def test_raw_float32_is_named_by_its_content_type_or_an_alias(content_type: str) -> None:
    assert normalize_content_type(content_type) == FLOAT32

    batch, errors = decode(f32([1, 2, 3, 4]), [b"a"], [content_type])

    assert errors == [] and batch.X.tolist() == [[1.0, 2.0, 3.0, 4.0]]


def test_ids_may_be_any_utf8_up_to_the_id_length_limit() -> None:
    keys = ["é" * MAX_ID_LENGTH, "x" * MAX_ID_LENGTH, "cam3/0001 ☃"]

    batch, errors = decode(f32([0] * D, [1] * D, [2] * D), [k.encode() for k in keys])

    assert errors == [] and batch.ids == keys


def test_the_first_raw_batch_fixes_an_unconfigured_feature_count_by_majority() -> None:
    decoder = ItemDecoder()
    values = f32([1, 2, 3], [4, 5, 6], [7, 8], [9, 10, 11])

    batch, errors = decoder.decode_batch(values, [FLOAT32] * 4, [b"a", b"b", b"c", b"d"])

    assert decoder.n_features == 3
    assert batch.ids == ["a", "b", "d"] and reasons(errors) == [(2, "feature_count")]


def test_raw_and_json_items_vote_together_for_the_feature_count() -> None:
    decoder = ItemDecoder()
    values = [*f32([1, 2], [3, 4]), orjson.dumps({"id": "j", "features": [5, 6, 7]})]

    batch, errors = decoder.decode_batch(values, [FLOAT32, FLOAT32, None], [b"a", b"b", None])

    assert decoder.n_features == 2 and batch.ids == ["a", "b"]
    assert reasons(errors) == [(2, "feature_count")]


def test_raw_items_fill_named_features_by_position_when_the_count_matches() -> None:
    decoder = ItemDecoder(feature_names=["b", "a"])
    values = [*f32([1, 2], [1, 2, 3]), orjson.dumps({"id": "j", "features": {"a": 5, "b": 6}})]

    batch, errors = decoder.decode_batch(values, [FLOAT32, FLOAT32, JSON], [b"r", b"s", b"j"])

    assert batch.ids == ["r", "j"] and batch.X.tolist() == [[1.0, 2.0], [6.0, 5.0]]
    assert reasons(errors) == [(1, "feature_count")]


# ---------------------------------------------------------------- rejected


@pytest.mark.parametrize("key", [None, b""])
def test_a_raw_item_without_a_key_is_missing_its_id(key: bytes | None) -> None:
    assert reason_of(f32([1] * D)[0], key) == "missing_id"


@pytest.mark.parametrize("key", [b"\xff\xfe", b"ok\xc3", b"x" * (MAX_ID_LENGTH + 1)])
def test_a_key_that_is_not_utf8_or_too_long_is_a_bad_id(key: bytes) -> None:
    assert reason_of(f32([1] * D)[0], key) == "bad_id"


@pytest.mark.parametrize("value", [b"", b"\x00", b"\x00" * 7, b"\x00" * (4 * D + 3)])
def test_a_value_that_is_not_a_whole_number_of_float32_is_bad_float32(value: bytes) -> None:
    _, errors = decode([value], [b"a"])

    assert reasons(errors) == [(0, "bad_float32")]
    assert "multiple of 4" in str(errors[0][1]) and "record key" in str(errors[0][1])


@pytest.mark.parametrize("count", [1, D - 1, D + 1, 3 * D])
def test_a_raw_item_with_another_feature_count_is_rejected_naming_its_id(count: int) -> None:
    _, errors = decode(f32([1.0] * count), [b"cam3-7"])

    assert reasons(errors) == [(0, "feature_count")]
    assert f"{count} values, the model expects {D} (item id=cam3-7)" in str(errors[0][1])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_raw_features_are_rejected(bad: float) -> None:
    assert reason_of(f32([0, bad, 0, 0])[0]) == "non_finite"


def test_raw_features_beyond_max_abs_are_out_of_range() -> None:
    assert reason_of(f32([0, 0, 3e38, 0])[0]) == "out_of_range"
    assert reason_of(f32([0, 0, 2.0, 0])[0], max_abs=1.0) == "out_of_range"


def test_a_raw_value_over_max_bytes_is_too_large_and_a_tombstone_is_a_null_value() -> None:
    assert reason_of(f32([1] * D)[0], max_bytes=4 * D - 1) == "too_large"
    assert reason_of(None) == "null_value"


def test_without_keys_raw_items_are_missing_their_id_and_json_items_keep_theirs() -> None:
    values = [f32([1] * D)[0], orjson.dumps({"id": "j", "features": [1] * D})]

    batch, errors = decode(values, None, [FLOAT32, JSON])

    assert batch.ids == ["j"] and reasons(errors) == [(0, "missing_id")]


def test_json_items_take_their_id_from_the_value_not_the_key() -> None:
    batch, _ = decode([orjson.dumps({"id": "from-value", "features": [1] * D})], [b"k"], [None])

    assert batch.ids == ["from-value"]


def test_keys_of_another_length_are_a_caller_error() -> None:
    with pytest.raises(ValueError, match="2 values but 1 keys"):
        ItemDecoder().decode_batch([b"", b""], [FLOAT32, FLOAT32], [b"a"])


# ---------------------------------------------------------------- mixed batches


def test_a_mixed_batch_keeps_input_order_index_and_errors() -> None:
    good = f32([1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3])
    values = [
        good[0],
        orjson.dumps({"id": "j1", "features": [9, 9, 9, 9]}),
        b"\x00" * 5,  # bad_float32
        good[1],
        f32([0, np.nan, 0, 0])[0],  # non_finite
        good[2],
        b"not json",
        good[0],  # no key
    ]
    cts = [FLOAT32, JSON, FLOAT32, FLOAT32, FLOAT32, FLOAT32, JSON, FLOAT32]
    keys = [b"r0", None, b"r2", b"r3", b"r4", b"r5", None, None]

    batch, errors = decode(values, keys, cts)

    assert batch.ids == ["r0", "j1", "r3", "r5"] and batch.index == [0, 1, 3, 5]
    assert batch.X.tolist() == [[1.0] * 4, [9.0] * 4, [2.0] * 4, [3.0] * 4]
    assert reasons(errors) == [(2, "bad_float32"), (4, "non_finite"), (6, "bad_json"),
                               (7, "missing_id")]


def test_one_odd_record_does_not_change_what_the_others_decode_to() -> None:
    rows = np.random.default_rng(1).uniform(-1e6, 1e6, size=(50, D)).astype("<f4")
    values = [row.tobytes() for row in rows]
    keys = [f"k{i}".encode() for i in range(50)]
    fast, _ = decode(values, keys)

    mixed, errors = decode([*values[:20], b"\x00", *values[20:]], [*keys[:20], b"odd", *keys[20:]])

    assert reasons(errors) == [(20, "bad_float32")]
    assert mixed.ids == fast.ids and np.array_equal(mixed.X, fast.X)
    assert mixed.index == [*range(20), *range(21, 51)]


# ---------------------------------------------------------------- encoding


def test_encode_item_writes_the_features_as_little_endian_float32() -> None:
    value = encode_item("a", np.array([0.5, -2.0, 1e-3]), content_type=FLOAT32)

    assert value == np.array([0.5, -2.0, 1e-3], dtype="<f4").tobytes() and len(value) == 12
    assert content_type_headers(FLOAT32) == [("content-type", FLOAT32.encode())]


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ({"ts": 1.0}, "ts"),
        ({"stream": "cam3"}, "stream"),
        ({"payload_uri": "s3://b/1"}, "payload_uri"),
        ({"meta": {"k": 1}}, "meta"),
    ],
)
def test_encode_item_refuses_fields_raw_float32_cannot_carry(extra: dict, said: str) -> None:
    with pytest.raises(ValueError, match=f"only the features.*record key.*{said}"):
        encode_item("a", [1.0], content_type=FLOAT32, **extra)


def test_encode_item_refuses_named_features_and_values_beyond_float32() -> None:
    with pytest.raises(ValueError, match="named"):
        encode_item("a", {"x": 1.0}, content_type=FLOAT32)
    with pytest.raises(ValueError, match=r"positions \[1\] are beyond the float32 range"):
        encode_item("a", [1.0, 1e39], content_type=FLOAT32)


def test_only_items_can_be_raw_float32() -> None:
    with pytest.raises(ValueError, match="only the features of items"):
        encode_label("a", 1, content_type=FLOAT32)


def test_a_raw_float32_label_is_refused_telling_to_send_json_or_msgpack() -> None:
    with pytest.raises(DecodeError, match="send labels as 'application/json' or") as excinfo:
        decode_label(encode_item("a", [1.0], content_type=FLOAT32), FLOAT32)

    assert excinfo.value.reason == "bad_content_type"


def test_a_label_over_the_size_limit_is_too_large_whatever_its_content_type() -> None:
    with pytest.raises(DecodeError) as excinfo:
        decode_label(b"\x00" * 10, FLOAT32, max_bytes=5)

    assert excinfo.value.reason == "too_large"


# ---------------------------------------------------------------- properties

fuzz = settings(
    max_examples=200, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
raw_types = st.sampled_from([FLOAT32, "application/vnd.streamer.float32", None, "text/plain"])
keys = st.none() | st.binary(max_size=300) | st.text(max_size=20).map(str.encode)


@fuzz
@given(st.lists(st.tuples(st.binary(max_size=40) | st.none(), keys, raw_types), max_size=10),
       st.sampled_from([None, 2, 4]), st.booleans())
def test_arbitrary_raw_values_and_keys_only_ever_give_decode_errors(
    records: list, n_features: int | None, with_keys: bool
) -> None:
    values = [value for value, _, _ in records]
    record_keys = [key for _, key, _ in records]
    cts = [ct for _, _, ct in records]

    batch, errors = ItemDecoder(n_features=n_features).decode_batch(
        values, cts, record_keys if with_keys else None
    )

    assert sorted(batch.index + [pos for pos, _ in errors]) == list(range(len(records)))
    assert [pos for pos, _ in errors] == sorted(pos for pos, _ in errors)
    assert all(type(e) is DecodeError and str(e) for _, e in errors)
    assert batch.X.shape == (len(batch.ids), batch.X.shape[1]) and np.isfinite(batch.X).all()
    assert all(0 < len(item_id) <= MAX_ID_LENGTH for item_id in batch.ids)


finite32 = st.floats(width=32, min_value=-(2.0**49), max_value=2.0**49)  # within the default max_abs


@fuzz
@given(arrays("<f4", st.tuples(st.integers(1, 30), st.just(D)), elements=finite32),
       st.sampled_from([0, 1, 3, 5, 7]))
def test_valid_raw_arrays_round_trip_exactly_in_any_batch(rows: np.ndarray, odd: int) -> None:
    values = [encode_item(f"i{k}", row, content_type=FLOAT32) for k, row in enumerate(rows)]
    keys = [f"i{k}".encode() for k in range(len(rows))]
    # an odd record (not whole float32s) sends the batch through the record-by-record path
    at = odd % (len(values) + 1)
    if odd:
        values.insert(at, b"\x00" * odd)
        keys.insert(at, b"odd")

    batch, errors = decode(values, keys)

    assert np.array_equal(batch.X, rows.astype(np.float64))
    assert batch.ids == [f"i{k}" for k in range(len(rows))]
    assert reasons(errors) == ([] if odd == 0 else [(at, "bad_float32")])


# ---------------------------------------------------------------- the command line


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, list]] = []

    async def send(self, topic: str, value: bytes, key: bytes, headers: list) -> asyncio.Future:
        self.sent.append((topic, value, key, headers))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def test_produce_float32_sends_the_raw_features_keyed_by_id_with_the_header() -> None:
    stream = LabelledStream("s", ["s-0", "s-1"], np.array([[0.5, 1.0], [2.0, -3.0]]), np.array([0, 1]))
    args = build_parser().parse_args(["produce", "--content-type", "float32"])
    producer = RecordingProducer()

    sent = asyncio.run(_produce(producer, "items", stream, FLOAT32, None))  # type: ignore[arg-type]

    assert args.content_type == "float32" and sent == 2
    assert producer.sent[1] == (
        "items", np.array([2.0, -3.0], "<f4").tobytes(), b"s-1", [("content-type", FLOAT32.encode())]
    )
    batch, errors = ItemDecoder().decode_batch(
        [v for _, v, _, _ in producer.sent], [FLOAT32] * 2, [k for _, _, k, _ in producer.sent]
    )
    assert errors == [] and batch.ids == stream.ids and np.array_equal(batch.X, stream.X)


@pytest.mark.parametrize(("env", "expected"), [({}, "1 1 1"), ({"OMP_NUM_THREADS": "3"}, "3 1 1")])
def test_the_cli_keeps_numeric_libraries_at_one_thread_unless_told_otherwise(
    env: dict, expected: str
) -> None:
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    clean = {k: v for k, v in os.environ.items() if k not in names} | env
    code = f"import os, streamer.cli; print(*(os.environ[n] for n in {names!r}))"

    out = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True,
                         check=True).stdout

    assert out.strip() == expected
