"""The torch head's device kernels: scores of a batch, and the small conversions around them.

Every function takes and returns tensors on one device; none keeps state. PyTorch is an
optional import here as in :mod:`streamer.models.torch_head` (these are only called by a head,
which refuses to exist without it).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

try:
    import torch
except ImportError:  # the torch extra is not installed
    torch = None  # type: ignore[assignment]

from streamer.core.model import Label

__all__ = ["hard_votes", "host", "host_proba", "js_disagreement", "plain_label", "resolve_device",
           "resolve_dtype", "side_by_side", "uncertainty", "unit_rows"]


# -- scores on the device (the definitions of streamer.core.scores / streamer.gates.committee) --


def uncertainty(name: str, P: torch.Tensor) -> torch.Tensor:
    B, C = P.shape
    if C < 2:
        return torch.ones(B, dtype=P.dtype, device=P.device)
    if name == "least-confidence":
        score = (1.0 - P.amax(dim=1)) / (1.0 - 1.0 / C)
    elif name == "margin":
        top2 = P.topk(2, dim=1).values
        score = 1.0 - (top2[:, 0] - top2[:, 1])
    else:  # entropy
        score = -torch.special.xlogy(P, P).sum(dim=1) / math.log(C)
    return score.clamp(0.0, 1.0) + 0.0  # + 0.0 turns -0.0 into 0.0


def side_by_side(Z: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``Z @ W[k] + b[k]`` for every ``k`` as one GEMM: ``(B, d)``, ``(K, d, n)``, ``(K, n)`` -> ``(K, B, n)``."""
    K, d, n = W.shape
    out = torch.addmm(b.reshape(K * n), Z, W.permute(1, 0, 2).reshape(d, K * n))
    return out.view(Z.shape[0], K, n).transpose(0, 1)


def hard_votes(members: torch.Tensor) -> torch.Tensor:
    """Each member's vote as a distribution; a tie splits the vote evenly."""
    hard = (members == members.amax(dim=-1, keepdim=True)).to(members.dtype)
    return hard / hard.sum(dim=-1, keepdim=True)


def js_disagreement(M: torch.Tensor) -> torch.Tensor:
    """``(H(mean_k M_k) - mean_k H(M_k)) / log min(K, C)`` for ``(K, B, C)`` distributions."""
    K, B, C = M.shape
    if K < 2 or C < 2:
        return torch.zeros(B, dtype=M.dtype, device=M.device)
    js = (-torch.special.xlogy(M.mean(dim=0), M.mean(dim=0)).sum(dim=-1)
          + torch.special.xlogy(M, M).sum(dim=-1).mean(dim=0))
    return (js / math.log(min(K, C))).clamp(0.0, 1.0) + 0.0


def unit_rows(X: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length; a zero row stays zero (orthogonal to everything)."""
    norms = torch.linalg.vector_norm(X, dim=1, keepdim=True)
    return torch.where(norms > 0, X / torch.where(norms > 0, norms, torch.ones_like(norms)), 0.0)


# -- host copies, devices, labels -------------------------------------------------------------


def host(t: torch.Tensor) -> np.ndarray:
    """A float64 numpy copy (a CPU tensor's ``numpy()`` would share its memory)."""
    return t.detach().cpu().numpy().astype(np.float64, copy=True)


def host_proba(t: torch.Tensor) -> np.ndarray:
    """Probabilities as float64 rows that sum to 1 (a float32 softmax is off by up to ~1e-7)."""
    out = host(t)
    if t.dtype != torch.float64 and out.shape[-1]:
        out /= out.sum(axis=-1, keepdims=True)
    return out


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu' or 'cuda[:N]'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU here; use device='auto' or 'cpu'")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r} is not supported; use 'auto', 'cpu' or 'cuda[:N]'")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.float64 if device.type == "cpu" else torch.float32
    return torch.float64 if name == "float64" else torch.float32


def plain_label(label: Any) -> Label:
    value = label.item() if isinstance(label, np.generic) else label
    if isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise ValueError(
        f"labels must be int or str (also bool or a finite float), got {value!r} of type "
        f"{type(value).__name__}"
    )
