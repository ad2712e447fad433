"""The torch head's novelty bank: the unit rows a scoring process asked for, on its device.

The bank is **process-local state**. It holds the rows *this* process's sampler asked labels
for, so it describes this process's stream, not what the model learned: a learner publishes
its model without it (``to_bytes(key, weights_only=True)``), and a scorer that swaps a
published version in keeps its own bank (:meth:`NoveltyBank.take`, called through
:meth:`TorchHead.adopt_local_state <streamer.models.torch_head.TorchHead.adopt_local_state>`).
A checkpoint of one process (the pickled sampler) keeps it, as its own state.

Novelty is ``(1 - max cosine similarity) / 2`` against the bank -- the scale of
:class:`~streamer.gates.novelty.NoveltyMemory` with ``metric="cosine"`` -- and 1.0 while the
bank is empty.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

try:
    import torch
except ImportError:  # the torch extra is not installed
    torch = None  # type: ignore[assignment]

from streamer.models.torch_ops import host, unit_rows

__all__ = ["NoveltyBank"]

log = logging.getLogger(__name__)

# Most bytes of (query x bank) similarities computed at once, on a CPU and on a GPU.
_CPU_BLOCK_BYTES = 64 * 2**20
_CUDA_BLOCK_BYTES = 2**30


class NoveltyBank:
    """At most ``capacity`` unit rows, kept ``fifo`` (the newest) or as a ``reservoir`` (a
    uniform sample of every row added), as one ``(capacity, d)`` tensor allocated at the first
    :meth:`add` (``d`` from its rows).

    ``seed`` seeds the reservoir's slot draws; ``device`` and ``dtype`` are the head's.
    """

    def __init__(self, capacity: int, policy: str, seed: int, device: torch.device, dtype: torch.dtype) -> None:
        self.capacity, self.policy, self.seed = capacity, policy, seed
        self.device, self.dtype = device, dtype
        self.rng = np.random.default_rng([seed, 1])  # reservoir replacement
        self.rows: torch.Tensor | None = None
        self.size = 0  # rows held
        self.next = 0  # fifo: the slot the next row takes
        self.seen = 0  # rows ever added

    @property
    def width(self) -> int | None:
        """The length of the rows held, ``None`` before the first :meth:`add`."""
        return None if self.rows is None else int(self.rows.shape[1])

    def empty(self) -> NoveltyBank:
        """A new, empty bank with the same settings."""
        return NoveltyBank(self.capacity, self.policy, self.seed, self.device, self.dtype)

    def add(self, X: torch.Tensor) -> None:
        """Add the rows ``X`` (scaled to unit length here); nothing when ``capacity`` is 0."""
        if self.capacity == 0 or X.shape[0] == 0:
            return
        if self.rows is None:
            self.rows = torch.zeros((self.capacity, X.shape[1]), dtype=self.dtype, device=self.device)
        with torch.no_grad():
            Q = unit_rows(X)
            if self.policy == "fifo":
                self._add_fifo(Q)
            else:
                self._add_reservoir(Q)

    def novelty(self, X: torch.Tensor) -> torch.Tensor:
        """``(B,)`` novelty of the rows ``X`` in ``[0, 1]``; 1.0 while the bank is empty."""
        B = X.shape[0]
        if self.rows is None or self.size == 0:
            return torch.ones(B, dtype=self.dtype, device=self.device)
        Q = unit_rows(X)
        bank = self.rows[: self.size]
        block = _CUDA_BLOCK_BYTES if self.device.type == "cuda" else _CPU_BLOCK_BYTES
        step = max(1, block // (bank.element_size() * self.size))
        best = torch.empty(B, dtype=self.dtype, device=self.device)
        for start in range(0, B, step):  # chunks of rows bound the similarity matrix's memory
            best[start : start + step] = (Q[start : start + step] @ bank.T).amax(dim=1)
        return ((1.0 - best) / 2.0).clamp(0.0, 1.0)

    def host_rows(self, width: int) -> np.ndarray:
        """A copy of the rows (``fifo``: oldest first; ``reservoir``: slot order); ``(0, width)``
        when empty."""
        if self.rows is None:
            return np.zeros((0, width))
        rows = host(self.rows[: self.size])
        if self.policy == "fifo" and self.size == self.capacity:
            rows = np.roll(rows, -self.next, axis=0)
        return rows

    # -- process-local state across a model swap ------------------------------------------------

    def refusal(self, other: NoveltyBank, n_features: int | None) -> str | None:
        """Why ``other``'s rows cannot move into this bank (for a model of ``n_features``
        inputs), or ``None`` when they can."""
        if self.capacity == 0:
            return "the new model keeps no novelty bank (memory=0)"
        if (other.capacity, other.policy) != (self.capacity, self.policy):
            return (f"its capacity/policy {other.capacity}/{other.policy} differ from the new "
                    f"model's {self.capacity}/{self.policy}")
        if n_features is not None and other.width != n_features:
            return f"its width {other.width} differs from the new model's {n_features} features"
        return None

    def take(self, other: NoveltyBank) -> None:
        """Move ``other``'s rows, counters and reservoir state here (to this bank's device and
        dtype); ``other`` is left empty. Check :meth:`refusal` first."""
        self.rows = None if other.rows is None else other.rows.to(device=self.device, dtype=self.dtype)
        self.size, self.next, self.seen = other.size, other.next, other.seen
        self.rng.bit_generator.state = other.rng.bit_generator.state
        other.clear()

    def fit_width(self, d: int) -> None:
        """Drop rows that are not ``d`` long (a bank adopted before the model saw data)."""
        if self.rows is not None and self.rows.shape[1] != d:
            log.warning("the novelty bank (%d rows of width %d) does not fit rows of width %d; "
                        "novelty starts empty", self.size, self.rows.shape[1], d)
            self.clear()

    def clear(self) -> None:
        self.rows, self.size, self.next, self.seen = None, 0, 0, 0
        self.rng = np.random.default_rng([self.seed, 1])

    # -- the safe format (streamer.models.torch_state) --------------------------------------------

    def meta(self) -> dict[str, Any]:
        """The counters and the reservoir's generator state, as JSON-ready values."""
        return {"bank_size": self.size, "bank_next": self.next, "bank_seen": self.seen,
                "bank_rng": self.rng.bit_generator.state}

    def restore(self, meta: dict[str, Any], rows: torch.Tensor | None) -> None:
        """Read back :meth:`meta` and the ``size`` rows held (``None``: empty)."""
        self.size, self.next, self.seen = int(meta["bank_size"]), int(meta["bank_next"]), int(meta["bank_seen"])
        self.rng.bit_generator.state = meta["bank_rng"]
        self.rows = None
        if rows is not None:
            self.rows = torch.zeros((self.capacity, rows.shape[1]), dtype=self.dtype, device=self.device)
            self.rows[: rows.shape[0]] = rows

    # -- internals --------------------------------------------------------------------------------

    def _add_fifo(self, Q: torch.Tensor) -> None:
        assert self.rows is not None
        capacity = self.capacity
        if Q.shape[0] > capacity:  # only the newest `capacity` rows would survive anyway
            Q = Q[-capacity:]
        n = Q.shape[0]
        slots = (self.next + torch.arange(n, device=self.device)) % capacity
        self.rows[slots] = Q
        self.next = (self.next + n) % capacity
        self.size = min(self.size + n, capacity)
        self.seen += n

    def _add_reservoir(self, Q: torch.Tensor) -> None:
        """Algorithm R, vectorised: row ``i`` (the ``t``-th ever) takes slot ``j ~ U[0, t)`` if
        ``j < capacity``; of two rows of one batch aimed at one slot the later wins."""
        assert self.rows is not None
        capacity, n = self.capacity, Q.shape[0]
        seen = self.seen + np.arange(1, n + 1)  # 1-based position of each row in the stream
        slots = np.where(seen <= capacity, seen - 1, self.rng.integers(0, seen))
        keep = slots < capacity
        rows, slots = np.flatnonzero(keep), slots[keep]
        _, last = np.unique(slots[::-1], return_index=True)  # the last row aimed at each slot
        chosen = rows[::-1][last]
        index = torch.from_numpy(slots[::-1][last]).to(self.device)
        self.rows[index] = Q[torch.from_numpy(chosen).to(self.device)]
        self.seen += n
        self.size = min(self.seen, capacity)
