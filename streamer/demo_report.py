"""What ``streamer demo`` shows: the prequential accuracy read back from the predictions topic,
a progress line every 2 s, and the summary with what to run next."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

__all__ = ["PredictionScorer", "next_steps", "print_summary", "printer", "progress_lines"]


class PredictionScorer:
    """Prequential accuracy over every item, read back from the predictions topic."""

    def __init__(self, truth: dict[str, int]) -> None:
        self.truth = truth
        self.seen: set[str] = set()
        self.correct = 0

    @property
    def accuracy(self) -> float:
        return self.correct / len(self.seen) if self.seen else 0.0

    async def run(self, consumer: AIOKafkaConsumer, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    message = orjson.loads(record.value)
                    if message["id"] in self.seen:
                        continue  # at-least-once: a re-decided item counts once
                    self.seen.add(message["id"])
                    self.correct += int(message["prediction"] == self.truth.get(message["id"]))


async def progress_lines(service, scorer: PredictionScorer, total: int, say) -> None:
    """Say where the service is every 2 s, until cancelled."""
    last_items, last_time = 0, time.monotonic()
    while True:
        await asyncio.sleep(2.0)
        s = service.status()
        now = time.monotonic()
        rate = (s["items_seen"] - last_items) / (now - last_time)
        last_items, last_time = s["items_seen"], now
        say(f"[{s['items_seen']:>7,}/{total:,}] {rate:7,.0f} items/s | label requests "
            f"{s['label_requests']:,} ({s['spend']:.2%} of items, budget {s['budget']:.0%}) | "
            f"labels applied {s['labels_applied']:,} | model v{s['model_version']} | "
            f"accuracy {scorer.accuracy:.3f}")


def print_summary(summary: dict[str, Any], say) -> None:
    """The demo's summary (:func:`streamer.demo.run_demo`'s result), then what to run next."""
    say("")
    say("=" * 72)
    say(f"demo summary - {summary['stream']}")
    say("=" * 72)
    say(f"items decided          {summary['items']:,} in {summary['elapsed_s']:.1f} s "
        f"({summary['items_per_s']:,.0f} items/s)")
    say(f"label requests         {summary['label_requests']:,} = {summary['query_rate']:.2%} of items "
        f"(budget {summary['budget']:.2%})")
    say(f"labels sent / applied  {summary['labels_sent']:,} / {summary['labels_applied']:,}   "
        f"join outcomes {summary['join_outcomes']}")
    say(f"dead letters           {summary['dead_letters']}")
    race = summary.get("model_race")
    if race:  # the portfolio (the default model): who predicts, and the estimates behind it
        estimates = ", ".join(f"{name} {value:.3f}" for name, value in race["estimates"].items()
                              if value is not None)
        say(f"model                  {summary['model']}: {race['leader']} predicts "
            f"(estimated accuracy {estimates or 'not yet'})")
    say(f"prequential accuracy   {summary['accuracy']:.4f}  every item predicted before its label "
        f"could be known ({summary['policy']})")
    say(f"random sampling        {summary['random_accuracy']:.4f}  the same, asking a random "
        f"{summary['random_query_rate']:.2%} of items (offline replay, label delay "
        f"{summary['label_delay_items']} items)")
    gain = summary["accuracy"] - summary["random_accuracy"]
    say(f"difference             {gain:+.4f}")
    if summary["labelled_accuracy"] is not None:
        say(f"on the asked items     {summary['labelled_accuracy']:.4f}  the model's guess for the "
            "items it asked about, before their label")
        say("                               (the items it was least sure of, so not the accuracy "
            "on the stream)")
    say(f"gate threshold         {summary['threshold']:.3f}  the policy score an item must reach "
        f"({summary['policy']}: higher = the")
    say("                               model is less sure); it follows the top few % of scores, "
        "so at a small budget")
    say("                               it sits near 1, higher while ahead of the budget, lower "
        "while behind")
    say("=" * 72)
    for line in next_steps():
        say(line)


def next_steps() -> list[str]:
    """What to run after the demo, with the path the ``streamer`` command really has."""
    command = Path(sys.argv[0])
    here = Path.cwd()
    if command.name == "streamer" and command.parent.is_dir():
        bin_dir = command.parent.resolve()
        shown = bin_dir.relative_to(here) if bin_dir.is_relative_to(here) else bin_dir
        activate = f". {shown}/activate"
    else:
        activate = ". .venv/bin/activate"
    return [
        "next:",
        f"  {activate}      # puts `streamer` on your PATH (or: make shell)",
        "  streamer --help",
        "  docs/getting-started.md, 'Run it yourself': your own broker, service, items and labels",
    ]


def printer(out):
    def say(line: str) -> None:
        print(line, file=out, flush=True)

    return say
