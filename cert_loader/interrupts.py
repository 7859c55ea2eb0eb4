"""Stop requests (Dagster's terminate, Ctrl-C, SIGTERM) held back across the commit, so a stop never splits a decided load (DESIGN.md section 5).

Dagster terminates a run by sending SIGINT to its run worker; while user code runs, Dagster's handler
raises ``DagsterExecutionInterruptedError`` in the main thread (SIGTERM is mapped to the same handler).
Outside the commit that exception simply rolls every store back. Inside it — from the first PREPARE to
the last COMMIT PREPARED — the signal is held: raised at the decision point if it came before the
decision (every store still rolls back), only recorded if it came after (the load completes). The
handler that raises is whatever was installed, so the engine needs no Dagster import.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

# The signals that mean "stop the load": SIGINT is what Dagster's run termination and Ctrl-C send,
# SIGTERM what a process manager sends (Dagster maps it to its SIGINT handler).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class HeldInterrupts:
    """The stop signals replaced by a recorder; ``received`` is the first one that came, if any."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._saved: dict[int, object] = {}

    def _record(self, signum: int, _frame) -> None:
        if self.received is None:
            self.received = signum

    def hold(self) -> None:
        # Handlers can only be replaced in the main thread; elsewhere no signal is delivered anyway.
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in STOP_SIGNALS:
            previous = signal.getsignal(signum)
            if previous in (signal.SIG_IGN, None):  # ignored, or not installed from Python: leave it
                continue
            self._saved[signum] = previous
            signal.signal(signum, self._record)

    def restore(self) -> None:
        saved, self._saved = self._saved, {}
        for signum, handler in saved.items():
            signal.signal(signum, handler)

    def raise_if_received(self) -> None:
        """A stop that came meanwhile is raised now, by the handler it was meant for; else keep holding."""
        if self.received is None:
            return
        signum = self.received
        self.received = None
        self.restore()
        signal.raise_signal(signum)  # the restored handler raises (or, for SIG_DFL, ends the process)

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received is not None else ""


@contextlib.contextmanager
def held_interrupts() -> Iterator[HeldInterrupts]:
    """Hold SIGINT/SIGTERM for the block; on leaving, the handlers come back and a held signal is *not* raised."""
    held = HeldInterrupts()
    held.hold()
    try:
        yield held
    finally:
        held.restore()
