"""What the Sampler says about one micro-batch."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from streamer.core.model import Label

# Reasons recorded for every decision. An item that is not asked has reason SKIP.
SKIP = "skip"
COLD_START = "cold_start"  # the model knows fewer than two classes
UNCERTAINTY = "uncertainty"  # margin / entropy / least-confidence decided it
DISAGREEMENT = "disagreement"  # the committee decided it
NOVELTY = "novelty"  # far from every labelled/requested item
MODEL_CHANGE = "model_change"  # its label would move the model most (expected gradient length)
EXPLORE = "explore"  # random exploration share of the budget
RANDOM = "random"  # the random-sampling baseline strategy
CATCH_UP = "catch_up"  # asked to keep the budget spent: the controller fell too far behind
REASONS = (SKIP, COLD_START, UNCERTAINTY, DISAGREEMENT, NOVELTY, MODEL_CHANGE, EXPLORE, RANDOM,
           CATCH_UP)


@dataclass(slots=True)
class Decisions:
    """Decisions for a batch of B items, all arrays aligned with the input rows."""

    ask: np.ndarray  # bool (B,)
    reason: list[str]  # (B,) one of REASONS
    prediction: list[Label | None]  # (B,) None while the model knows no class
    confidence: np.ndarray  # float (B,) max class probability (0 when unknown)
    proba: np.ndarray  # float (B, C)
    classes: list[Label]  # the C column labels of proba
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (B,)
    threshold: float = 0.0  # the budget controller's threshold after this batch
    model_version: int = 0

    def __len__(self) -> int:
        return int(self.ask.shape[0])

    @property
    def asked_indices(self) -> np.ndarray:
        return np.flatnonzero(self.ask)
