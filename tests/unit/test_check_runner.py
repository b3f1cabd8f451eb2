"""Destination checks run on a loop and threads of their own, at most a few at once, each within a deadline
(`api.checks`): what they block is never what serves requests."""

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterator

import pytest

from api.checks import CheckRunner, ChecksBusy, CheckTimedOut


@pytest.fixture
def runner() -> Iterator[CheckRunner]:
    runner = CheckRunner(concurrency=2, timeout=0.5).start()
    yield runner
    runner.close()


async def test_a_check_runs_on_the_checks_own_loop_and_threads(runner: CheckRunner) -> None:
    async def check() -> tuple[str, str]:
        on_loop = threading.current_thread().name
        in_thread = await asyncio.to_thread(lambda: threading.current_thread().name)
        return on_loop, in_thread

    on_loop, in_thread = await runner.run(check)
    assert on_loop == "destination-checks"
    assert in_thread.startswith("destination-check_")
    assert runner.busy == 0


async def test_a_blocked_check_ends_at_its_deadline_and_holds_its_slot_until_its_call_returns(
    runner: CheckRunner,
) -> None:
    release = threading.Event()

    async def stuck() -> None:
        await asyncio.to_thread(release.wait, 30)  # a client that waits on a far end that never answers

    began = time.monotonic()
    with pytest.raises(CheckTimedOut):
        await runner.run(stuck)
    assert 0.4 < time.monotonic() - began < 1.5
    assert runner.busy == 1  # the blocked call still holds its thread, and so its check's slot
    release.set()
    async with asyncio.timeout(5):
        while runner.busy:  # noqa: ASYNC110 (a counter the pool's thread changes: no event to wait on)
            await asyncio.sleep(0.01)


async def test_a_check_over_the_limit_is_refused_at_once(runner: CheckRunner) -> None:
    release = threading.Event()

    async def stuck() -> None:
        await asyncio.to_thread(release.wait, 30)

    running = [asyncio.create_task(runner.run(stuck)) for _ in range(2)]
    await asyncio.sleep(0.1)
    began = time.monotonic()
    with pytest.raises(ChecksBusy, match="BATCH_EXPORTS_MAX_CONCURRENT_CHECKS"):
        await runner.run(stuck)
    assert time.monotonic() - began < 0.1
    release.set()
    await asyncio.gather(*running, return_exceptions=True)


@pytest.mark.asyncio(loop_scope="function")  # its own loop: the session loop runs the e2e stack of later groups
async def test_the_callers_loop_keeps_its_threads_while_checks_block(runner: CheckRunner) -> None:
    """Blocked checks hold none of the caller's default executor threads (where the gateway inflates and parses
    bodies): here it has one, and it answers at once while two checks block."""
    asyncio.get_running_loop().set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=1))
    release = threading.Event()

    async def stuck() -> None:
        await asyncio.to_thread(release.wait, 30)

    running = [asyncio.create_task(runner.run(stuck)) for _ in range(2)]
    await asyncio.sleep(0.1)
    began = time.monotonic()
    assert await asyncio.to_thread(lambda: 42) == 42
    assert time.monotonic() - began < 0.2
    release.set()
    await asyncio.gather(*running, return_exceptions=True)


async def test_a_check_that_blocks_its_loop_is_still_answered_near_its_deadline(runner: CheckRunner) -> None:
    async def blocks_the_loop() -> None:
        time.sleep(2)  # noqa: ASYNC251 (the point: a vendor client doing blocking I/O in a coroutine)

    began = time.monotonic()
    with pytest.raises(CheckTimedOut):
        await runner.run(blocks_the_loop)
    assert time.monotonic() - began < 1.8
