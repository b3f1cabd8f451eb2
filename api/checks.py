"""Where destination checks run: a thread, an event loop and a pool of threads of their own, never the gateway's.

A check talks to whatever a person typed in, and some clients block a thread until the far end answers (pyarrow's
S3, delta-rs, the Iceberg catalog, name resolution). On the gateway's loop and default executor, eight checks
against an endpoint that never answered held every thread that capture inflates and parses bodies in, and a
one-event `/batch/` waited 357 s. Here a check runs on the checks' own loop, whose default executor (what
`asyncio.to_thread` and `getaddrinfo` use there) is a pool of `BATCH_EXPORTS_MAX_CONCURRENT_CHECKS` threads:
nothing a check does waits on, or holds, a thread that serves requests.

Each check ends at its deadline (`BATCH_EXPORTS_CHECK_TIMEOUT_SECONDS`) with `CheckTimedOut`. It holds one slot
from admission until it has ended and every blocking call it made has returned: a client stuck past the deadline
keeps its thread (and slot) until its own timeouts end it, so stuck calls never pile up threads. When every slot is
held a new check is refused at once (`ChecksBusy`: the API's 429), never queued.
"""

import asyncio
import concurrent.futures
import contextvars
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
logger = logging.getLogger(__name__)

STOP_SECONDS = 5.0
"""How long closing waits for the checks under way to be cancelled."""


class ChecksBusy(Exception):
    """Every slot is held by a check under way: try again in a few seconds."""


class CheckTimedOut(Exception):
    """The check did not finish within its deadline."""


class _Slot:
    """One admitted check: free again once the check has ended and each blocking call it made has returned."""

    def __init__(self, free: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self._holds = 1  # the check itself
        self._free = free

    def hold(self) -> None:
        with self._lock:
            self._holds += 1

    def drop(self, *_: object) -> None:
        with self._lock:
            self._holds -= 1
            free = self._holds == 0
        if free:
            self._free()


_SLOT: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar("destination_check_slot", default=None)


class _Pool(concurrent.futures.ThreadPoolExecutor):
    """The checks' loop's default executor: each call holds the slot of the check that made it until it returns."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        slot = _SLOT.get()
        if slot is None:
            return super().submit(fn, *args, **kwargs)
        slot.hold()
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            slot.drop()
            raise
        future.add_done_callback(slot.drop)
        return future


class CheckRunner:
    """Runs destination checks on their own loop and threads, at most `concurrency` at once, each within
    `timeout` seconds."""

    def __init__(self, concurrency: int, timeout: float) -> None:
        self.concurrency, self.timeout = concurrency, timeout
        self._lock = threading.Lock()
        self._busy = 0
        self._pool = _Pool(max_workers=concurrency, thread_name_prefix="destination-check")
        self._loop = asyncio.new_event_loop()
        self._loop.set_default_executor(self._pool)
        self._thread = threading.Thread(target=self._loop.run_forever, name="destination-checks", daemon=True)

    @property
    def busy(self) -> int:
        """Slots held now (by checks under way, or by blocking calls a check left behind at its deadline)."""
        with self._lock:
            return self._busy

    def start(self) -> "CheckRunner":
        self._thread.start()
        return self

    async def run(self, check: Callable[[], Awaitable[T]]) -> T:
        """`check()`'s result, computed on the checks' loop; `ChecksBusy` when every slot is held,
        `CheckTimedOut` past the deadline."""
        slot = self._admit()
        outcome: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._loop.call_soon_threadsafe(self._start, slot, check, outcome)
        try:
            # The deadline is kept on the checks' loop; this one holds even if a check blocked that loop.
            return await asyncio.wait_for(asyncio.wrap_future(outcome), self.timeout + 1)
        except TimeoutError:
            raise CheckTimedOut(f"the check did not finish within {self.timeout:g} s") from None

    def close(self) -> None:
        """Cancel the checks under way and stop the loop; blocking calls still running are left to end."""
        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(_cancel_all(), self._loop).result(STOP_SECONDS)
            except Exception as error:  # closing goes on
                logger.warning("destination checks not all cancelled: %r", error)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_SECONDS)
        if not self._thread.is_alive():
            self._loop.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _admit(self) -> _Slot:
        with self._lock:
            if self._busy >= self.concurrency:
                raise ChecksBusy(
                    f"{self._busy} destination checks are running, the most BATCH_EXPORTS_MAX_CONCURRENT_CHECKS "
                    "allows; try again in a few seconds"
                )
            self._busy += 1
        return _Slot(self._free)

    def _free(self) -> None:
        with self._lock:
            self._busy -= 1

    def _start(self, slot: _Slot, check: Callable[[], Awaitable[T]], outcome: concurrent.futures.Future[T]) -> None:
        """On the checks' loop: run `check` within the deadline, holding `slot`, and hand its end to `outcome`."""
        _SLOT.set(slot)  # in this callback's own context, which the task copies: its blocking calls hold the slot

        async def within_deadline() -> T:
            try:
                async with asyncio.timeout(self.timeout):
                    return await check()
            except TimeoutError:
                raise CheckTimedOut(f"the check did not finish within {self.timeout:g} s") from None

        task = self._loop.create_task(within_deadline())
        task.add_done_callback(lambda done: _settle(done, slot, outcome))


def _settle(task: "asyncio.Task[T]", slot: _Slot, outcome: concurrent.futures.Future[T]) -> None:
    slot.drop()
    try:
        if task.cancelled():
            outcome.cancel()
        elif (error := task.exception()) is not None:
            outcome.set_exception(error)
        else:
            outcome.set_result(task.result())
    except concurrent.futures.InvalidStateError:  # the request stopped waiting (its client went away)
        pass


async def _cancel_all() -> None:
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
