"""Gates: scores and budget rules that turn a batch of items into ask/skip decisions.

Every building block here is batch-native (numpy in, numpy out) and knows nothing of Kafka,
Redis or the service loop; :class:`~streamer.core.sampler.Sampler` composes them.
"""

from __future__ import annotations

from streamer.gates.committee import DISAGREEMENTS, mean_kl, vote_entropy
from streamer.gates.drift import BoostSchedule, DriftDetector
from streamer.gates.novelty import NoveltyMemory
from streamer.gates.rules import (
    RULES,
    BudgetRule,
    EmaThreshold,
    FixedThreshold,
    QuantileThreshold,
    RandomizedVariableUncertainty,
    SelectiveSampling,
    Split,
    VariableUncertainty,
)

__all__ = [
    "DISAGREEMENTS",
    "RULES",
    "BoostSchedule",
    "BudgetRule",
    "DriftDetector",
    "EmaThreshold",
    "FixedThreshold",
    "NoveltyMemory",
    "QuantileThreshold",
    "RandomizedVariableUncertainty",
    "SelectiveSampling",
    "Split",
    "VariableUncertainty",
    "mean_kl",
    "vote_entropy",
]
