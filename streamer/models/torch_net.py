"""The torch head's network and its online training: ``K`` members' weights as stacked tensors.

:class:`HeadNetwork` holds what a :class:`~streamer.models.torch_head.TorchHead` *learns* --
the members' weights, Adam's moments, the input scaler, the replay buffer and the classes --
and the batched forward pass and gradient steps over them (the method is described in
:mod:`streamer.models.torch_head`). It is the part a learner publishes; the head adds the
scores, the novelty bank and the state format on top.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

try:
    import torch
except ImportError:  # the torch extra is not installed
    torch = None  # type: ignore[assignment]

from streamer.core.checks import as_batch
from streamer.core.model import Label, with_class
from streamer.models.torch_config import HeadConfig
from streamer.models.torch_ops import host, plain_label, resolve_device, resolve_dtype, side_by_side

__all__ = ["HeadNetwork"]

_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


class HeadNetwork:
    """The weights of ``config.heads`` linear or MLP members, learned online (needs PyTorch).

    The weights are allocated at the first rows, when their width ``d`` is known.
    """

    def __init__(self, config: HeadConfig) -> None:
        self.config = config
        self.device = resolve_device(self.config.device)
        self.dtype = resolve_dtype(self.config.dtype, self.device)
        self._np_dtype = np.float64 if self.dtype == torch.float64 else np.float32
        self.classes: list[Label] = []
        self.n_features: int | None = None
        self.version = 0
        self._rng = np.random.default_rng([self.config.seed, 0])  # initial weights, replay draws, bootstrap
        self._params: dict[str, torch.Tensor] = {}
        self._moments: dict[str, torch.Tensor] = {}  # Adam: "m.<param>" and "v.<param>"
        self._t = 0  # Adam steps taken
        self._count = 0  # items observed by the scaler
        self._mean: torch.Tensor | None = None
        self._m2: torch.Tensor | None = None
        self._replay_x: torch.Tensor | None = None
        self._replay_y: torch.Tensor | None = None
        self._replay_size = 0
        self._replay_next = 0

    def observe(self, X: np.ndarray) -> None:
        """Update the running mean and variance that standardise the inputs, from every item."""
        Xt = self._tensor(self._array(X))
        b = Xt.shape[0]
        if b == 0:
            return
        assert self._mean is not None and self._m2 is not None
        with torch.no_grad():
            n = self._count
            mean_b = Xt.mean(dim=0)
            m2_b = ((Xt - mean_b) ** 2).sum(dim=0)
            delta = mean_b - self._mean
            total = n + b
            self._mean = self._mean + delta * (b / total)
            self._m2 = self._m2 + m2_b + delta**2 * (n * b / total)
            self._count = total

    def learn(self, X: np.ndarray, y: Sequence[Label]) -> None:
        """Learn from labelled rows, one after the other (see :mod:`streamer.models.torch_head`).

        Raises
        ------
        ValueError
            Rows and labels differ in number, or a label is not an int, str, bool or float.
        """
        arr = self._array(X)
        labels = [plain_label(label) for label in y]
        if len(labels) != arr.shape[0]:
            raise ValueError(f"got {arr.shape[0]} rows but {len(labels)} labels; pass one label per row")
        if not labels:
            return
        Xt = self._tensor(arr)
        for i, label in enumerate(labels):
            c = self._add_class(label)
            row = Xt[i : i + 1]
            if len(self.classes) >= 2:  # one class: a softmax over one column has nothing to learn
                for _ in range(self.config.steps):
                    self._step(row, c)
            self._push_replay(row, c)
        self.version += 1

    def replay_rows(self) -> tuple[np.ndarray, list[Label]]:
        """A copy of the replay buffer, oldest first: its rows and their labels."""
        if self._replay_x is None or self._replay_y is None or self._replay_size == 0:
            return np.zeros((0, self.n_features or 0)), []
        order = np.arange(self._replay_size)
        if self._replay_size == self.config.replay:
            order = np.roll(order, -self._replay_next)
        rows = host(self._replay_x[: self._replay_size])[order]
        labels = [self.classes[int(c)] for c in self._replay_y[: self._replay_size].cpu().numpy()[order]]
        return rows, labels

    # -- internals: shapes and the forward pass ------------------------------------------------

    def _array(self, X: np.ndarray) -> np.ndarray:
        arr = as_batch(X, self.n_features, self._np_dtype)
        d = arr.shape[1]
        if self.n_features is None:
            if d < 1:
                raise ValueError("X has no feature columns; the model needs at least one")
            self.n_features = d
            self._allocate(d)
        if not np.isfinite(arr).all():
            raise ValueError("X contains NaN or infinite values; impute or drop those rows")
        return arr

    def _tensor(self, arr: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=self._np_dtype)).to(self.device)

    def _allocate(self, d: int) -> None:
        """Initial weights (one draw per member), optimizer state, scaler and replay buffer."""
        K, h = self.config.heads, self.config.hidden
        if self.config.kind == "linear":
            shapes = {"w": (K, d, 0), "b": (K, 0)}
        else:
            shapes = {"w1": (K, d, h), "b1": (K, h), "w2": (K, h, 0), "b2": (K, 0)}
        for name, shape in shapes.items():
            self._params[name] = self._init(shape) if len(shape) == 3 else self._zeros(shape)
            if self.config.optimizer == "adam":
                self._moments[f"m.{name}"] = self._zeros(shape)
                self._moments[f"v.{name}"] = self._zeros(shape)
        self._mean = self._zeros((d,))
        self._m2 = self._zeros((d,))
        R = self.config.replay
        self._replay_x = self._zeros((R, d))
        self._replay_y = torch.zeros(R, dtype=torch.int64, device=self.device)

    def _init(self, shape: tuple[int, int, int]) -> torch.Tensor:
        """He-normal weights for ``(K, fan_in, fan_out)``, drawn on the host: the same on any device."""
        values = self._rng.normal(0.0, math.sqrt(2.0 / shape[1]), size=shape)
        return torch.from_numpy(values.astype(self._np_dtype)).to(self.device)

    def _zeros(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.zeros(shape, dtype=self.dtype, device=self.device)

    def _standardised(self, Xt: torch.Tensor) -> torch.Tensor:
        if self._count == 0:
            return Xt
        assert self._mean is not None and self._m2 is not None
        var = self._m2 / self._count
        std = torch.where(var > 0, var.sqrt(), torch.ones_like(var))
        return (Xt - self._mean) / std

    def _logits(self, Z: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(K, B, C)`` logits of every member for the standardised rows ``Z`` ``(B, d)``.

        Every member reads the same rows, so the first layer of all ``K`` members is one GEMM
        against their weights side by side (``(d, K * h)``); the MLP's second layer is one
        batched GEMM over the members.
        """
        if "w" in params:
            return side_by_side(Z, params["w"], params["b"])
        hidden = torch.relu(side_by_side(Z, params["w1"], params["b1"]))
        return torch.baddbmm(params["b2"][:, None, :], hidden, params["w2"])

    def _members(self, Xt: torch.Tensor) -> torch.Tensor:
        """``(K, B, C)`` member probabilities; ``(K, B, 0)`` before any class is known."""
        K, C = self.config.heads, len(self.classes)
        if C == 0:
            return torch.zeros((K, Xt.shape[0], 0), dtype=self.dtype, device=self.device)
        return torch.softmax(self._logits(self._standardised(Xt), self._params), dim=-1)

    # -- internals: learning ------------------------------------------------------------------

    def _step(self, row: torch.Tensor, c: int) -> None:
        """One gradient step of every member on ``row`` plus replayed rows, Poisson-weighted."""
        cfg = self.config
        X = row
        y = torch.tensor([c], dtype=torch.int64, device=self.device)
        n_replay = min(cfg.replay_batch, self._replay_size)
        if n_replay:
            assert self._replay_x is not None and self._replay_y is not None
            idx = torch.from_numpy(self._rng.integers(0, self._replay_size, n_replay)).to(self.device)
            X = torch.cat([row, self._replay_x[idx]])
            y = torch.cat([y, self._replay_y[idx]])
        K, n = cfg.heads, X.shape[0]
        if cfg.bootstrap:
            weights = torch.from_numpy(self._rng.poisson(1.0, (K, n)).astype(self._np_dtype)).to(self.device)
        else:
            weights = torch.ones((K, n), dtype=self.dtype, device=self.device)
        leaves = {name: p.detach().requires_grad_(True) for name, p in self._params.items()}
        with torch.enable_grad():
            logp = torch.log_softmax(self._logits(self._standardised(X), leaves), dim=-1)
            nll = -logp.gather(2, y.expand(K, n)[:, :, None])[:, :, 0]
            loss = (weights * nll).sum() / n  # members have separate weights: one sum for all
            grads = torch.autograd.grad(loss, list(leaves.values()))
        with torch.no_grad():
            self._apply(dict(zip(leaves, grads, strict=True)))

    def _apply(self, grads: dict[str, torch.Tensor]) -> None:
        cfg = self.config
        if cfg.optimizer == "adam":
            self._t += 1
            b1, b2 = _ADAM_BETAS
            c1, c2 = 1.0 - b1**self._t, 1.0 - b2**self._t
        for name, g in grads.items():
            p = self._params[name]
            if cfg.weight_decay:
                g = g + cfg.weight_decay * p
            if cfg.optimizer == "sgd":
                p.sub_(cfg.lr * g)
                continue
            m, v = self._moments[f"m.{name}"], self._moments[f"v.{name}"]
            m.mul_(b1).add_(g, alpha=1.0 - b1)
            v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
            p.sub_(cfg.lr * (m / c1) / ((v / c2).sqrt() + _ADAM_EPS))

    def _push_replay(self, row: torch.Tensor, c: int) -> None:
        R = self.config.replay
        if R == 0:
            return
        assert self._replay_x is not None and self._replay_y is not None
        self._replay_x[self._replay_next] = row[0]
        self._replay_y[self._replay_next] = c
        self._replay_next = (self._replay_next + 1) % R
        self._replay_size = min(self._replay_size + 1, R)

    def _add_class(self, label: Label) -> int:
        """The column of ``label``; a new class gets a new output column at its sorted place."""
        if label in self.classes:
            return self.classes.index(label)
        classes = with_class(self.classes, label)
        j = classes.index(label)
        K = self.config.heads
        for name in ("w", "b") if self.config.kind == "linear" else ("w2", "b2"):
            p = self._params[name]
            column = self._init((K, p.shape[1], 1)) if p.dim() == 3 else self._zeros((K, 1))
            self._params[name] = torch.cat([p[..., :j], column, p[..., j:]], dim=-1)
            for moment in ("m", "v"):
                key = f"{moment}.{name}"
                if key in self._moments:
                    old = self._moments[key]
                    self._moments[key] = torch.cat([old[..., :j], torch.zeros_like(column), old[..., j:]], dim=-1)
        if self._replay_y is not None:
            self._replay_y[self._replay_y >= j] += 1
        self.classes = classes
        return j
