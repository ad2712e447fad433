"""The model specs every contract test runs against: adding a model = adding one line here."""

from __future__ import annotations

import importlib.util

import pytest

from streamer.models import COMMITTEE_MODEL

_needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="torch heads need the torch extra: pip install 'streamer[torch]'",
)

MODEL_SPECS = [
    # binary-only classifier on a 3-class stream: wrapped in one-vs-rest automatically
    "StandardScaler | LogisticRegression",
    "StandardScaler | SoftmaxRegression",
    "GaussianNB",
    # a tree returns an empty proba dict until it has learned: uniform rows, not errors
    "HoeffdingTreeClassifier(grace_period=50)",
    "HoeffdingAdaptiveTreeClassifier(grace_period=50)",
    "StandardScaler | KNNClassifier(n_neighbors=3)",
    "ARFClassifier(n_models=3)",
    # bagged one-vs-rest logistic regressions: a committee (committee_proba gives its members)
    COMMITTEE_MODEL,
    # portfolios of river members raced on the labels (the leader predicts, or a Hedge vote)
    "auto(members=('logistic', 'gaussian_nb', 'hoeffding_tree'))",
    "auto(members=('softmax', 'gaussian_nb'), vote='hedge')",
    # torch heads (an ensemble scored in one batched pass), skipped without PyTorch
    pytest.param("auto", marks=_needs_torch),
    pytest.param("torch:linear", marks=_needs_torch),
    pytest.param("torch:mlp(hidden=32, heads=4, memory=64)", marks=_needs_torch),
    pytest.param("torch:mlp(hidden=16, heads=3, optimizer='sgd', lr=0.05, memory=16, "
                 "memory_policy='reservoir')", marks=_needs_torch),
]
