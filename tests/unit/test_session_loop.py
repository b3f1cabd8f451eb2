"""The event loop every async test of a pytest process shares (`asyncio_default_test_loop_scope = "session"`) runs
blocking calls side by side, whatever ran on it before.

On an xdist worker the e2e stack's worker and gateway run on that loop too, after whichever groups the worker
drew before, and a test waits on them in one of its threads: `batch-exports backfills watch` holds one
(`asyncio.to_thread(subprocess.run, ...)`) while the backfill's Postgres export encodes its CSV in another. A
module that left the loop one thread (tests/unit/test_check_runner.py did) deadlocked the two until the watch
timed out. `tests/e2e/test_suite_spread.py` runs this module right after the modules that run before e2e groups.
"""

import asyncio
import threading

SIDE_BY_SIDE = 4
"""A test waiting in one thread, and the stack's export, name lookup and static file in others."""


async def test_the_session_loop_runs_blocking_calls_side_by_side() -> None:
    met = threading.Barrier(SIDE_BY_SIDE, timeout=5)  # each waits for the others: all at once, or all fail
    await asyncio.gather(*(asyncio.to_thread(met.wait) for _ in range(SIDE_BY_SIDE)))
