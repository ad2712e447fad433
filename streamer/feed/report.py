"""What one feed did: items sent and acknowledged, bad input skipped, time taken."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FeedReport"]

_EXAMPLES = 10


@dataclass
class FeedReport:
    """Totals of one feed, printed at its end and returned to callers.

    Examples
    --------
    >>> report = FeedReport(source="a.csv", topic="items", sent=3, acked=3, elapsed_s=2.0)
    >>> report.skip("line 4: column 'x' is not a number: 'n/a'")
    >>> print(report.summary())
    fed 3 items from a.csv to topic 'items' in 2.0 s (2 items/s), 3 acknowledged; 1 bad skipped:
      line 4: column 'x' is not a number: 'n/a'
    """

    source: str
    topic: str
    sent: int = 0
    acked: int = 0
    skipped: int = 0
    elapsed_s: float = 0.0
    what: str = "items"
    stopped: bool = False
    examples: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def items_per_s(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def skip(self, reason: str) -> None:
        """Count one bad input; the first few are kept to show."""
        self.skipped += 1
        if len(self.examples) < _EXAMPLES:
            self.examples.append(reason)

    def summary(self) -> str:
        """Totals in one line, then the bad inputs skipped (the first ten)."""
        text = (f"fed {self.sent:,} {self.what} from {self.source} to topic {self.topic!r} in "
                f"{self.elapsed_s:.1f} s ({self.items_per_s:,.0f} {self.what}/s), "
                f"{self.acked:,} acknowledged")
        if self.stopped:
            text += " (stopped early by a signal)"
        if not self.skipped:
            return text
        more = f" (first {len(self.examples)} shown)" if self.skipped > len(self.examples) else ""
        return "\n  ".join([f"{text}; {self.skipped:,} bad skipped{more}:", *self.examples])

    def as_dict(self) -> dict[str, Any]:
        """Plain values for ``--json``."""
        return {"source": self.source, "topic": self.topic, "sent": self.sent, "acked": self.acked,
                "skipped": self.skipped, "stopped": self.stopped, "elapsed_s": self.elapsed_s,
                "items_per_s": self.items_per_s, "bad_examples": list(self.examples), **self.extra}
