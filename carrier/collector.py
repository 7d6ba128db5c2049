"""The garbage collector's pace for a long-running agent process.

CPython runs a young-generation collection every 700 net allocations of container
objects (its default), and a full one, which walks every live object, after enough of
them. A turn allocates thousands (validated memories, the state, the prompt's turns),
so a busy agent collects many times per message, and every full collection walks the
caches that keep many rooms' histories warm: with 1,000 active rooms, a third of the
loop's time went to the collector. ``CARRIER_GC_GEN0_THRESHOLD`` (default 10,000)
spaces the collections out; reference counting still frees all acyclic garbage at
once, so only reference cycles wait a little longer.

The threshold is set once per process, and only while it is still Python's default:
an application that chose its own (``gc.set_threshold``) keeps it. ``0`` leaves the
collector alone.
"""

from __future__ import annotations

import gc
import logging

__all__ = ["PYTHON_DEFAULT_GEN0", "pace_collector"]

logger = logging.getLogger("carrier.runtime")

#: CPython's default young-generation threshold.
PYTHON_DEFAULT_GEN0 = 700


def pace_collector(gen0_threshold: int) -> bool:
    """Raise the young-generation threshold to ``gen0_threshold`` if nobody changed it;
    whether it was changed now."""
    current = gc.get_threshold()
    if gen0_threshold <= 0 or current[0] != PYTHON_DEFAULT_GEN0:
        return False
    gc.set_threshold(gen0_threshold, *current[1:])
    logger.debug("gc threshold %s -> %s", current, gc.get_threshold())
    return True
