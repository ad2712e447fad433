"""``/status``: one replica's counters, budget, model and health as a JSON-ready dict."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from streamer.runtime.labels import model_race

if TYPE_CHECKING:
    from streamer.runtime.service import Service

__all__ = ["service_status"]


def service_status(service: Service) -> dict[str, Any]:
    counts, sampler = service.counts, service.sampler
    snapshot = sampler.snapshot()
    model = sampler.model
    return {
        "ready": service.consuming,
        "uptime_s": round(time.time() - service.started_at, 3),
        "items_seen": counts["items"],
        "label_requests": counts["label_requests"],
        "labels_applied": service.tally.applied,
        "join_outcomes": dict(service.tally.outcomes),
        "dead_letters": counts["dead_letters"],
        "pending": service.backlog.pending,
        "expired": counts["expired"],
        "budget": snapshot["budget"],
        "spend": (counts["label_requests"] / counts["items"]) if counts["items"] else 0.0,
        "spend_ratio": snapshot["spend_ratio"],
        "threshold": snapshot["threshold"],
        "strategy": snapshot["strategy"],
        "policy": snapshot["policy"],
        "promise": snapshot["promise"],
        "in_flight": snapshot["in_flight"],
        "drifts": snapshot["drifts"],
        "asked_by_reason": snapshot["asked_by_reason"],
        "model": getattr(model, "spec", type(model).__name__),
        "model_version": model.version,
        "classes": [str(c) for c in model.classes],
        "model_race": model_race(sampler),
        "labelled_accuracy": service.tally.accuracy,
        "degraded": dict(service.health.degraded),
        "requests_cancelled": counts["requests_cancelled"],
        "forfeited": snapshot["forfeited"],
        "checkpoints": service.checkpoints.status(),
        "consumers": {"items": service.items_watch.status(), "labels": service.labels_watch.status()},
        "role": service.role.role,
        "learner": service.role.learning,
        "model_publication": None if service.publication is None else service.publication.sequence,
        "global_budget": None if service.budget is None else service.budget.status(),
        "error": service.error,
    }
