"""Fuzzing the item and label decoders: garbage in, a reason out, never an exception.

The properties a service loop relies on:

- ``ItemDecoder.decode_batch`` never raises for any message: every input position
  comes back exactly once, either as a good row or as a ``DecodeError`` whose reason
  is one of :data:`ITEM_REASONS`;
- good items come out in input order with exactly their ids and finite float64
  features, whatever garbage surrounds them, JSON, msgpack and raw float32 alike;
- ``decode_label`` raises nothing but ``DecodeError`` (reason in :data:`LABEL_REASONS`)
  and returns the right label for good messages.

Near-valid items are built from a good item and one known mutation, so each bad item
has an expected reason. Every test is derandomized: the same examples on every run.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.wire import (
    FLOAT32,
    JSON,
    MSGPACK,
    DecodeError,
    ItemDecoder,
    canonical_label,
    decode_label,
    header_content_type,
    normalize_content_type,
)

FORMAT_REASONS = frozenset(
    {"null_value", "too_large", "bad_content_type", "bad_json", "bad_msgpack", "not_object"}
)
ITEM_REASONS = FORMAT_REASONS | {
    "missing_id",
    "bad_id",
    "bad_features",
    "feature_count",
    "non_finite",
    "out_of_range",
    "bad_field",
    "bad_float32",
}
LABEL_REASONS = FORMAT_REASONS | {"missing_id", "bad_id", "bad_label", "bad_field"}

N = 4  # the configured feature count of the near-valid items

fuzz = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
fuzz_small = settings(fuzz, max_examples=80)

JSON_TYPES = [None, "", JSON, "Application/JSON; charset=utf-8", "text/json"]
MSGPACK_TYPES = [MSGPACK, "application/x-msgpack", "application/vnd.msgpack; v=1"]
RAW_TYPES = [FLOAT32, "application/vnd.streamer.float32", "Application/X-Float32; endian=little"]
KNOWN_TYPES = {"", JSON, "text/json", MSGPACK, "application/x-msgpack", "application/vnd.msgpack",
               FLOAT32, "application/vnd.streamer.float32"}


@contextlib.contextmanager
def default_recursion_limit() -> Iterator[None]:
    """Run with Python's default recursion limit, as the service does.

    Hypothesis raises the limit while a test runs, which would hide a decoder that
    recurses over a deeply nested value.
    """
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        yield
    finally:
        sys.setrecursionlimit(saved)


def decode_label_strictly(
    value: bytes | None, content_type: str | None = None, **kwargs: Any
) -> Any:
    with default_recursion_limit():
        return decode_label(value, content_type, **kwargs)


def is_known_content_type(content_type: str | None) -> bool:
    return content_type is None or content_type.split(";", 1)[0].strip().lower() in KNOWN_TYPES


def _dumps(obj: Any, content_type: str | None) -> bytes:
    if content_type in MSGPACK_TYPES:
        return msgpack.packb(obj, use_bin_type=True)
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


def _deep_values(obj: Any) -> list[Deep]:
    if isinstance(obj, Deep):
        return [obj]
    if isinstance(obj, list):
        return [d for v in obj for d in _deep_values(v)]
    if isinstance(obj, dict):
        return [d for v in obj.values() for d in _deep_values(v)]
    return []


def encode(obj: Any, content_type: str | None) -> bytes:
    value = _dumps(obj, content_type)
    for deep in _deep_values(obj):
        if content_type in MSGPACK_TYPES:
            nested = b"\x91" * (deep.depth - 1) + b"\x90"  # fixarray of one, ..., empty
        else:
            nested = b"[" * deep.depth + b"]" * deep.depth
        value = value.replace(_dumps(str(deep), content_type), nested, 1)
    return value


# ---------------------------------------------------------------- strategies


class Deep(str):
    """Stands for a list nested ``depth`` deep; :func:`encode` writes the nesting itself.

    orjson and msgpack refuse to write more than a few hundred levels, yet orjson reads
    up to 1024 and a plain repr() of such a value raises RecursionError.
    """

    def __new__(cls, depth: int) -> Deep:
        return super().__new__(cls, f"<<deep:{depth}>>")

    def __init__(self, depth: int) -> None:
        self.depth = depth

    def __repr__(self) -> str:
        return f"Deep({self.depth})"


ints = st.integers(-(2**63), 2**64 - 1)  # what orjson and msgpack carry as integers
finite = st.floats(allow_nan=False, allow_infinity=False)
in_range = st.floats(min_value=-1e15, max_value=1e15)  # the default --max-abs-feature
edge = st.sampled_from([1e15, -1e15, -5e-324, 5e-324, 2.0**49, -(2.0**49)])
huge = st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 2.0**63, -(2.0**64), 1.0000001e15])
good_number = in_range | edge | st.integers(-(10**15), 10**15)
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
good_id = st.text(min_size=1, max_size=12) | st.just("é" * 256) | st.just("x" * 256)
json_values = st.recursive(
    st.none() | st.booleans() | ints | finite | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)
msgpack_values = st.recursive(
    st.none() | st.booleans() | ints | st.floats() | st.text(max_size=20) | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=8) | ints | st.binary(max_size=4), children, max_size=5)
    ),
    max_leaves=25,
)
not_a_string = st.booleans() | ints | finite | st.lists(ints, max_size=2)  # null = absent
not_a_number = st.booleans() | st.text(max_size=5) | st.lists(ints, max_size=2)
# as deep as JSON allows (orjson stops at 1024 levels): repr() of it raises RecursionError
deeply_nested = (st.sampled_from([999, 1000]) | st.integers(1, 1000)).map(Deep)
bad_feature_value = (
    st.text(max_size=3)
    | st.booleans()
    | st.none()
    | st.lists(finite, max_size=2)
    | st.dictionaries(st.text(max_size=2), finite, max_size=2)
    | deeply_nested
)


@dataclass
class Case:
    """One message with what the decoder must make of it."""

    value: bytes | None
    content_type: str | None
    kind: str  # the mutation, or "good"
    reason: str | None  # None for a good item
    item_id: str | None = None
    row: list[float] | None = None
    key: bytes | None = None  # the record key: the id of raw float32 items


@st.composite
def good_items(draw: st.DrawFn) -> Case:
    item_id = draw(good_id)
    row = draw(st.lists(good_number, min_size=N, max_size=N))
    obj: dict[str, Any] = {"id": item_id, "features": row}
    optional = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "ts": finite | st.none(),
                "stream": st.text(max_size=8) | st.none(),
                "payload_uri": st.text(max_size=8) | st.none(),
                "meta": st.dictionaries(st.text(max_size=4), json_values, max_size=3) | st.none(),
                "camera_angle": json_values,  # unknown extra fields are ignored
            },
        )
    )
    obj.update(optional)
    content_type = draw(st.sampled_from(JSON_TYPES + MSGPACK_TYPES))
    return Case(
        encode(obj, content_type), content_type, "good", None, item_id, [float(v) for v in row]
    )


Mutation = Callable[[st.DrawFn, dict[str, Any]], None]


def _set(key: str, values: st.SearchStrategy[Any]) -> Mutation:
    def mutate(draw: st.DrawFn, obj: dict[str, Any]) -> None:
        obj[key] = draw(values)

    return mutate


def _drop(key: str) -> Mutation:
    def mutate(draw: st.DrawFn, obj: dict[str, Any]) -> None:
        del obj[key]

    return mutate


def _feature(values: st.SearchStrategy[Any]) -> Mutation:
    def mutate(draw: st.DrawFn, obj: dict[str, Any]) -> None:
        obj["features"][draw(st.integers(0, N - 1))] = draw(values)

    return mutate


# (kind, expected reason, mutation, content types it applies to: None = any)
MUTATIONS: list[tuple[str, str, Mutation, list[str | None] | None]] = [
    ("id_missing", "missing_id", _drop("id"), None),
    ("id_not_string", "bad_id", _set("id", not_a_string | st.none() | deeply_nested), None),
    ("id_empty", "bad_id", _set("id", st.just("")), None),
    ("id_too_long", "bad_id", _set("id", st.integers(257, 5000).map(lambda n: "x" * n)), None),
    ("features_missing", "bad_features", _drop("features"), None),
    (
        "features_not_list",
        "bad_features",
        _set("features", st.text(max_size=5) | ints | finite | st.booleans() | st.none()),
        None,
    ),
    ("features_empty", "bad_features", _set("features", st.just([])), None),
    (
        "features_too_few",
        "feature_count",
        _set("features", st.lists(finite, min_size=1, max_size=N - 1)),
        None,
    ),
    (
        "features_too_many",
        "feature_count",
        _set("features", st.lists(finite, min_size=N + 1, max_size=3 * N)),
        None,
    ),
    ("feature_not_number", "bad_features", _feature(bad_feature_value), None),
    (
        "feature_dict_on_list_stream",
        "bad_features",
        _set(
            "features",
            st.dictionaries(st.text(min_size=1, max_size=3), finite, min_size=1, max_size=N),
        ),
        None,
    ),
    ("feature_non_finite", "non_finite", _feature(non_finite), MSGPACK_TYPES),  # JSON cannot
    ("feature_out_of_range", "out_of_range", _feature(huge), None),
    ("ts_not_number", "bad_field", _set("ts", not_a_number | deeply_nested), None),
    ("ts_non_finite", "bad_field", _set("ts", non_finite), MSGPACK_TYPES),
    ("stream_not_string", "bad_field", _set("stream", not_a_string), None),
    ("payload_uri_not_string", "bad_field", _set("payload_uri", not_a_string), None),
    ("stream_too_long", "bad_field",
     _set("stream", st.integers(257, 70_000).map(lambda n: "s" * n)), None),
    ("payload_uri_too_long", "bad_field",
     _set("payload_uri", st.integers(65_537, 70_000).map(lambda n: "u" * n)), None),
    (
        "meta_not_object",
        "bad_field",
        _set("meta", st.lists(ints, max_size=2) | st.text(max_size=3) | ints | st.booleans()),
        None,
    ),
]


@st.composite
def mutated_items(draw: st.DrawFn) -> Case:
    kind, reason, mutate, allowed = draw(st.sampled_from(MUTATIONS))
    obj: dict[str, Any] = {
        "id": draw(good_id),
        "features": draw(st.lists(good_number, min_size=N, max_size=N)),
    }
    mutate(draw, obj)
    content_type = draw(st.sampled_from(allowed or JSON_TYPES + MSGPACK_TYPES))
    return Case(encode(obj, content_type), content_type, kind, reason)


@st.composite
def format_garbage(draw: st.DrawFn) -> Case:
    """Messages that fail before any field is looked at."""
    item = {"id": draw(good_id), "features": draw(st.lists(in_range, min_size=N, max_size=N))}
    kind = draw(
        st.sampled_from(
            [
                "bytes_as_json",
                "bytes_as_msgpack",
                "python_json_nan",
                "json_sent_as_msgpack",
                "msgpack_sent_as_json",
                "not_object",
                "tombstone",
                "unknown_content_type",
            ]
        )
    )
    if kind == "bytes_as_json":
        # orjson parses some short byte strings ("1", "[]"): those are not objects
        value, ct = draw(st.binary(max_size=80)), draw(st.sampled_from(JSON_TYPES))
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return Case(value, ct, kind, "bad_json")
        return Case(value, ct, kind, None if isinstance(parsed, dict) else "not_object")
    if kind == "bytes_as_msgpack":
        value, ct = draw(st.binary(max_size=80)), draw(st.sampled_from(MSGPACK_TYPES))
        return Case(value, ct, kind, None)  # bad_msgpack, not_object or a field reason
    if kind == "python_json_nan":
        # Python's json.dumps writes NaN/Infinity, which are not JSON
        item["features"][0] = draw(non_finite)
        return Case(json.dumps(item).encode(), draw(st.sampled_from(JSON_TYPES)), kind, "bad_json")
    if kind == "json_sent_as_msgpack":
        return Case(orjson.dumps(item), draw(st.sampled_from(MSGPACK_TYPES)), kind, "bad_msgpack")
    if kind == "msgpack_sent_as_json":
        return Case(msgpack.packb(item), draw(st.sampled_from(JSON_TYPES)), kind, "bad_json")
    if kind == "not_object":
        ct = draw(st.sampled_from(JSON_TYPES + MSGPACK_TYPES))
        value = draw(
            st.lists(json_values, max_size=3)
            | ints
            | st.text(max_size=5)
            | st.none()
            | deeply_nested
        )
        return Case(encode(value, ct), ct, kind, "not_object")
    if kind == "tombstone":
        return Case(None, draw(st.sampled_from(JSON_TYPES + MSGPACK_TYPES)), kind, "null_value")
    ct = draw(st.text(max_size=30).filter(lambda t: not is_known_content_type(t)))
    return Case(orjson.dumps(item), ct, kind, "bad_content_type")


def _f32(values: list[float]) -> bytes:
    return np.asarray(values, dtype="<f4").tobytes()


@st.composite
def good_raw_items(draw: st.DrawFn) -> Case:
    item_id = draw(good_id)
    row = np.asarray(draw(st.lists(good_number, min_size=N, max_size=N)), dtype="<f4")
    return Case(
        row.tobytes(), draw(st.sampled_from(RAW_TYPES)), "good", None, item_id,
        row.astype(np.float64).tolist(), item_id.encode(),
    )


def _raw_feature(values: st.SearchStrategy[float]) -> Callable[[st.DrawFn], bytes]:
    def value(draw: st.DrawFn) -> bytes:
        row = draw(st.lists(in_range, min_size=N, max_size=N))
        row[draw(st.integers(0, N - 1))] = draw(values)
        return _f32(row)

    return value


def _raw_row(draw: st.DrawFn) -> bytes:
    return _f32(draw(st.lists(in_range, min_size=N, max_size=N)))


# (kind, expected reason, value, key): raw float32 items with one thing wrong
RAW_MUTATIONS: list[tuple[str, str, Callable[[st.DrawFn], bytes | None], st.SearchStrategy[Any]]] = [
    ("raw_key_missing", "missing_id", _raw_row, st.sampled_from([None, b""])),
    ("raw_key_not_utf8", "bad_id", _raw_row, st.binary(max_size=8).map(lambda b: b"\xff" + b)),
    ("raw_key_too_long", "bad_id", _raw_row, st.integers(257, 400).map(lambda n: b"k" * n)),
    ("raw_not_float32", "bad_float32",
     lambda draw: draw(st.binary(max_size=4 * N + 7).filter(lambda b: not b or len(b) % 4)),
     good_id.map(str.encode)),
    ("raw_too_few", "feature_count",
     lambda draw: _f32(draw(st.lists(in_range, min_size=1, max_size=N - 1))), good_id.map(str.encode)),
    ("raw_too_many", "feature_count",
     lambda draw: _f32(draw(st.lists(in_range, min_size=N + 1, max_size=3 * N))),
     good_id.map(str.encode)),
    ("raw_non_finite", "non_finite", _raw_feature(non_finite), good_id.map(str.encode)),
    ("raw_out_of_range", "out_of_range", _raw_feature(st.sampled_from([1e16, -3e38, 2.0**60])),
     good_id.map(str.encode)),
    ("raw_tombstone", "null_value", lambda draw: None, good_id.map(str.encode)),
]


@st.composite
def mutated_raw_items(draw: st.DrawFn) -> Case:
    kind, reason, value, key = draw(st.sampled_from(RAW_MUTATIONS))
    return Case(value(draw), draw(st.sampled_from(RAW_TYPES)), kind, reason, key=draw(key))


any_case = (
    good_items() | mutated_items() | format_garbage() | good_raw_items() | mutated_raw_items()
)


def check_batch(cases: list[Case], decoder: ItemDecoder) -> tuple[Any, dict[int, DecodeError]]:
    """Decode ``cases`` as one batch and check the properties every batch must have."""
    with default_recursion_limit():
        batch, errors = decoder.decode_batch(
            [c.value for c in cases], [c.content_type for c in cases], [c.key for c in cases]
        )
    bad = dict(errors)
    # every position exactly once: either a good row or an error
    assert len(bad) == len(errors), "a position has two errors"
    assert sorted(batch.index + list(bad)) == list(range(len(cases)))
    assert batch.index == sorted(batch.index) and [i for i, _ in errors] == sorted(bad)
    assert len(batch.ids) == len(batch.meta) == batch.X.shape[0]
    assert batch.X.dtype == np.float64 and np.isfinite(batch.X).all()
    for error in bad.values():
        assert type(error) is DecodeError and error.reason in ITEM_REASONS and str(error)
    return batch, bad


# ---------------------------------------------------------------- items


@fuzz
@given(st.lists(st.binary(max_size=200) | st.none(), max_size=8), st.data())
def test_arbitrary_bytes_with_any_header_never_raise(values: list, data: st.DataObject) -> None:
    headers = st.sampled_from(JSON_TYPES + MSGPACK_TYPES + RAW_TYPES) | st.text(max_size=20)
    keys = st.none() | st.binary(max_size=300)
    cases = [Case(v, data.draw(headers), "bytes", None, key=data.draw(keys)) for v in values]

    check_batch(cases, ItemDecoder())


@fuzz
@given(
    st.lists(
        st.tuples(json_values | msgpack_values, st.sampled_from(JSON_TYPES + MSGPACK_TYPES)),
        max_size=8,
    )
)
def test_arbitrary_values_never_raise(pairs: list) -> None:
    cases = []
    for obj, ct in pairs:
        try:
            value = encode(obj, ct)
        except (TypeError, orjson.JSONEncodeError):  # bytes/NaN keys have no JSON form
            value = msgpack.packb(obj, use_bin_type=True)
            ct = MSGPACK
        cases.append(Case(value, ct, "value", None))

    check_batch(cases, ItemDecoder())


@fuzz
@given(st.lists(any_case, min_size=1, max_size=12))
def test_a_mixed_batch_keeps_every_good_item_and_names_every_bad_one(cases: list[Case]) -> None:
    batch, bad = check_batch(cases, ItemDecoder(n_features=N))

    good = [i for i, c in enumerate(cases) if c.kind == "good"]
    assert set(good) <= set(batch.index), "a good item was lost"
    for row, pos in enumerate(batch.index):
        case = cases[pos]
        if case.kind == "good":
            assert batch.ids[row] == case.item_id
            assert batch.X[row].tolist() == case.row
    for pos, case in enumerate(cases):
        if case.kind != "good" and case.reason is not None:
            assert pos in bad, f"{case.kind} was accepted"
            assert bad[pos].reason == case.reason, (case.kind, str(bad[pos]))


@fuzz_small
@given(st.lists(any_case, min_size=1, max_size=12), st.integers(1, 4))
def test_an_unconfigured_schema_is_fixed_by_the_good_majority(
    cases: list[Case], extra: int
) -> None:
    # enough good items up front that they outvote any garbage of another width
    goods = [
        Case(
            orjson.dumps({"id": f"g{k}", "features": [float(k)] * N}),
            None,
            "good",
            None,
            f"g{k}",
            [float(k)] * N,
        )
        for k in range(len(cases) + extra)
    ]
    decoder = ItemDecoder()

    batch, _ = check_batch(goods + cases, decoder)

    assert decoder.n_features == N
    assert set(range(len(goods))) <= set(batch.index)
    assert all(c.item_id in batch.ids for c in cases if c.kind == "good")


@fuzz_small
@given(st.lists(st.lists(any_case, max_size=6), min_size=2, max_size=5))
def test_the_schema_never_changes_once_fixed(batches: list[list[Case]]) -> None:
    decoder = ItemDecoder()
    width = None
    for cases in batches:
        batch, _ = check_batch(cases, decoder)
        if width is None:
            width = decoder.n_features
        assert decoder.n_features == width
        if len(batch):
            assert batch.X.shape[1] == width


@fuzz_small
@given(
    names=st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=5, unique=True),
    data=st.data(),
)
def test_named_features_in_any_key_order_or_with_other_names(
    names: list[str], data: st.DataObject
) -> None:
    decoder = ItemDecoder(feature_names=names)
    values = {n: data.draw(good_number) for n in names}
    shuffled = dict(data.draw(st.permutations(list(values.items()))))
    other = data.draw(
        st.dictionaries(st.text(min_size=1, max_size=4), finite, min_size=1, max_size=6).filter(
            lambda d: d.keys() != set(names)
        )
    )
    ct = data.draw(st.sampled_from(JSON_TYPES + MSGPACK_TYPES))

    batch, bad = check_batch(
        [
            Case(encode({"id": "a", "features": shuffled}, ct), ct, "good", None),
            Case(encode({"id": "b", "features": other}, ct), ct, "bad", None),
        ],
        decoder,
    )

    assert batch.ids == ["a"] and batch.X[0].tolist() == [float(values[n]) for n in names]
    assert bad[1].reason == "feature_count"


@fuzz_small
@given(st.binary(max_size=300) | st.none(), st.integers(0, 300), st.data())
def test_only_values_over_max_bytes_are_too_large(
    value: bytes | None, max_bytes: int, data: st.DataObject
) -> None:
    ct = data.draw(st.sampled_from(JSON_TYPES + MSGPACK_TYPES + RAW_TYPES) | st.text(max_size=10))
    _, errors = ItemDecoder(max_bytes=max_bytes).decode_batch([value], [ct], [b"k"])
    try:
        decode_label_strictly(value, ct, max_bytes=max_bytes)
        label_reason = None
    except DecodeError as e:
        label_reason = e.reason

    too_large = value is not None and len(value) > max_bytes
    assert (bool(errors) and errors[0][1].reason == "too_large") == too_large
    assert (label_reason == "too_large") == too_large


@pytest.mark.parametrize("size", [1_048_577, 2_000_000])
def test_huge_messages_are_too_large_by_default_without_being_parsed(size: int) -> None:
    value = b'{"id": "a", "features": [' + b"1," * (size // 2) + b"1]}"

    _, errors = ItemDecoder().decode_batch([value], [None])
    with pytest.raises(DecodeError) as excinfo:
        decode_label_strictly(value)

    assert errors[0][1].reason == "too_large" and excinfo.value.reason == "too_large"
    assert str(len(value)) in str(errors[0][1])


def test_a_large_item_just_under_the_limit_is_accepted() -> None:
    value = orjson.dumps({"id": "a", "features": [1.0], "meta": {"blob": "s" * 999_000}})

    batch, errors = ItemDecoder(max_bytes=1_000_000).decode_batch([value], [None])

    assert errors == [] and batch.ids == ["a"]


# ---------------------------------------------------------------- labels

good_label = (
    st.text(min_size=1, max_size=256)
    | ints
    | st.integers(-(2**53), 2**53).map(float)  # integral floats become ints
)
LABEL_MUTATIONS: list[tuple[str, st.SearchStrategy[Any]]] = [
    (
        "label",
        st.just(None)
        | st.booleans()
        | deeply_nested
        | st.just("")
        | st.just("y" * 257)
        | finite.filter(lambda f: not f.is_integer())
        | st.lists(ints, max_size=2)
        | st.dictionaries(st.text(max_size=2), ints, max_size=2),
    ),
    ("id", not_a_string | st.none() | deeply_nested | st.just("") | st.just("x" * 257)),
    ("annotator", not_a_string),
    ("ts", not_a_number),
]
LABEL_MUTATION_REASONS = {
    "label": "bad_label",
    "id": "bad_id",
    "annotator": "bad_field",
    "ts": "bad_field",
}


@fuzz
@given(
    good_id,
    good_label,
    st.none() | st.text(max_size=8),
    st.none() | finite,
    st.sampled_from(JSON_TYPES + MSGPACK_TYPES),
)
def test_good_labels_decode_to_their_value(
    item_id: str, label: Any, annotator: str | None, ts: float | None, ct: str | None
) -> None:
    message = decode_label_strictly(
        encode({"id": item_id, "label": label, "annotator": annotator, "ts": ts}, ct), ct
    )

    expected = canonical_label(int(label) if isinstance(label, float) else label)
    assert message.label == expected and type(message.label) is type(expected)
    assert (message.id, message.annotator, message.ts) == (item_id, annotator, ts)


@fuzz
@given(st.sampled_from(LABEL_MUTATIONS), st.sampled_from(JSON_TYPES + MSGPACK_TYPES), st.data())
def test_bad_labels_are_rejected_with_their_reason(
    mutation: tuple[str, st.SearchStrategy[Any]], ct: str | None, data: st.DataObject
) -> None:
    key, values = mutation
    obj = {"id": "a", "label": "cat"}
    obj[key] = data.draw(values)

    with pytest.raises(DecodeError) as excinfo:
        decode_label_strictly(encode(obj, ct), ct)

    assert excinfo.value.reason == LABEL_MUTATION_REASONS[key]


@fuzz
@given(
    st.binary(max_size=200) | st.none(),
    st.none() | st.text(max_size=20) | st.sampled_from(JSON_TYPES + MSGPACK_TYPES),
)
def test_label_garbage_raises_only_decode_errors(value: bytes | None, ct: str | None) -> None:
    try:
        decode_label_strictly(value, ct)
    except DecodeError as e:
        assert e.reason in LABEL_REASONS and str(e)


@fuzz
@given(
    json_values | msgpack_values | mutated_items().map(lambda c: c.value),
    st.sampled_from(JSON_TYPES + MSGPACK_TYPES),
)
def test_label_values_of_any_shape_raise_only_decode_errors(obj: Any, ct: str | None) -> None:
    try:
        value = obj if isinstance(obj, bytes) else encode(obj, ct)
    except (TypeError, orjson.JSONEncodeError):
        value, ct = msgpack.packb(obj, use_bin_type=True), MSGPACK
    try:
        message = decode_label_strictly(value, ct)
    except DecodeError as e:
        assert e.reason in LABEL_REASONS
    else:
        assert isinstance(message.id, str) and 0 < len(message.id) <= 256
        assert type(message.label) in (str, int) and message.label != ""


# ---------------------------------------------------------------- content-type headers


@fuzz
@given(st.lists(st.tuples(st.text(max_size=15), st.binary(max_size=30) | st.none()), max_size=5))
def test_any_headers_give_a_content_type_or_a_bad_content_type_error(headers: list) -> None:
    content_type = header_content_type(headers)
    try:
        kind = normalize_content_type(content_type)
    except DecodeError as e:
        assert e.reason == "bad_content_type" and not is_known_content_type(content_type)
    else:
        assert kind in (JSON, MSGPACK, FLOAT32) and is_known_content_type(content_type)
