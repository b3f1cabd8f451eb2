"""The cyclic garbage collector of a long-running process (the worker, the gateway).

What the process loaded before it serves (modules, the runtime, the worker's checked workflows) lives as long as
the process, so collections leave it alone (`gc.freeze`); and a collection runs after `YOUNG_OBJECTS` new
containers rather than Python's 700. With the defaults the worker collected often during an export, and each
full collection walked everything it had loaded: about 7% of its samples in a profile of `bench.export`.
"""

import gc

YOUNG_OBJECTS = 20_000


def settle() -> int:
    """Freeze what is alive now, and collect the young generation less often; how many objects are frozen."""
    gc.collect()  # what start-up left behind goes now, not frozen with the rest
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS, *gc.get_threshold()[1:])
    return gc.get_freeze_count()
