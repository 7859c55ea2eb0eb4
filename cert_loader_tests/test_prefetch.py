"""The COPY producer thread: items in order, the producer's error in the consumer, nothing left running."""

from __future__ import annotations

import threading
import time

import pytest

from cert_loader.stores.prefetch import Prefetch


def test_items_arrive_in_order_and_the_thread_ends():
    with Prefetch(iter(range(1000)), depth=2) as items:
        assert list(items) == list(range(1000))
    assert not any(t.name == "cert_loader-prefetch" for t in threading.enumerate())


def test_the_producers_error_is_raised_in_the_consumer_after_the_items_before_it():
    def source():
        yield 1
        yield 2
        raise ValueError("row 3: bad value")

    seen = []
    with pytest.raises(ValueError, match="row 3: bad value"), Prefetch(source()) as items:
        for item in items:
            seen.append(item)
    assert seen == [1, 2]


def test_leaving_early_stops_the_producer_and_closes_its_source():
    closed = threading.Event()

    def source():
        try:
            for i in range(10**9):
                yield i
        finally:
            closed.set()

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="the server refused"), Prefetch(source(), depth=2) as items:
        for item in items:
            if item == 5:
                raise RuntimeError("the server refused")
    assert closed.wait(5) and time.monotonic() - started < 5
    assert not any(t.name == "cert_loader-prefetch" for t in threading.enumerate())


def test_memory_stays_bounded_by_the_queue_depth():
    produced = []

    def source():
        for i in range(100):
            produced.append(i)
            yield i

    with Prefetch(source(), depth=2) as items:
        it = iter(items)
        assert next(it) == 0
        time.sleep(0.2)  # the producer runs ahead only as far as the queue allows
        assert len(produced) <= 4
        assert list(it) == list(range(1, 100))
