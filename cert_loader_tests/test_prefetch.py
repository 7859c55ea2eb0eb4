"""The COPY producer thread: items in order, the producer's error in the consumer, nothing left running."""

from __future__ import annotations

import threading

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


def _producer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cert_loader-prefetch"]


def test_leaving_early_stops_the_producer_and_closes_its_source():
    """Leaving the block joins the producer: its source is closed by then, not some time later."""
    closed = threading.Event()

    def source():
        try:
            for i in range(10**9):
                yield i
        finally:
            closed.set()

    closed_on_exit = []
    with pytest.raises(RuntimeError, match="the server refused"):
        try:
            with Prefetch(source(), depth=2) as items:
                assert len(_producer_threads()) == 1
                for item in items:
                    if item == 5:
                        raise RuntimeError("the server refused")
        finally:
            closed_on_exit.append((closed.is_set(), _producer_threads()))
    assert closed_on_exit == [(True, [])]


def test_memory_stays_bounded_by_the_queue_depth():
    produced = []
    overran = threading.Event()

    def source():
        for i in range(100):
            if i == 4:  # 0 taken, 1 and 2 queued, 3 waiting for a slot: a bounded producer is not asked for 4 yet
                overran.set()
            produced.append(i)
            yield i

    with Prefetch(source(), depth=2) as items:
        it = iter(items)
        assert next(it) == 0
        # A chance to overrun (a deadline, not a measurement): an unbounded producer gets there at once.
        assert not overran.wait(0.5), produced
        assert len(produced) <= 4, produced
        assert list(it) == list(range(1, 100))


def test_a_consumer_still_iterating_when_the_block_is_left_ends_its_iteration():
    """A reader thread of the consumer's own (pyarrow's CSV read-ahead) must not wait for ever on a closed prefetch."""
    def source():
        yield 0
        threading.Event().wait(0.2)
        yield from range(1, 10**9)

    finished = threading.Event()
    with Prefetch(source(), depth=2) as items:
        it = iter(items)
        assert next(it) == 0
        consumer = threading.Thread(target=lambda: (list(it), finished.set()), daemon=True)
        consumer.start()
        threading.Event().wait(0.05)
    assert finished.wait(10), "the consumer thread is still waiting on the closed prefetch"

