"""The one error a feeder raises for anything its user can fix: a file, a flag, a frame."""

from __future__ import annotations


class FeedError(RuntimeError):
    """A feeder cannot go on; the message says what was wrong and what to do.

    Examples
    --------
    >>> str(FeedError("no such file: x.csv"))
    'no such file: x.csv'
    """
