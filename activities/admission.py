"""How many export attempts of one project a worker runs at once: `BATCH_EXPORTS_MAX_CONCURRENT_EXPORTS_PER_PROJECT`.

An attempt over its project's share waits a few seconds for one of the project's slots, first come first served,
while the wait cannot crowd other projects out: at most as many attempts of a project wait as it may run, and only
while the worker's export attempts (running and waiting) hold fewer than half of its activity slots
(`BATCH_EXPORTS_WORKER_MAX_CONCURRENT_ACTIVITIES`). Otherwise, or when no slot frees in time, it gives its activity
slot back: it fails with `ProjectAtCapacity`, a benign failure that Temporal retries a few seconds later and that
does not use up one of the export's attempts (`activities.attempts` counts only the attempts that ran). So one
project's slow or dead destinations run at most its share of a worker's slots, and the other projects' attempts,
which Temporal dispatches fairly by project (`contracts.workflows.fairness_key`), find a free one.

A backfill keeps more runs going than its project's share: their short exports take the slots the others free, in
the worker, instead of coming back 5 s later through Temporal.
"""

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import AsyncIterator
from datetime import timedelta

FIRST_WAIT_SECONDS = 5.0
LONGEST_WAIT_SECONDS = 30.0


class ProjectAtCapacity(Exception):
    """The project has as many export attempts running on this worker as it may."""


class ProjectSlots:
    """The export attempts each project has running (and waiting) on this worker (activities run on one event
    loop)."""

    def __init__(self, per_project: int, worker_slots: int) -> None:
        self.per_project, self.worker_slots = per_project, worker_slots
        self._running: dict[int, int] = {}
        self._waiting: dict[int, deque[asyncio.Future[None]]] = {}
        self._held = 0
        """Activity slots the export attempts hold, running or waiting."""

    def running(self, team_id: int) -> int:
        return self._running.get(team_id, 0)

    def waiting(self, team_id: int) -> int:
        return len(self._waiting.get(team_id, ()))

    @contextlib.asynccontextmanager
    async def taken(self, team_id: int, wait_seconds: float = 0) -> AsyncIterator[None]:
        """One of the project's slots for the block, waited for up to `wait_seconds` when the wait crowds no other
        project out; `ProjectAtCapacity` when none is free."""
        if (running := self.running(team_id)) < self.per_project:
            self._running[team_id] = running + 1
            self._held += 1
        else:
            await self._wait(team_id, wait_seconds)
        try:
            yield
        finally:
            self._give_back(team_id)

    async def _wait(self, team_id: int, wait_seconds: float) -> None:
        """Wait for a slot that an attempt of the project hands over (`_give_back`)."""
        if wait_seconds <= 0 or self.waiting(team_id) >= self.per_project or 2 * self._held >= self.worker_slots:
            raise self._at_capacity(team_id)
        handed = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(team_id, deque()).append(handed)
        self._held += 1
        try:
            await asyncio.wait_for(handed, wait_seconds)
        except BaseException as error:
            if handed.done() and not handed.cancelled():  # handed over as the wait ended: pass it on
                self._give_back(team_id)
            else:
                self._held -= 1
                self._leave(team_id, handed)
            if isinstance(error, TimeoutError):
                raise self._at_capacity(team_id) from None
            raise

    def _give_back(self, team_id: int) -> None:
        """The slot goes to the project's first attempt waiting, or is free."""
        self._held -= 1
        waiting = self._waiting.get(team_id)
        while waiting:
            handed = waiting.popleft()
            if not waiting:
                del self._waiting[team_id]
            if not handed.done():
                handed.set_result(None)  # the waiter's slot counted in `_held` since it began to wait
                return
        if (left := self._running[team_id] - 1) > 0:
            self._running[team_id] = left
        else:
            del self._running[team_id]

    def _leave(self, team_id: int, handed: asyncio.Future[None]) -> None:
        waiting = self._waiting.get(team_id)
        if waiting is not None and handed in waiting:
            waiting.remove(handed)
            if not waiting:
                del self._waiting[team_id]

    def _at_capacity(self, team_id: int) -> ProjectAtCapacity:
        return ProjectAtCapacity(
            f"project {team_id} has {self.running(team_id)} export attempts running on this worker, the most "
            "BATCH_EXPORTS_MAX_CONCURRENT_EXPORTS_PER_PROJECT allows"
        )


def wait_before_retry(times_over_capacity: int) -> timedelta:
    """How long an attempt that found its project at capacity waits: 5 s, doubling to 30 s, spread by a fifth
    either way (so a crowd of them does not come back at once)."""
    seconds = min(LONGEST_WAIT_SECONDS, FIRST_WAIT_SECONDS * 2 ** min(times_over_capacity, 8))
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))
