"""A query's record batches read in a thread of their own, a few ahead of the caller, whatever the source.

The thread reads and converts (native code: no Python object per row) while the event loop encodes and
uploads what it already has; it holds at most `READ_AHEAD_BATCHES`, so memory stays flat. A read that
breaks off ends the work waiting on it at once (`fail` hears of it as soon as it happens). While the caller
is slow, the thread waits with batches in hand and does not touch its connection, so a watchdog asks the
source every few seconds whether the read is still served. Stopping early cancels the query until the
thread ends: a first cancel can come before the query starts.

A source supplies a `Query`: how to run it, cancel it, end it and ask after it.
"""

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Protocol, TypeVar

import pyarrow as pa

READ_AHEAD_BATCHES = 4
WATCH_EVERY_SECONDS = 2.0
"""How often the watchdog asks the source whether a read that waits on the caller is still served."""
T = TypeVar("T")


class SourceLost(Exception):
    """The source broke the read off (it restarted, or it stopped answering) while the caller was busy."""


class Query(Protocol):
    """One query of a source, run once by the reader's thread."""

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Run the query and give its record batches (in the reader's thread, blocking)."""
        ...

    def cancel(self) -> None:
        """Stop the query, from another thread: whether it has started, runs, or has ended."""
        ...

    def end(self, clean: bool) -> None:
        """After the read, in the reader's thread: keep what may serve another read only when `clean`."""
        ...

    async def lost(self) -> str | None:
        """On the event loop, while the reader waits with batches in hand: why the read is no longer served
        (None: it is, or the source cannot tell). Raising `TimeoutError` means: slow to answer, ask again."""
        ...


async def read_ahead(
    query: Query, convert: Callable[[pa.RecordBatch], list[T]], fail: Callable[[BaseException], None]
) -> AsyncIterator[T]:
    """`query`'s non-empty record batches, each converted by `convert` in the reader's thread."""
    loop = asyncio.get_running_loop()
    handed: asyncio.Queue[T | BaseException | None] = asyncio.Queue(READ_AHEAD_BATCHES)
    stop = threading.Event()
    waiting = [0.0]  # since when the reader has been waiting for room (0: it is not)

    def hand(item: T | BaseException | None) -> bool:
        """Give the loop one item, waiting for room; False once the reader is no longer wanted."""
        delivery = asyncio.run_coroutine_threadsafe(handed.put(item), loop)
        waiting[0] = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    delivery.result(timeout=0.5)
                    return True
                except concurrent.futures.TimeoutError:
                    continue
        finally:
            waiting[0] = 0.0
        delivery.cancel()
        return False

    def failed(error: BaseException) -> None:
        if not stop.is_set():
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(fail, error)
        hand(error)

    def read() -> None:
        done = False
        try:
            for data in query.batches():
                if data.num_rows and not all(hand(batch) for batch in convert(data)):
                    query.cancel()  # no longer wanted
                    break
            else:
                done = True
        except BaseException as error:  # handed to the loop, which raises it in the reading task
            failed(error)
        keep = done and not stop.is_set()  # what the loop may be cancelling is never kept
        with contextlib.suppress(Exception):
            query.end(keep)
        if keep:
            hand(None)

    async def watch() -> None:
        while True:
            await asyncio.sleep(WATCH_EVERY_SECONDS)
            if not waiting[0] or time.monotonic() - waiting[0] < WATCH_EVERY_SECONDS:
                continue
            try:
                why = await asyncio.wait_for(query.lost(), WATCH_EVERY_SECONDS * 2)
            except TimeoutError:
                continue  # slow to answer is not gone
            if why is not None:
                fail(SourceLost(why))
                return

    # Its own thread, not the loop's executor: a reader waits on the loop, which may wait on the executor.
    reader = threading.Thread(target=read, name="arrow-reader", daemon=True)
    reader.start()
    watchdog = asyncio.create_task(watch())
    finished = False
    try:
        while (item := await handed.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
        finished = True
    finally:
        stop.set()
        watchdog.cancel()
        if not finished:  # stopped early, maybe while the server keeps the query waiting (on a lock, say)
            threading.Thread(target=_cancel_until_done, args=(reader, query), daemon=True).start()


def _cancel_until_done(reader: threading.Thread, query: Query) -> None:
    while reader.is_alive():
        with contextlib.suppress(Exception):
            query.cancel()
        reader.join(0.2)
