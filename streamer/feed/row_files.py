"""Reading sensor files row by row: CSV or JSON Lines, plain or gzip'ed, or stdin.

:func:`read_rows` opens the source, tells its format from the name or the first character,
and yields every line as a :class:`~streamer.feed.rows.Row` or a
:class:`~streamer.feed.rows.BadRow` (:mod:`streamer.feed.rows` says which columns are what);
:func:`count_lines` gives the progress bar its total without parsing.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from streamer.feed.errors import FeedError
from streamer.feed.rows import BadRow, CsvRowDecoder, JsonRowDecoder, Row, RowSpec

__all__ = ["FORMATS", "count_lines", "read_rows"]

FORMATS = ("csv", "jsonl")
_JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_GZIP_MAGIC = b"\x1f\x8b"


class _NotUtf8(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _TextLines:
    """Binary lines as text, counting them; a line that is not UTF-8 raises :class:`_NotUtf8`."""

    def __init__(self, lines: IO[bytes]) -> None:
        self._lines = iter(lines)
        self.number = 0

    def __iter__(self) -> _TextLines:
        return self

    def __next__(self) -> str:
        raw = next(self._lines)
        self.number += 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _NotUtf8(self.number) from None


def _open_binary(source: str | Path) -> IO[bytes]:
    """The decompressed bytes of a file or stdin (``-``); gzip is recognised by its magic."""
    if str(source) == "-":
        raw: IO[bytes] = sys.stdin.buffer
    else:
        path = Path(source)
        if path.is_dir():
            raise FeedError(f"{path} is a folder: give a CSV or JSON Lines file, or - for stdin")
        try:
            raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
        except FileNotFoundError:
            raise FeedError(f"no such file: {path}") from None
        except OSError as exc:
            raise FeedError(f"cannot read {path}: {exc.strerror}") from None
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[arg-type]
    if buffered.peek(2)[:2] == _GZIP_MAGIC:
        return io.BufferedReader(gzip.GzipFile(fileobj=buffered))  # type: ignore[arg-type]
    return buffered


def _format_of(source: str | Path, stream: IO[bytes], fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise FeedError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
        return fmt
    suffixes = [s.lower() for s in Path(str(source)).suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] in _JSONL_SUFFIXES:
        return "jsonl"
    if suffixes and suffixes[-1] in {".csv", ".txt"}:
        return "csv"
    head = stream.peek(64)[:64].lstrip()  # type: ignore[attr-defined]
    return "jsonl" if head.startswith(b"{") else "csv"


def read_rows(
    source: str | Path,
    spec: RowSpec,
    fmt: str | None = None,
    stop: threading.Event | None = None,
) -> Iterator[Row | BadRow]:
    """Rows of a CSV or JSON Lines file (gzip'ed or not), or of stdin when ``source`` is ``-``.

    Blank lines are skipped; every other line yields a :class:`Row` or a :class:`BadRow`.

    Parameters
    ----------
    source
        A file path, or ``-`` for stdin.
    spec
        Which columns are what.
    fmt
        ``csv`` or ``jsonl``; by default from the file name, else from the first character
        (``{`` means JSON Lines).
    stop
        Set it to stop reading at the next row.

    Raises
    ------
    FeedError
        A missing or unreadable file, an empty CSV, or a header that cannot work.
    """
    stream = _open_binary(source)
    try:
        kind = _format_of(source, stream, fmt)
        if kind == "jsonl":
            yield from _jsonl_rows(stream, spec, stop)
        else:
            yield from _csv_rows(stream, spec, stop)
    except OSError as exc:  # a truncated gzip, a vanished file: the rows so far were sent
        raise FeedError(f"cannot read {source}: {exc}") from None
    finally:
        if str(source) != "-":
            stream.close()


def _jsonl_rows(stream: IO[bytes], spec: RowSpec, stop: threading.Event | None) -> Iterator[Row | BadRow]:
    decoder = JsonRowDecoder(spec)
    index = 0
    for line, raw in enumerate(stream, start=1):
        if stop is not None and stop.is_set():
            return
        if not raw.strip():
            continue
        yield decoder.decode(raw, line, index)
        index += 1


def _csv_rows(stream: IO[bytes], spec: RowSpec, stop: threading.Event | None) -> Iterator[Row | BadRow]:
    lines = _TextLines(stream)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
    except (_NotUtf8, csv.Error) as exc:
        raise FeedError(f"the header (line 1) cannot be read: {exc}; is this a CSV file?") from None
    if not header:
        raise FeedError("the file is empty: a CSV needs a header row naming its columns")
    decoder = CsvRowDecoder(header, spec)
    index = 0
    while stop is None or not stop.is_set():
        first = lines.number + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except _NotUtf8 as exc:
            yield BadRow(exc.line, "is not UTF-8 text")
            index += 1
            continue
        except csv.Error as exc:
            yield BadRow(first, f"is not valid CSV: {exc}")
            index += 1
            continue
        if not record:
            continue
        yield decoder.decode(record, first, index)
        index += 1


def count_lines(source: str | Path, fmt: str | None = None,
                max_bytes: int = 256 * 1024 * 1024) -> int | None:
    """Data lines of a file (newlines, less a CSV header) for progress; None when unknowable.

    Unknowable: stdin, and files over ``max_bytes`` on disk (counting would read them twice).
    Blank lines are counted, so this is an upper bound on the rows.
    """
    if str(source) == "-":
        return None
    path = Path(source)
    try:
        if not path.is_file() or path.stat().st_size > max_bytes:
            return None
        with _open_binary(path) as stream:
            kind = _format_of(path, stream, fmt)
            count = 0
            last = b"\n"
            while chunk := stream.read(1 << 20):
                count += chunk.count(b"\n")
                last = chunk[-1:]
    except (OSError, FeedError, EOFError):
        return None
    count += last != b"\n"
    return max(0, count - (kind == "csv"))
