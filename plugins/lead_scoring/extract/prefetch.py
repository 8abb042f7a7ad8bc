"""Read a source ahead on a thread of its own, so waiting for the next page overlaps the load.

An extract reads pages from the CRM (network wait) and the loader parses and copies them
(CPU and the server's time). In series, each waits for the other; ``prefetched`` keeps up to
``depth`` pages read ahead while the loader works on the current one. Errors of the source are
raised in the consumer, at the point they would have been raised without the thread, and a
consumer that stops early (an error in the load) stops the reader too.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()
_POLL_SECONDS = 0.5


def prefetched(source: Iterable[T], depth: int = 4, name: str = "prefetch") -> Iterator[T]:
    """The items of ``source``, read up to ``depth`` ahead on a daemon thread."""
    ahead: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in source:
                if not offer(item):
                    return
        except BaseException as exc:  # raised again in the consumer
            offer(_Failure(exc))
            return
        offer(_END)

    reader = threading.Thread(target=read, name=name, daemon=True)
    reader.start()
    try:
        while True:
            item = ahead.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        reader.join(timeout=30)


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error
