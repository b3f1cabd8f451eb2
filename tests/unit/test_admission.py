"""A worker runs at most `BATCH_EXPORTS_MAX_CONCURRENT_EXPORTS_PER_PROJECT` export attempts of one project at once;
one more waits a little for a slot, while that crowds no other project out, or gives its slot back
(`activities.admission`)."""

import asyncio
import contextlib
import time
from datetime import timedelta

import pytest

from activities.admission import ProjectAtCapacity, ProjectSlots, wait_before_retry


async def test_a_project_at_its_cap_is_refused_and_others_are_not() -> None:
    slots = ProjectSlots(per_project=2, worker_slots=100)
    async with contextlib.AsyncExitStack() as held:
        await held.enter_async_context(slots.taken(2))
        await held.enter_async_context(slots.taken(2))
        with pytest.raises(ProjectAtCapacity, match="BATCH_EXPORTS_MAX_CONCURRENT_EXPORTS_PER_PROJECT"):
            await held.enter_async_context(slots.taken(2))  # no wait asked for
        async with slots.taken(1):  # another project is not held up
            assert (slots.running(1), slots.running(2)) == (1, 2)
    assert (slots.running(1), slots.running(2)) == (0, 0)


async def test_a_slot_is_given_back_when_the_attempt_fails() -> None:
    slots = ProjectSlots(per_project=1, worker_slots=100)
    with pytest.raises(RuntimeError):
        async with slots.taken(7):
            raise RuntimeError("destination gone")
    async with slots.taken(7):
        assert slots.running(7) == 1


async def test_an_attempt_over_the_cap_takes_the_slot_the_first_one_gives_back() -> None:
    slots = ProjectSlots(per_project=1, worker_slots=100)
    order: list[str] = []
    release = asyncio.Event()

    async def attempt(name: str) -> None:
        async with slots.taken(3, wait_seconds=5):
            order.append(f"{name} runs with {slots.running(3)} running")
            await release.wait()

    first = asyncio.create_task(attempt("first"))
    await asyncio.sleep(0)
    second, third = asyncio.create_task(attempt("second")), asyncio.create_task(attempt("third"))
    await asyncio.sleep(0.05)
    assert (order, slots.waiting(3)) == (["first runs with 1 running"], 1)  # the third over the waiters' share
    with pytest.raises(ProjectAtCapacity):
        await third
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 1)
    assert order == ["first runs with 1 running", "second runs with 1 running"]  # never two at once
    assert (slots.running(3), slots.waiting(3)) == (0, 0)


async def test_a_wait_ends_in_project_at_capacity_when_no_slot_frees() -> None:
    slots = ProjectSlots(per_project=1, worker_slots=100)
    async with slots.taken(4):
        began = time.monotonic()
        with pytest.raises(ProjectAtCapacity):
            async with slots.taken(4, wait_seconds=0.2):
                pass
        assert 0.2 <= time.monotonic() - began < 1
        assert (slots.running(4), slots.waiting(4)) == (1, 0)
        async with slots.taken(5, wait_seconds=0.2):  # and the worker's count of held slots is back too
            assert slots.running(5) == 1
    assert (slots.running(4), slots.running(5)) == (0, 0)


async def test_no_attempt_waits_once_exports_hold_half_the_workers_slots() -> None:
    """Four activity slots, two per project: a dead project's two running attempts hold half of them, so its others
    give their slot back at once and the other half stays free for other projects."""
    slots = ProjectSlots(per_project=2, worker_slots=4)
    async with contextlib.AsyncExitStack() as held:
        await held.enter_async_context(slots.taken(6))
        await held.enter_async_context(slots.taken(6))
        began = time.monotonic()
        with pytest.raises(ProjectAtCapacity):
            await held.enter_async_context(slots.taken(6, wait_seconds=5))
        assert time.monotonic() - began < 1
        async with slots.taken(8, wait_seconds=5):
            assert slots.running(8) == 1


async def test_a_cancelled_wait_leaves_the_queue_and_takes_no_slot() -> None:
    slots = ProjectSlots(per_project=1, worker_slots=100)
    async with slots.taken(9):
        waiting = asyncio.create_task(slots.taken(9, wait_seconds=5).__aenter__())
        await asyncio.sleep(0.05)
        assert slots.waiting(9) == 1
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert (slots.running(9), slots.waiting(9)) == (1, 0)
    assert slots.running(9) == 0


def test_the_wait_before_a_retry_grows_to_half_a_minute_and_is_spread() -> None:
    first = [wait_before_retry(0) for _ in range(50)]
    assert all(timedelta(seconds=4) <= wait <= timedelta(seconds=6) for wait in first)
    assert len(set(first)) > 1
    assert all(wait_before_retry(times) <= timedelta(seconds=36) for times in range(100))
    assert wait_before_retry(10) >= timedelta(seconds=24)
