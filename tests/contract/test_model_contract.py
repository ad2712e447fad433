"""Every model behind the Model protocol passes these checks (specs listed in ``specs.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.core.model import Model
from streamer.models import build_model
from tests.contract.specs import MODEL_SPECS

KEY = b"contract-test-key"


def three_class_stream(n: int = 240, d: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs of classes 0, 1, 2 in random order; class 2 first appears late."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    y[n // 2 :] = rng.integers(0, 3, n - n // 2)
    centres = rng.normal(0.0, 3.0, (3, d))
    return centres[y] + rng.normal(0.0, 1.0, (n, d)), y


def trained(spec: str, n: int = 240, seed: int = 0) -> tuple[Model, np.ndarray, np.ndarray]:
    X, y = three_class_stream(n)
    model = build_model(spec, seed=seed)
    for i in range(0, n, 20):
        model.observe(X[i : i + 20])
        model.learn(X[i : i + 20], y[i : i + 20])
    return model, X, y


@pytest.fixture(params=MODEL_SPECS)
def spec(request: pytest.FixtureRequest) -> str:
    return request.param


def test_implements_the_model_protocol(spec: str) -> None:
    model = build_model(spec)
    assert isinstance(model, Model)
    assert model.classes == [] and model.version == 0 and model.n_features is None


def test_prediction_before_any_class_is_known_has_no_columns(spec: str) -> None:
    model = build_model(spec)
    assert model.predict_proba(np.zeros((5, 4))).shape == (5, 0)
    model.observe(np.zeros((5, 4)))
    assert model.predict_proba(np.zeros((5, 4))).shape == (5, 0)


def test_probabilities_have_one_column_per_class_and_rows_sum_to_one(spec: str) -> None:
    model, X, _ = trained(spec)
    proba = model.predict_proba(X[:50])
    assert proba.shape == (50, len(model.classes))
    assert np.all(proba >= 0.0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)


def test_single_class_gives_a_single_certain_column(spec: str) -> None:
    model = build_model(spec)
    model.learn(np.ones((3, 4)), [1, 1, 1])
    proba = model.predict_proba(np.ones((2, 4)))
    assert model.classes == [1]
    np.testing.assert_allclose(proba, [[1.0], [1.0]])


def test_classes_appear_over_time_in_sorted_order(spec: str) -> None:
    X, y = three_class_stream()
    model = build_model(spec)
    model.learn(X[:1], [2])
    assert model.classes == [2]
    model.learn(X[1:2], [0])
    assert model.classes == [0, 2]
    model.learn(X[2:3], [1])
    assert model.classes == [0, 1, 2]
    assert model.predict_proba(X[:3]).shape == (3, 3)


def test_learns_well_enough_to_beat_chance(spec: str) -> None:
    model, X, y = trained(spec, n=600)
    proba = model.predict_proba(X[-200:])
    predicted = np.array(model.classes)[proba.argmax(axis=1)]
    assert np.mean(predicted == y[-200:]) > 0.6


def test_each_learn_call_increments_the_version_and_observe_does_not(spec: str) -> None:
    X, y = three_class_stream()
    model = build_model(spec)
    model.observe(X[:10])
    assert model.version == 0
    model.learn(X[:10], y[:10])
    model.learn(X[10:11], y[10:11])
    assert model.version == 2


def test_round_trip_gives_identical_predictions_and_learning(spec: str) -> None:
    model, X, y = trained(spec)
    restored = type(model).from_bytes(model.to_bytes(KEY), KEY)
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    assert (restored.classes, restored.version, restored.n_features) == (
        model.classes, model.version, model.n_features)
    for m in (model, restored):
        m.observe(X[:30])
        m.learn(X[:30], y[:30])
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))


def test_tampered_bytes_are_refused(spec: str) -> None:
    model, _, _ = trained(spec, n=40)
    data = bytearray(model.to_bytes(KEY))
    data[-10] ^= 0x01
    with pytest.raises(ValueError, match="integrity"):
        type(model).from_bytes(bytes(data), KEY)


def test_bytes_signed_with_another_key_are_refused(spec: str) -> None:
    model, _, _ = trained(spec, n=40)
    with pytest.raises(ValueError, match="integrity"):
        type(model).from_bytes(model.to_bytes(KEY), b"another key")


def test_batch_results_equal_per_item_results(spec: str) -> None:
    X, y = three_class_stream()
    batched, single = build_model(spec, seed=1), build_model(spec, seed=1)
    for i in range(0, 200, 25):
        batched.observe(X[i : i + 25])
        batched.learn(X[i : i + 25], y[i : i + 25])
        for j in range(i, i + 25):
            single.observe(X[j : j + 1])
        for j in range(i, i + 25):
            single.learn(X[j : j + 1], y[j : j + 1])
    per_item = np.vstack([single.predict_proba(X[j : j + 1]) for j in range(200, 240)])
    # auto's torch member computes in float32, where a GEMM over 25 rows and over one row
    # round differently (~1e-7); everything else is float64 and equal to 1e-12
    atol = 1e-6 if spec == "auto" else 1e-12
    np.testing.assert_allclose(batched.predict_proba(X[200:]), per_item, rtol=0, atol=atol)


def test_same_seed_gives_the_same_model(spec: str) -> None:
    a, X, _ = trained(spec, seed=7)
    b, _, _ = trained(spec, seed=7)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_wrong_feature_count_is_refused_with_the_expected_width(spec: str) -> None:
    model, _, _ = trained(spec, n=40)
    with pytest.raises(ValueError, match="features has 3 values, the model expects 4"):
        model.predict_proba(np.zeros((1, 3)))
