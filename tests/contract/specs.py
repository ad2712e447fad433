"""The model specs every contract test runs against: adding a model = adding one line here."""

from __future__ import annotations

from streamer.models import COMMITTEE_MODEL

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
]
