"""Read, convert and encode the next COPY chunks in a producer thread while the connection sends the current one.

Without it, the client's work (parquet, Arrow casts, pgpq encoding: ~0.35 s per 1M rows of 12 columns)
adds to the server's time instead of overlapping with it (issue 6). The queue is short, so memory stays
flat whatever the file size: at most ``depth`` encoded batches wait, plus the one being encoded.
"""

from __future__ import annotations

import queue
import threading
from typing import Generic, Iterator, TypeVar

T = TypeVar("T")

# Encoded batches waiting to be sent: two keep the connection busy (one being written, one ready)
# while the producer works on the third; ~2 MB each at 16k rows of 12 columns (issue 6).
PREFETCH_DEPTH = 2

_END = object()


class Prefetch(Generic[T]):
    """Iterate ``source`` in a daemon thread; the consumer gets its items, or its exception, in order.

    Use as a context manager: leaving the block (normally or on an error in the consumer) stops the
    producer at its next item and joins it, so no thread outlives the COPY it fed.
    """

    def __init__(self, source: Iterator[T], *, depth: int = PREFETCH_DEPTH, name: str = "cert_loader-prefetch") -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, source: Iterator[T]) -> None:
        try:
            for item in source:
                if not self._put((True, item)):
                    return
            self._put((False, _END))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._put((False, exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # a generator's finally (closing the parquet reader) runs here, in its own thread

    def __iter__(self) -> Iterator[T]:
        while True:
            ok, item = self._queue.get()
            if ok:
                yield item
            elif item is _END:
                return
            else:
                raise item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        # A consumer still waiting on the queue would wait forever: pyarrow's CSV reader reads ahead on its
        # own thread, and one left blocked here hangs the interpreter's exit (the backup's capture of a
        # table whose first block is refused). End its iteration instead; the caller is already leaving.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put_nowait((False, _END))

    def __enter__(self) -> "Prefetch[T]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
