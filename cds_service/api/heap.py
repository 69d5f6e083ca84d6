"""The garbage collector's settings for a serving process, set once start-up is done (the app's
lifespan; the floor app and the benchmarks use the same, so every figure compares like with like).
"""

from __future__ import annotations

import gc

# Container allocations between young-generation collections (CPython's default: 700). Parsing
# a 300-resource call allocates some 20,000 containers that all live until the answer is sent:
# at 700 the collector ran about 30 times per call, scanning objects that were never garbage
# (they are freed by reference counting when the call ends). At 50,000 most calls end before a
# collection; cyclic garbage (rare here) waits at most that many allocations.
YOUNG_GC_THRESHOLD = 50_000


def settle_heap() -> None:
    """Once start-up is done: keep the collector off what lives as long as the process
    (policies, models, code sets: frozen), and off each call's short-lived objects."""
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
