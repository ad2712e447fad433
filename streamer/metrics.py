"""Prometheus metrics of the service: one registry per service instance, no per-item labels."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streamer.core.decisions import REASONS
from streamer.store.base import JoinOutcome

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_BATCH_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384)
_LABEL_DELAY_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400)
_SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))  # the threshold's [0, 1] scale


class Metrics:
    """All metrics of one service, registered in their own registry (tests run several)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.items = Counter("streamer_items_total", "Items decoded and decided.", registry=r)
        self.decisions = Counter(
            "streamer_decisions_total", "Decisions by reason (skip = not asked).", ["reason"],
            registry=r,
        )
        self.label_requests = Counter(
            "streamer_label_requests_total", "Label requests produced.", registry=r
        )
        self.predictions = Counter(
            "streamer_predictions_total", "Predictions produced.", registry=r
        )
        self.labels = Counter(
            "streamer_labels_total",
            "Labels received, by join outcome: joined, duplicate (already applied), late (after the "
            "pending deadline), unknown (no such pending item), invalid (unusable, dead-lettered).",
            ["outcome"], registry=r,
        )
        self.dead_letters = Counter(
            "streamer_dead_letters_total", "Messages sent to the dead-letter topic.",
            ["source", "reason"], registry=r,
        )
        self.pending_expired = Counter(
            "streamer_pending_expired_total", "Pending items whose deadline passed unlabelled.",
            registry=r,
        )
        self.pending = Gauge(
            "streamer_pending_labels", "Items waiting for their label.", registry=r
        )
        self.budget = Gauge("streamer_budget_ratio", "Configured label budget (share of items).", registry=r)
        self.spend = Gauge(
            "streamer_budget_spend_ratio",
            "Realised share of items asked divided by the budget (1.0 = on budget).",
            registry=r,
        )
        self.threshold = Gauge(
            "streamer_threshold", "Current uncertainty threshold of the budget controller.",
            registry=r,
        )
        self.accuracy = Gauge(
            "streamer_prequential_accuracy",
            "Test-then-train accuracy on labelled items (predicted before learning).", registry=r,
        )
        self.model_version = Gauge(
            "streamer_model_version", "Model version (one step per learned micro-batch).", registry=r
        )
        self.ready = Gauge("streamer_ready", "1 while the service is consuming.", registry=r)
        self.decision_latency = Histogram(
            "streamer_decision_latency_seconds", "Time to decide one micro-batch.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.item_latency = Histogram(
            "streamer_item_latency_seconds",
            "From the item's Kafka timestamp to its decision being acknowledged by the broker.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.loop_lag = Histogram(
            "streamer_event_loop_lag_seconds",
            "How late the event loop ran a 10 ms timer: its stalls (learning, checkpoints, garbage "
            "collection) hold every decision up.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.loop_longest_stall = Gauge(
            "streamer_event_loop_longest_stall_seconds",
            "The event loop's longest stall in the last 30 to 60 seconds.", registry=r,
        )
        self.batch_size = Histogram(
            "streamer_batch_size", "Items per micro-batch.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.label_delay = Histogram(
            "streamer_label_delay_seconds", "From label request to label joined.",
            buckets=_LABEL_DELAY_BUCKETS, registry=r,
        )
        self.checkpoints = Counter(
            "streamer_checkpoints_total",
            "Checkpoints written (model + label offsets + applied ids, one atomic step).",
            registry=r,
        )
        self.checkpoint_failures = Counter(
            "streamer_checkpoint_failures_total", "Checkpoints that could not be written (retried).",
            registry=r,
        )
        self.checkpoint_time = Gauge(
            "streamer_checkpoint_timestamp_seconds", "Unix time of the newest checkpoint.",
            registry=r,
        )
        self.uncommitted_labels = Gauge(
            "streamer_uncommitted_labels",
            "Labels learned but not yet in a checkpoint (re-read from Kafka after a crash).",
            registry=r,
        )
        self.degraded = Gauge(
            "streamer_degraded",
            "1 while a dependency (component=store: Redis) fails and label requests are paused.",
            ["component"], registry=r,
        )
        self.requests_cancelled = Counter(
            "streamer_label_requests_cancelled_total",
            "Asks withdrawn because the pending store could not hold the item (no request sent).",
            registry=r,
        )
        self.backpressure = Gauge(
            "streamer_backpressure",
            "1 while label requests are paused because max_pending items wait for labels.",
            registry=r,
        )
        self.score = Histogram(
            "streamer_score",
            "Query-policy score of each decided item, on the scale of streamer_threshold "
            "(before class balancing and randomisation, where configured); the dashboard's heatmap.",
            buckets=_SCORE_BUCKETS, registry=r,
        )
        self.prequential = Counter(
            "streamer_prequential_labels_total",
            "Labels learned, by whether the model predicted them right just before learning "
            "(result: correct, wrong).",
            ["result"], registry=r,
        )
        # scale-out: which replica learns, and how old the model a scorer picked up was
        self.learner = Gauge(
            "streamer_learner",
            "1 while this replica holds the learner lease (learns and checkpoints), else 0.",
            registry=r,
        )
        self.model_staleness = Histogram(
            "streamer_model_staleness_seconds",
            "Age of a model version the learner published when this scorer started using it.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0), registry=r,
        )
        self.budget_replicas = Gauge(
            "streamer_budget_replicas",
            "Replicas sharing the label budget through the Redis ledger (as of the last sync).",
            registry=r,
        )
        self.global_spend = Gauge(
            "streamer_global_spend_ratio",
            "Labels asked by every replica over labels their budget allowed (1.0 = on budget).",
            registry=r,
        )
        # --model auto: the race of the portfolio's members
        self.member_accuracy = Gauge(
            "streamer_model_member_accuracy",
            "Estimated accuracy over the stream of each member of an auto model (importance-"
            "weighted test-then-train on the labels).", ["member"], registry=r,
        )
        self.member_leads = Gauge(
            "streamer_model_member_leads",
            "1 for the member of an auto model that predicts now, 0 for the others.", ["member"],
            registry=r,
        )
        self.degraded.labels(component="store")
        for result in ("correct", "wrong"):
            self.prequential.labels(result=result)
        for reason in REASONS:
            self.decisions.labels(reason=reason)
        for outcome in JoinOutcome:
            self.labels.labels(outcome=outcome.value)

    def observe_scores(self, scores: dict[str, np.ndarray]) -> None:
        """Observe the score a batch was compared with the threshold on: the policy's
        combined score, or its only signal; nothing while the model cannot rank (cold start).

        >>> m = Metrics()
        >>> m.observe_scores({"margin": np.array([0.1, 0.9])})
        >>> m.observe_scores({"margin": np.array([0.2]), "novelty": np.array([0.4]),
        ...                   "policy": np.array([0.4])})
        >>> m.observe_scores({"margin": np.array([np.nan, 0.5])})
        >>> m.registry.get_sample_value("streamer_score_count")
        4.0
        """
        score = scores.get("policy")
        if score is None and len(scores) == 1:
            (score,) = scores.values()
        if score is not None:  # a NaN has no bucket: never let it stop the items loop
            observe_many(self.score, score[np.isfinite(score)])

    def observe_race(self, race: dict | None) -> None:
        """Publish an auto model's race (:meth:`streamer.models.portfolio.Portfolio.race`).

        >>> m = Metrics()
        >>> m.observe_race({"leader": "a", "estimates": {"a": 0.9, "b": None}})
        >>> m.registry.get_sample_value("streamer_model_member_leads", {"member": "a"})
        1.0
        """
        if not race:
            return
        for member, accuracy in race["estimates"].items():
            if accuracy is not None:
                self.member_accuracy.labels(member=member).set(accuracy)
            self.member_leads.labels(member=member).set(1.0 if member == race["leader"] else 0.0)

    def observe_prequential(self, correct: int, learned: int) -> None:
        """Count ``learned`` labels, ``correct`` of which the model had predicted right."""
        self.prequential.labels(result="correct").inc(correct)
        self.prequential.labels(result="wrong").inc(learned - correct)


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """Observe many values at once: one bucket count per bucket instead of one call per value.

    ``Histogram.observe`` costs about a microsecond in Python, which at 300k items/s is a third
    of the budget. The counts land in the same buckets (``le`` bounds, the first bound not below
    the value) and the sum is the same; exemplars are not recorded.

    >>> from prometheus_client import CollectorRegistry
    >>> h = Histogram("h", "help", buckets=(1, 2), registry=CollectorRegistry())
    >>> observe_many(h, np.array([0.5, 1.0, 1.5, 9.0]))
    >>> [(s.labels.get("le"), s.value) for s in h.collect()[0].samples if s.name == "h_bucket"]
    [('1.0', 2.0), ('2.0', 3.0), ('+Inf', 4.0)]
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None:  # another client version: one by one
        for value in values.tolist():
            histogram.observe(value)
        return
    where = np.searchsorted(np.asarray(bounds), values, side="left")
    counts = np.bincount(where, minlength=len(bounds))
    for i in np.flatnonzero(counts).tolist():
        buckets[i].inc(int(counts[i]))
    total.inc(float(values.sum()))
