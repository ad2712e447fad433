"""The service runtime, one module per concern, wired by :class:`~streamer.runtime.service.Service`.

========================  ==========================================================
``service``               the façade: lifecycle, consumers, the loops that drive the rest
``items``                 decode, decide, store the asked items, emit
``outputs``               label requests, predictions, dead letters (ack futures)
``commits``               commit only what the broker acknowledged, in batch order
``labels``                decode, join, learn; classes refused beyond the limits
``checkpoints``           label positions, applied ids, the fenced checkpoint
``clients``               where the consumers and the producer come from (Kafka or the memory bus)
``learner``               wait for the lease, take over from the checkpoint, read every labels partition
``lease``                 the learner role and its lease
``publication``           the learner publishes, scorers swap models in
``ledger``                the deployment's shared label budget
``backlog``               pending items: expiry, count, backpressure
``health``                degraded mode and the store retry
``consume``               the poll loop both consumers share
``status``                ``/status``
``memory_bus``            an in-memory consumer and producer for fast, deterministic tests
========================  ==========================================================
"""

from __future__ import annotations

from streamer.runtime.service import Service
from streamer.store.errors import StoreRefusedError

__all__ = ["Service", "StoreRefusedError"]
