"""Scoring throughput of the torch head's one-pass scores: numpy vs torch on CPU vs CUDA, one run.

The pass, for a batch of ``B`` items of ``d = 512`` features (float32 everywhere): standardise,
the ``K = 8`` MLP heads (hidden 128, 10 classes), their mean probabilities, the entropy, the
vote-entropy disagreement of the 8 members, and the novelty of each item against a bank of
100,000 remembered unit vectors of 512 (``(1 - max cosine) / 2``). Three implementations:

- ``numpy``: the same pass written here with numpy (float32, one BLAS call per layer, the bank
  product in chunks of about 64 MB, as the head does on a CPU) -- the baseline;
- ``torch-cpu``: :meth:`streamer.models.torch_head.TorchHead.score_batch` with
  ``device="cpu", dtype="float32"``;
- ``torch-cuda``: the same head on the GPU (when torch sees one), numpy in and numpy out, so
  the host-to-device copy of the batch is counted.

Items/s is ``B`` over the median time of ``--repeats`` calls (after a warm-up call on a small
batch). The ratios ``torch-cpu / numpy`` (and CUDA's) come from the same run. The numpy and torch
outputs are compared on the first batch (``max_abs_diff``), so the baseline computes the same
thing. Writes ``benchmarks/results/torch_head.json`` and prints a table.

Usage::

    python benchmarks/torch_head.py                        # the full run (B = 1k, 4k, 16k, 64k)
    python benchmarks/torch_head.py --quick --out /tmp/t.json   # a smoke run (d = 64, bank 2,000)
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import Start, machine, write_result  # noqa: E402

from streamer.models.torch_head import TorchHead  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "torch_head.json"
TERMS = ("entropy", "disagreement", "novelty")
KEY = b"benchmark"
FULL = {"dim": 512, "bank": 100_000, "batches": [1_000, 4_000, 16_000, 64_000], "repeats": 3}
QUICK = {"dim": 64, "bank": 2_000, "batches": [256, 1_024], "repeats": 2}
HEADS, HIDDEN, CLASSES = 8, 128, 10
CHUNK_BYTES = 64 * 2**20  # the head's CPU bound on one block of (query x bank) similarities


def build_head(dim: int, bank: int, seed: int = 0) -> TorchHead:
    """A CPU float32 head that has seen 2,000 items, learned 200 labels and remembers ``bank`` rows."""
    rng = np.random.default_rng(seed)
    head = TorchHead("mlp", hidden=HIDDEN, heads=HEADS, memory=bank, device="cpu", dtype="float32",
                     steps=1, seed=seed)
    centres = rng.normal(0.0, 1.0, (CLASSES, dim))
    y = rng.integers(0, CLASSES, 2_000)
    X = (centres[y] + rng.normal(0.0, 1.0, (2_000, dim))).astype(np.float32)
    head.observe(X)
    head.learn(X[:200], y[:200].tolist())
    for start in range(0, bank, 10_000):
        rows = min(10_000, bank - start)
        head.remember(rng.normal(0.0, 1.0, (rows, dim)).astype(np.float32))
    return head


class NumpyPass:
    """The head's scoring pass in numpy, float32, from a snapshot of its weights and bank."""

    def __init__(self, head: TorchHead) -> None:
        p = {name: t.numpy().astype(np.float32) for name, t in head._params.items()}
        K, d, h = p["w1"].shape
        self.w1 = np.ascontiguousarray(p["w1"].transpose(1, 0, 2).reshape(d, K * h))  # all heads, one GEMM
        self.b1 = p["b1"].reshape(K * h)
        self.w2, self.b2 = p["w2"], p["b2"][:, None, :]
        self.K, self.h = K, h
        var = head._m2.numpy() / head._count
        self.mean = head._mean.numpy().astype(np.float32)
        self.std = np.where(var > 0, np.sqrt(var), 1.0).astype(np.float32)
        self.bank_t = np.ascontiguousarray(head.memory_rows().astype(np.float32).T)  # (d, M)

    def __call__(self, X: np.ndarray) -> dict[str, np.ndarray]:
        B = X.shape[0]
        Z = (X - self.mean) / self.std
        hidden = np.maximum(Z @ self.w1 + self.b1, 0.0).reshape(B, self.K, self.h).transpose(1, 0, 2)
        logits = np.matmul(hidden, self.w2) + self.b2  # (K, B, C)
        logits -= logits.max(axis=2, keepdims=True)
        members = np.exp(logits)
        members /= members.sum(axis=2, keepdims=True)
        P = members.mean(axis=0)
        C = P.shape[1]
        entropy = np.clip(-_xlogx(P).sum(axis=1) / np.float32(math.log(C)), 0.0, 1.0)
        hard = (members == members.max(axis=2, keepdims=True)).astype(np.float32)
        hard /= hard.sum(axis=2, keepdims=True)
        votes = hard.mean(axis=0)
        js = -_xlogx(votes).sum(axis=1) + _xlogx(hard).sum(axis=2).mean(axis=0)
        disagreement = np.clip(js / np.float32(math.log(min(self.K, C))), 0.0, 1.0)
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        Q = np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)
        best = np.empty(B, dtype=np.float32)
        step = max(1, CHUNK_BYTES // (4 * self.bank_t.shape[1]))
        for start in range(0, B, step):
            best[start : start + step] = (Q[start : start + step] @ self.bank_t).max(axis=1)
        novelty = np.clip((1.0 - best) / 2.0, 0.0, 1.0)
        return {"proba": P, "entropy": entropy, "disagreement": disagreement, "novelty": novelty}


def _xlogx(P: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(P > 0, P * np.log(P), 0.0).astype(np.float32)


def items_per_s(score: Callable[[np.ndarray], Any], X: np.ndarray, repeats: int) -> float:
    """``B`` over the median of ``repeats`` timed calls, after one warm-up call on 256 rows."""
    score(X[:256])
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        score(X)
        times.append(time.perf_counter() - started)
    return X.shape[0] / statistics.median(times)


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return max(float(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)).max())
               for k in ("proba", *TERMS))


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    plan = dict(QUICK if args.quick else FULL)
    if args.batches:
        plan["batches"] = args.batches
    if args.repeats:
        plan["repeats"] = args.repeats
    if args.threads:
        torch.set_num_threads(args.threads)
    dim, bank = plan["dim"], plan["bank"]
    head = build_head(dim, bank)
    reference = NumpyPass(head)
    cuda = None
    if torch.cuda.is_available() and not args.no_cuda:
        cuda = TorchHead.from_bytes(head.to_bytes(KEY), KEY, device="cuda")

    def cpu_pass(X: np.ndarray) -> dict[str, np.ndarray]:
        return head.score_batch(X, terms=TERMS)

    def cuda_pass(X: np.ndarray) -> dict[str, np.ndarray]:
        assert cuda is not None
        return cuda.score_batch(X, terms=TERMS)

    rng = np.random.default_rng(1)
    rows = []
    agreement: dict[str, float] = {}
    for B in plan["batches"]:
        X = rng.normal(0.0, 1.0, (B, dim)).astype(np.float32)
        if not agreement:
            expected = reference(X)
            agreement["torch_cpu_vs_numpy"] = max_abs_diff(cpu_pass(X), expected)
            if cuda is not None:
                agreement["torch_cuda_vs_numpy"] = max_abs_diff(cuda_pass(X), expected)
        row: dict[str, Any] = {"batch": B}
        row["numpy_items_per_s"] = items_per_s(reference, X, plan["repeats"])
        row["torch_cpu_items_per_s"] = items_per_s(cpu_pass, X, plan["repeats"])
        row["torch_cpu_over_numpy"] = row["torch_cpu_items_per_s"] / row["numpy_items_per_s"]
        if cuda is not None:
            row["torch_cuda_items_per_s"] = items_per_s(cuda_pass, X, plan["repeats"])
            row["torch_cuda_over_numpy"] = row["torch_cuda_items_per_s"] / row["numpy_items_per_s"]
            row["torch_cuda_over_torch_cpu"] = row["torch_cuda_items_per_s"] / row["torch_cpu_items_per_s"]
        rows.append({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
        print_row(rows[-1], cuda is not None)
    return {
        "benchmark": "torch_head",
        "quick": bool(args.quick),
        "config": {"dim": dim, "bank": bank, "heads": HEADS, "hidden": HIDDEN, "classes": CLASSES,
                   "terms": list(TERMS), "dtype": "float32", "repeats": plan["repeats"]},
        "agreement_max_abs_diff": agreement,
        "rows": rows,
    }


def print_header(with_cuda: bool) -> None:
    cuda = f"{'cuda/s':>14}{'cuda/numpy':>12}" if with_cuda else ""
    print(f"{'batch':>8}{'numpy/s':>14}{'torch-cpu/s':>14}{'cpu/numpy':>11}{cuda}")


def print_row(row: dict[str, Any], with_cuda: bool) -> None:
    line = (f"{row['batch']:>8,}{row['numpy_items_per_s']:>14,.0f}{row['torch_cpu_items_per_s']:>14,.0f}"
            f"{row['torch_cpu_over_numpy']:>11.2f}")
    if with_cuda:
        line += f"{row['torch_cuda_items_per_s']:>14,.0f}{row['torch_cuda_over_numpy']:>12.1f}"
    print(line, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: d = 64, a bank of 2,000, batches 256 and 1,024")
    parser.add_argument("--batches", type=int, nargs="*", help="batch sizes (default 1k 4k 16k 64k)")
    parser.add_argument("--repeats", type=int, help="timed calls per measurement (median)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--no-cuda", action="store_true", help="skip the GPU even if there is one")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output (default benchmarks/results/torch_head.json; --quick writes "
                             "only where --out says)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = Start.now()
    with_cuda = torch.cuda.is_available() and not args.no_cuda
    print(f"torch head scoring pass: {', '.join(('proba', *TERMS))}; items/s (median)")
    print_header(with_cuda)
    report = benchmark(args)
    for name, value in report["agreement_max_abs_diff"].items():
        print(f"  {name}: max |difference| {value:.2e}")
    devices = {"torch_threads": str(torch.get_num_threads()),
               "cuda_device": torch.cuda.get_device_name() if with_cuda else "none"}
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    m = write_result(out, report, started, **devices)["machine"] if out is not None else machine(started, **devices)
    print(f"  on {m['cpu']} ({m['cpu_count']} cores, torch threads {m['torch_threads']}), "
          f"GPU {m['cuda_device']}, commit {m.get('git_commit')}")
    if out is not None:
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
