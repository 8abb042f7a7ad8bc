"""The read-ahead of source pages: same items in the same order, errors where they belong,
and a reader that stops when its consumer does."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from lead_scoring.extract.prefetch import prefetched


def test_every_page_arrives_once_in_order() -> None:
    assert list(prefetched(iter(range(1_000)), depth=3)) == list(range(1_000))


def test_the_source_reads_ahead_while_the_consumer_works() -> None:
    read: list[int] = []
    ahead = threading.Event()

    def source() -> Iterator[int]:
        for number in range(10):
            read.append(number)
            if number == 3:
                ahead.set()
            yield number

    pages = prefetched(source(), depth=4)
    assert next(pages) == 0
    # the consumer holds page 0; the reader goes on without it
    assert ahead.wait(timeout=10), f"the reader did not read ahead: read {read}"
    assert list(pages) == list(range(1, 10))


def test_an_error_of_the_source_is_raised_after_the_pages_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ConnectionError("page 3: connection reset")

    pages = prefetched(source())
    assert [next(pages), next(pages)] == [1, 2]
    with pytest.raises(ConnectionError, match="page 3"):
        next(pages)


def test_a_consumer_that_stops_stops_the_reader() -> None:
    read: list[int] = []

    def endless() -> Iterator[int]:
        number = 0
        while True:
            read.append(number)
            yield number
            number += 1

    pages = prefetched(endless(), depth=2, name="endless")
    assert next(pages) == 0
    pages.close()  # what a failed load does to its records
    assert not any(t.name == "endless" and t.is_alive() for t in threading.enumerate())
    count = len(read)
    assert count <= 4, read  # the page consumed, two queued, one offered
    time.sleep(0.2)
    assert len(read) == count, "the reader went on reading after its consumer stopped"
