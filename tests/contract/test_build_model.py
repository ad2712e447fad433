"""Model specs: how users name models on the command line and in config."""

from __future__ import annotations

import numpy as np
import pytest
from river import multiclass, naive_bayes

from streamer.models import LOGISTIC_MODEL, RiverModel, build_model


@pytest.mark.parametrize(
    "spec",
    [
        "StandardScaler | LogisticRegression",
        "preprocessing.StandardScaler | linear_model.SoftmaxRegression",
        "river.naive_bayes.GaussianNB",
        "HoeffdingTreeClassifier",
        "LogisticRegression(l2=0.001)",
        LOGISTIC_MODEL,
    ],
)
def test_spec_forms_build_a_river_model(spec: str) -> None:
    model = build_model(spec)
    assert isinstance(model, RiverModel) and model.spec == spec


def test_keyword_values_reach_the_estimator() -> None:
    model = build_model("HoeffdingTreeClassifier(grace_period=7, split_criterion='gini')")
    assert model._classifier.grace_period == 7
    assert model._classifier.split_criterion == "gini"


def test_seed_is_passed_to_estimators_that_take_one() -> None:
    assert build_model("ARFClassifier(n_models=2)", seed=5)._classifier.seed == 5
    assert build_model("ARFClassifier(n_models=2, seed=9)", seed=5)._classifier.seed == 9


def test_binary_only_classifiers_are_wrapped_in_one_vs_rest() -> None:
    model = build_model("StandardScaler | LogisticRegression")
    assert isinstance(model._classifier, multiclass.OneVsRestClassifier)
    assert not isinstance(build_model("GaussianNB")._classifier, multiclass.OneVsRestClassifier)


def test_binary_stream_with_non_boolean_labels_is_learned_correctly() -> None:
    # River's binary models read any truthy label as positive; labels 1 and 2 must not merge.
    rng = np.random.default_rng(0)
    y = rng.choice([1, 2], 400)
    X = (y[:, None] - 1.5) * 4 + rng.normal(0, 1, (400, 2))
    model = build_model("LogisticRegression")
    model.learn(X, y)
    predicted = np.array(model.classes)[model.predict_proba(X).argmax(axis=1)]
    assert model.classes == [1, 2] and np.mean(predicted == y) > 0.9


def test_string_labels_work() -> None:
    model = build_model("GaussianNB")
    model.learn(np.array([[0.0], [5.0], [0.1], [5.1]]), ["cat", "dog", "cat", "dog"])
    assert model.classes == ["cat", "dog"]
    assert model.predict_proba(np.array([[5.0]])).argmax() == 1


def test_feature_names_default_to_x0_and_can_be_given() -> None:
    model = build_model("GaussianNB")
    model.learn(np.zeros((1, 3)), [0])
    assert model.feature_names == ["x0", "x1", "x2"]
    named = RiverModel(naive_bayes.GaussianNB(), feature_names=["a", "b"])
    assert named.n_features == 2


def test_torch_specs_build_a_torch_head_with_their_options() -> None:
    pytest.importorskip("torch", reason="the torch extra is not installed")
    from streamer.models.torch_head import TorchHead

    model = build_model("torch:mlp(hidden=8, heads=3, lr=0.01, replay=32, memory=100, device='cpu')", seed=4)
    assert isinstance(model, TorchHead)
    assert (model.config.kind, model.config.hidden, model.config.heads, model.config.seed) == ("mlp", 8, 3, 4)
    assert build_model("torch:linear(seed=9)", seed=4).config.seed == 9


def test_torch_specs_without_pytorch_say_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamer.models import torch_head

    monkeypatch.setattr(torch_head, "torch", None)
    with pytest.raises(ValueError, match=r"pip install 'streamer\[torch\]'"):
        build_model("torch:mlp")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("torch:cnn", "must be one of linear, mlp"),
        ("torch:mlp(heads=0)", "heads must be an integer >= 1"),
        ("torch:mlp(hiden=3)", "did you mean hidden"),
        ("torch:linear(hidden=3)", "torch:mlp only"),
        ("torch:mlp(lr=abs(1))", "must be a literal"),
        ("torch:mlp(8)", "by keyword"),
        ("torch:mlp(optimizer='lbfgs')", "optimizer must be one of"),
        ("torch:mlp(", "cannot parse"),
    ],
)
def test_malformed_torch_specs_are_rejected_with_a_reason(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(spec)


def test_unknown_names_suggest_close_matches() -> None:
    with pytest.raises(ValueError, match="did you mean GaussianNB"):
        build_model("GausianNB")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("LogisticRegression(l2=abs(1))", "must be a literal"),
        ("LogisticRegression(0.1)", "by keyword"),
        ("StandardScaler |", "empty step"),
        ("", "non-empty"),
        ("LogisticRegression(no_such_arg=1)", "cannot build"),
        ("StandardScaler", "last step of the model must be a river classifier"),
    ],
)
def test_malformed_specs_are_rejected_with_a_reason(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(spec)


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty bytes"):
        build_model("GaussianNB").to_bytes(b"")


def test_foreign_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="wrong header"):
        RiverModel.from_bytes(b"\x80\x04junk", b"key")
