"""The cyclic garbage collector, tuned for the pipeline's long-running processes.

The producer, the result applier and the worker processes allocate tens of
thousands of short-lived objects per batch (task records, specs, results,
rows) that refcounting alone frees. With CPython's default thresholds the
collector runs every 700 net allocations, catches whatever a batch still holds
at that moment, and promotes it, so full collections keep walking the whole
heap: the modules, SQLAlchemy's and pydantic's schemas, Celery's app. That cost
a fifth of the producer's CPU and a tenth of the rest.

:func:`tune_gc`, called once a process has imported what it needs, moves every
object alive at that point out of the collector's reach (``gc.freeze``: they
live as long as the process anyway, and a forked pool child shares their pages
instead of copying them) and collects the young generation less often. Cycles
are still collected, only later.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "tune_gc"]

# Young-generation collections run after this many net allocations (CPython's default: 700).
YOUNG_THRESHOLD = 20_000


def tune_gc() -> None:
    """Freeze what is alive now and raise the young generation's threshold (idempotent)."""
    if not gc.isenabled():  # the embedding program chose to manage the collector itself
        return
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
