"""Gates: the signals the sampler adds to a model's uncertainty (committee disagreement, drift
detection, novelty, expected model change).

Every building block here is batch-native (numpy in, numpy out) and knows nothing of Kafka,
Redis or the service loop; :class:`~streamer.core.sampler.Sampler` composes them.
"""

from __future__ import annotations

from streamer.gates.committee import DISAGREEMENTS, mean_kl, vote_entropy
from streamer.gates.drift import BoostSchedule, DriftDetector
from streamer.gates.novelty import NoveltyMemory

__all__ = [
    "DISAGREEMENTS",
    "BoostSchedule",
    "DriftDetector",
    "NoveltyMemory",
    "mean_kl",
    "vote_entropy",
]
