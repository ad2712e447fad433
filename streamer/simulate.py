"""``streamer simulate``: offline prequential evaluation with the production ``Sampler``.

Protocol (the one the data README anchors were measured with, :mod:`streamer.prequential`):
every item is predicted by ``Sampler.decide`` before its label may be revealed; only requested
labels reach the model, and only ``label_delay`` items after the item arrived; accuracy counts
every item, and an item predicted while the model knew no class counts as wrong.

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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from streamer.core.budget import DEFAULT_WARMUP_LABELS
from streamer.core.sampler import DEFAULT_POLICY, Sampler
from streamer.data import Batch, iter_csv_batches, synthetic_stream
from streamer.models import DEFAULT_MODEL, build_model
from streamer.prequential import Prequential, prequential

__all__ = ["main", "register", "run_simulation"]

DEFAULT_SYNTHETIC_ITEMS = 20_000
Progress = Callable[[dict[str, Any]], None]


def parse_delay(value: int | float | str) -> tuple[float, str]:
    """``500`` -> (500, "items"); ``"2.5s"`` -> (2.5, "seconds").

    Examples
    --------
    >>> parse_delay("2.5s"), parse_delay("300"), parse_delay(0)
    ((2.5, 'seconds'), (300.0, 'items'), (0.0, 'items'))
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        amount, unit = float(value), "items"
    else:
        text = str(value).strip().lower()
        unit = "seconds" if text.endswith("s") else "items"
        try:
            amount = float(text.rstrip("s"))
        except ValueError:
            raise ValueError(
                f"label delay must be a number of items (500) or seconds (2.5s), got {value!r}"
            ) from None
    if not amount >= 0 or amount != amount or amount == float("inf"):
        raise ValueError(f"label delay must be >= 0 and finite, got {value!r}")
    if unit == "items" and amount != int(amount):
        raise ValueError(f"a label delay in items must be whole, got {value!r} (add 's' for seconds)")
    return amount, unit


def run_simulation(
    data: str | Path | None,
    *,
    budget: float = 0.05,
    model: str = DEFAULT_MODEL,
    policy: str | None = None,
    seed: int = 0,
    max_items: int | None = None,
    label_delay: int | float | str = 0,
    rate: float = 100.0,
    delay_jitter: bool = False,
    batch_size: int = 1,
    progress: Progress | None = None,
    synthetic_items: int = DEFAULT_SYNTHETIC_ITEMS,
    sampler_options: dict[str, Any] | None = None,
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
    policy
        A policy expression (:mod:`streamer.core.policy`) or ``random`` (default
        :data:`~streamer.core.sampler.DEFAULT_POLICY`).
    seed
        Seeds the model and the sampler (and the synthetic stream and the delay jitter).
    max_items
        Stop after this many items.
    label_delay
        When a requested label reaches the model: ``N`` items after its item arrived, or
        ``"Ns"`` seconds after on the stream clock (items arrive at ``rate`` per second).
        0 = right after its batch was decided. Items whose label is in flight are never asked
        again (the simulator gives every item an id).
    rate
        Items per second of the stream clock (for delays in seconds and ``labels_per_second``).
    delay_jitter
        Draw each delay from an exponential distribution with the given mean (annotators do
        not answer in order).
    batch_size
        Items per ``decide`` call.
    progress
        Called with a partial result dict after every batch (throttle on the caller's side).
    synthetic_items
        Length of the synthetic stream when ``data`` is ``None``.
    sampler_options
        More :class:`~streamer.core.sampler.Sampler` keywords (``explore``, ``class_balance``,
        ``drift``, ``labels_per_second``...); ``warmup`` defaults to the service's
        :data:`~streamer.core.budget.DEFAULT_WARMUP_LABELS`.

    Returns
    -------
    dict
        ``items, queried, query_rate, budget, accuracy, items_per_s, model, policy,
        seed, label_delay, data, elapsed_s, asked_by_reason, worst_window_share``.
    """
    delay, unit = parse_delay(label_delay)
    if not rate > 0:
        raise ValueError(f"rate must be a positive number of items per second, got {rate!r}")
    if max_items is not None and max_items < 1:
        raise ValueError(f"max_items must be at least 1, got {max_items}")
    delay_items = delay if unit == "items" else delay * rate
    clock = [0.0]  # the stream clock, seconds
    options = dict(sampler_options or {})
    options.setdefault("clock", lambda: clock[0])
    options.setdefault("warmup", DEFAULT_WARMUP_LABELS)  # as the service does by default
    sampler = Sampler(build_model(model, seed=seed), budget=budget, policy=policy, seed=seed,
                      **options)
    name = sampler.policy
    batches = _batches(data, batch_size, seed, synthetic_items)
    jitter = np.random.default_rng(seed + 7919) if delay_jitter else None
    started = time.perf_counter()

    def tick(items: int) -> None:
        clock[0] = items / rate

    def report(run: Prequential, *_: Any) -> None:
        if progress is not None:
            progress(_result(run, budget, model, name, seed, label_delay, data, time.perf_counter() - started))

    run = prequential(sampler, batches, label_delay=delay_items, jitter=jitter, max_items=max_items,
                      before_batch=tick, after_batch=None if progress is None else report)
    result = _result(run, budget, model, name, seed, label_delay, data, time.perf_counter() - started)
    result["worst_window_share"] = worst_window_deviation(run.asked, budget, min(10_000, max(1, run.items)))
    result["not_reasked"] = sampler.snapshot()["not_reasked"]
    return result


def worst_window_deviation(ask: np.ndarray, budget: float, window: int) -> float:
    """Largest relative deviation of the share asked from ``budget`` over any ``window`` items.

    Examples
    --------
    >>> worst_window_deviation(np.array([1, 0, 0, 0, 1, 0, 0, 0], dtype=bool), 0.25, 4)
    0.0
    """
    if ask.shape[0] < window or window < 1:
        return 0.0
    c = np.concatenate([[0], np.cumsum(ask, dtype=np.int64)])
    counts = c[window:] - c[:-window]
    return float(np.abs(counts - budget * window).max() / (budget * window))


def _result(
    run: Prequential, budget: float, model: str, policy: str, seed: int,
    label_delay: int | float | str, data: str | Path | None, elapsed: float,
) -> dict[str, Any]:
    items = run.items
    return {
        "items": items,
        "queried": run.queried,
        "query_rate": run.queried / items if items else 0.0,
        "budget": budget,
        "accuracy": run.accuracy,
        "items_per_s": items / elapsed if elapsed > 0 else 0.0,
        "model": model,
        "policy": policy,
        "seed": seed,
        "label_delay": label_delay,
        "data": str(data) if data is not None else "synthetic",
        "elapsed_s": elapsed,
        "asked_by_reason": dict(sorted(run.by_reason.items())),
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
    parser.add_argument("--policy", metavar="EXPR", default=DEFAULT_POLICY,
                        help="query policy, e.g. 'margin', 'margin or novelty', 'random' "
                             f"(default {DEFAULT_POLICY!r})")
    parser.add_argument("--explore", metavar="E", type=float, default=0.1,
                        help="share of the budget spent on random items (default 0.1)")
    parser.add_argument("--warmup-labels", metavar="N", type=int, default=DEFAULT_WARMUP_LABELS,
                        help="labels that may be asked ahead of the budget at the start, "
                             f"repaid afterwards (default {DEFAULT_WARMUP_LABELS}, as the service)")
    parser.add_argument("--class-balance", metavar="S", type=float, default=0.0,
                        help="raise the ask rate for rare predicted classes (0 = off)")
    parser.add_argument("--drift-boost", action="store_true",
                        help="ask more right after a drift of the error, paid back later")
    parser.add_argument("--labels-per-second", metavar="R", type=float, default=None,
                        help="cap labels per second of the stream clock (token bucket)")
    parser.add_argument("--rate", metavar="R", type=float, default=100.0,
                        help="items per second of the stream clock (default 100)")
    parser.add_argument("--seed", metavar="N", type=int, default=0)
    parser.add_argument("--max-items", metavar="N", type=_positive_int, default=None)
    parser.add_argument("--label-delay", metavar="N|Ts", type=_delay_arg, default=0,
                        help="delay of a requested label: N items, or T seconds of the stream "
                             "clock ('2.5s'); items whose label is in flight are not asked again")
    parser.add_argument("--delay-jitter", action="store_true",
                        help="exponentially distributed delays with that mean")
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
        "batch_size": args.batch_size, "rate": args.rate, "delay_jitter": args.delay_jitter,
    }
    options = {"explore": args.explore, "warmup": args.warmup_labels, "class_balance": args.class_balance,
               "drift": args.drift_boost, "labels_per_second": args.labels_per_second}
    if args.synthetic is not None:
        kwargs["synthetic_items"] = args.synthetic
    try:
        result = run_simulation(data, policy=args.policy, sampler_options=options,
                                progress=_ProgressPrinter(args.policy), **kwargs)
        if args.compare_random:
            baseline = run_simulation(data, policy="random",
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
        f"model       {result['model']}   policy {result['policy']}   seed {result['seed']}",
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
    if "worst_window_share" in result:
        lines.append(f"budget      worst window off by {result['worst_window_share']:.2%} (relative)")
    print("\n".join(lines), file=sys.stderr)


def _delay_arg(text: str) -> int | str:
    try:
        amount, unit = parse_delay(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return int(amount) if unit == "items" else text


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value
