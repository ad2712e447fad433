"""Read a blocking source (a file, stdin, a decoder) in a thread, hand its items to asyncio.

The event loop stays free to send and collect acknowledgements while the thread reads. Items
are handed over in lists: ``batch`` at a time from a file, one at a time from a live source
(stdin, a pipe, a camera) so that a slow source's last item never waits for the next one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Generic, TypeVar

__all__ = ["in_background"]

T = TypeVar("T")
_END = object()


class _Failed(Generic[T]):
    def __init__(self, error: BaseException) -> None:
        self.error = error


async def in_background(
    produce: Callable[[threading.Event], Iterable[T]],
    *,
    batch: int = 1024,
    live: bool = False,
    depth: int = 16,
) -> AsyncIterator[list[T]]:
    """Yield lists of what ``produce(stop)`` iterates, read in a daemon thread.

    Parameters
    ----------
    produce
        Called in the thread with an event that is set when the consumer stops early; it
        should check it between items.
    batch
        Items per list from a non-live source.
    live
        Hand every item over at once (the consumer still gets all items ready, in one list).
    depth
        Lists read ahead at most (memory bound).

    Raises
    ------
    BaseException
        Whatever ``produce`` raised, re-raised in the consumer after the items before it.

    Examples
    --------
    >>> async def first_lists():
    ...     return [items async for items in in_background(lambda stop: range(5), batch=2)]
    >>> asyncio.run(first_lists())
    [[0, 1], [2, 3], [4]]
    """
    loop = asyncio.get_running_loop()
    handoff: asyncio.Queue[object] = asyncio.Queue()
    slots = threading.Semaphore(depth)
    stop = threading.Event()

    def give(thing: object) -> bool:
        while not slots.acquire(timeout=0.1):
            if stop.is_set():
                return False
        try:
            loop.call_soon_threadsafe(handoff.put_nowait, thing)
        except RuntimeError:  # the loop closed: nobody is listening any more
            return False
        return True

    def work() -> None:
        pending: list[T] = []
        try:
            for item in produce(stop):
                if stop.is_set():
                    return
                pending.append(item)
                if live or len(pending) >= batch:
                    if not give(pending):
                        return
                    pending = []
            if pending and not give(pending):
                return
            give(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            if not pending or give(pending):  # the items read before it go first
                give(_Failed(exc))

    thread = threading.Thread(target=work, name="streamer-feed-reader", daemon=True)
    thread.start()
    try:
        while True:
            got = await handoff.get()
            slots.release()
            items: list[T] = []
            while True:
                if got is _END:
                    if items:
                        yield items
                    return
                if isinstance(got, _Failed):
                    if items:
                        yield items
                    raise got.error
                items.extend(got)  # type: ignore[arg-type]
                if handoff.empty() or len(items) >= batch:
                    break
                got = handoff.get_nowait()
                slots.release()
            yield items
    finally:
        stop.set()
