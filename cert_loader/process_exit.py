"""A quicker end for the processes that load districts: no last cyclic garbage collection over every live object.

A Python process ends by tearing its modules down with the collector on; with Dagster and a code location
of ~160 assets and ~480 checks imported that took ~0.5 s per `dagster asset materialize` (and per run
worker), every time, after the run had finished. ``gc.freeze()`` at exit moves every object into the
permanent generation, which the collections at shutdown skip: the same end in ~0.03 s (measured on this
machine: import the code location, exit; 0.48 s against 0.03 s). Nothing is lost: memory goes back to the
system with the process, every file and connection the engine opens is closed explicitly before, and
``atexit`` handlers registered earlier (logging's flush among them) still run after this one.
"""

from __future__ import annotations

import atexit
import gc

_registered = False


def skip_final_collection() -> None:
    """Freeze the heap when the interpreter exits (once per process, however often it is called)."""
    global _registered
    if not _registered:
        atexit.register(gc.freeze)
        _registered = True
