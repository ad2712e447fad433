"""``streamer simulate``: offline prequential evaluation with the production ``Sampler``.

Protocol (the one the data README anchors were measured with): every item is predicted by
``Sampler.decide`` before its label may be revealed; only requested labels reach the model, and
only ``label_delay`` items after the item arrived; accuracy counts every item, and an item
predicted while the model knew no class counts as wrong.

Examples
--------
>>> result = run_simulation(None, max_items=300, seed=1)
>>> result["items"], 0.0 <= result["accuracy"] <= 1.0
(300, True)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from streamer.core.sampler import DEFAULT_STRATEGY, STRATEGIES, Sampler
from streamer.data import Batch, iter_csv_batches, synthetic_stream
from streamer.models import DEFAULT_MODEL, build_model

__all__ = ["main", "register", "run_simulation"]

DEFAULT_SYNTHETIC_ITEMS = 20_000
Progress = Callable[[dict[str, Any]], None]


def run_simulation(
    data: str | Path | None,
    *,
    budget: float = 0.05,
    model: str = DEFAULT_MODEL,
    strategy: str = DEFAULT_STRATEGY,
    seed: int = 0,
    max_items: int | None = None,
    label_delay: int = 0,
    batch_size: int = 1,
    progress: Progress | None = None,
    synthetic_items: int = DEFAULT_SYNTHETIC_ITEMS,
) -> dict[str, Any]:
    """Run a prequential active-learning simulation over one stream.

    Parameters
    ----------
    data
        A ``.csv`` / ``.csv.gz`` file, or ``None`` for the synthetic drifting SEA stream.
    budget
        Share of items whose label may be requested.
    model
        Model spec for :func:`streamer.models.build_model`.
    strategy
        One of :data:`streamer.core.sampler.STRATEGIES`.
    seed
        Seeds the model and the sampler (and the synthetic stream).
    max_items
        Stop after this many items.
    label_delay
        A requested label reaches the model this many items after its item arrived
        (0 = right after its batch was decided).
    batch_size
        Items per ``decide`` call.
    progress
        Called with a partial result dict after every batch (throttle on the caller's side).
    synthetic_items
        Length of the synthetic stream when ``data`` is ``None``.

    Returns
    -------
    dict
        ``items, queried, query_rate, budget, accuracy, items_per_s, model, strategy, seed,
        label_delay, data, elapsed_s, asked_by_reason``.
    """
    if label_delay < 0:
        raise ValueError(f"label_delay must be >= 0 items, got {label_delay}")
    if max_items is not None and max_items < 1:
        raise ValueError(f"max_items must be at least 1, got {max_items}")
    sampler = Sampler(build_model(model, seed=seed), budget=budget, strategy=strategy, seed=seed)
    batches = _batches(data, batch_size, seed, synthetic_items)

    pending: deque[tuple[int, np.ndarray, Any]] = deque()  # (reveal_at_item_index, x, y) FIFO
    items = correct = queried = 0
    by_reason: Counter[str] = Counter()
    started = time.perf_counter()

    def reveal(upto: int) -> None:
        """Teach the model every pending label due at or before item index ``upto``."""
        xs, ys = [], []
        while pending and pending[0][0] <= upto:
            _, x, label = pending.popleft()
            xs.append(x)
            ys.append(label)
        if xs:
            sampler.learn(np.vstack(xs), ys)

    for X, y, _names in batches:
        if max_items is not None and items + len(y) > max_items:
            X, y = X[: max_items - items], y[: max_items - items]
        if len(y) == 0:
            break
        decisions = sampler.decide(X)
        correct += sum(p is not None and p == t for p, t in zip(decisions.prediction, y.tolist(), strict=True))
        for i in decisions.asked_indices.tolist():
            # The label exists once its batch is decided; it arrives label_delay items later.
            pending.append((items + len(y) - 1 + label_delay, X[i : i + 1], int(y[i])))
            queried += 1
            by_reason[decisions.reason[i]] += 1
        items += len(y)
        reveal(items - 1)
        if progress is not None:
            progress(_result(items, queried, correct, budget, model, strategy, seed, label_delay,
                             data, time.perf_counter() - started, by_reason))
        if max_items is not None and items >= max_items:
            break

    return _result(items, queried, correct, budget, model, strategy, seed, label_delay, data,
                   time.perf_counter() - started, by_reason)


def _result(
    items: int, queried: int, correct: int, budget: float, model: str, strategy: str, seed: int,
    label_delay: int, data: str | Path | None, elapsed: float, by_reason: Counter[str],
) -> dict[str, Any]:
    return {
        "items": items,
        "queried": queried,
        "query_rate": queried / items if items else 0.0,
        "budget": budget,
        "accuracy": correct / items if items else 0.0,
        "items_per_s": items / elapsed if elapsed > 0 else 0.0,
        "model": model,
        "strategy": strategy,
        "seed": seed,
        "label_delay": label_delay,
        "data": str(data) if data is not None else "synthetic",
        "elapsed_s": elapsed,
        "asked_by_reason": dict(sorted(by_reason.items())),
    }


def _batches(data: str | Path | None, batch_size: int, seed: int, synthetic_items: int) -> Iterator[Batch]:
    if data is None:
        return synthetic_stream(synthetic_items, seed=seed, batch_size=batch_size)
    return iter_csv_batches(data, batch_size=batch_size)


# -- command line ------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``simulate`` subcommand to an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "simulate",
        help="replay a labelled stream through the sampler and report accuracy vs labels used",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", metavar="FILE.csv[.gz]", help="labelled stream (last column 'label')")
    source.add_argument("--synthetic", metavar="N", type=_positive_int,
                        help="use N items of a synthetic drifting SEA stream instead of a file")
    parser.add_argument("--budget", metavar="B", type=float, default=0.05,
                        help="share of items whose label may be requested (default 0.05)")
    parser.add_argument("--model", metavar="M", default=DEFAULT_MODEL,
                        help=f"model spec (default {DEFAULT_MODEL!r})")
    parser.add_argument("--strategy", metavar="S", choices=STRATEGIES, default=DEFAULT_STRATEGY,
                        help=f"one of {', '.join(STRATEGIES)} (default {DEFAULT_STRATEGY})")
    parser.add_argument("--seed", metavar="N", type=int, default=0)
    parser.add_argument("--max-items", metavar="N", type=_positive_int, default=None)
    parser.add_argument("--label-delay", metavar="N", type=int, default=0,
                        help="items between an item and the arrival of its requested label")
    parser.add_argument("--batch-size", metavar="N", type=_positive_int, default=1)
    parser.add_argument("--compare-random", action="store_true",
                        help="also run random sampling at the same budget")
    parser.add_argument("--json", action="store_true",
                        help="print the result as one JSON object on the last line of stdout")
    parser.set_defaults(func=_run_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``simulate`` as a standalone command (the ``streamer`` CLI calls :func:`register`)."""
    parser = argparse.ArgumentParser(prog="streamer")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["simulate", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


def _run_command(args: argparse.Namespace) -> int:
    data = args.data
    kwargs: dict[str, Any] = {
        "budget": args.budget, "model": args.model, "seed": args.seed,
        "max_items": args.max_items, "label_delay": args.label_delay,
        "batch_size": args.batch_size,
    }
    if args.synthetic is not None:
        kwargs["synthetic_items"] = args.synthetic
    try:
        result = run_simulation(data, strategy=args.strategy,
                                progress=_ProgressPrinter(args.strategy), **kwargs)
        if args.compare_random:
            baseline = run_simulation(data, strategy="random",
                                      progress=_ProgressPrinter("random"), **kwargs)
            result["random_accuracy"] = baseline["accuracy"]
            result["random_query_rate"] = baseline["query_rate"]
    except (ValueError, FileNotFoundError) as exc:
        print(f"streamer simulate: error: {exc}", file=sys.stderr)
        return 2
    _print_summary(result)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


class _ProgressPrinter:
    """Print a progress line on stderr at most every ``every`` seconds."""

    def __init__(self, label: str, every: float = 2.0) -> None:
        self._label, self._every = label, every
        self._last = time.monotonic()

    def __call__(self, partial: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self._last < self._every:
            return
        self._last = now
        print(
            f"[{self._label}] {partial['items']:,} items, {partial['queried']:,} labels "
            f"({partial['query_rate']:.2%}), accuracy {partial['accuracy']:.4f}, "
            f"{partial['items_per_s']:,.0f} items/s",
            file=sys.stderr, flush=True,
        )


def _print_summary(result: dict[str, Any]) -> None:
    lines = [
        f"data        {result['data']}",
        f"model       {result['model']}   strategy {result['strategy']}   seed {result['seed']}",
        f"items       {result['items']:,}   labels {result['queried']:,} "
        f"(query rate {result['query_rate']:.4f}, budget {result['budget']})",
        f"accuracy    {result['accuracy']:.4f}",
    ]
    if "random_accuracy" in result:
        lines.append(
            f"random      {result['random_accuracy']:.4f} "
            f"(query rate {result['random_query_rate']:.4f})"
        )
    lines.append(f"speed       {result['items_per_s']:,.0f} items/s ({result['elapsed_s']:.1f} s)")
    lines.append(f"asked by    {result['asked_by_reason']}")
    print("\n".join(lines), file=sys.stderr)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value
