"""How many export attempts of one project a worker runs at once: `BATCH_EXPORTS_MAX_CONCURRENT_EXPORTS_PER_PROJECT`.

An attempt over its project's share gives its activity slot back at once: it fails with `ProjectAtCapacity`, a
benign failure that Temporal retries a few seconds later and that does not use up one of the export's attempts
(`activities.attempts` counts only the attempts that ran). So one project's slow or dead destinations hold at most
its share of a worker's slots (`BATCH_EXPORTS_WORKER_MAX_CONCURRENT_ACTIVITIES`), and the other projects' attempts,
which Temporal dispatches fairly by project (`contracts.workflows.fairness_key`), find a free one.
"""

import contextlib
import random
from collections.abc import Iterator
from datetime import timedelta

FIRST_WAIT_SECONDS = 5.0
LONGEST_WAIT_SECONDS = 30.0


class ProjectAtCapacity(Exception):
    """The project has as many export attempts running on this worker as it may."""


class ProjectSlots:
    """The export attempts each project has running on this worker (activities run on one event loop)."""

    def __init__(self, per_project: int) -> None:
        self.per_project = per_project
        self._running: dict[int, int] = {}

    def running(self, team_id: int) -> int:
        return self._running.get(team_id, 0)

    @contextlib.contextmanager
    def taken(self, team_id: int) -> Iterator[None]:
        """One of the project's slots for the block; `ProjectAtCapacity` when it has none free."""
        running = self.running(team_id)
        if running >= self.per_project:
            raise ProjectAtCapacity(
                f"project {team_id} has {running} export attempts running on this worker, the most "
                "BATCH_EXPORTS_MAX_CONCURRENT_EXPORTS_PER_PROJECT allows"
            )
        self._running[team_id] = running + 1
        try:
            yield
        finally:
            if (left := self._running[team_id] - 1) > 0:
                self._running[team_id] = left
            else:
                del self._running[team_id]


def wait_before_retry(times_over_capacity: int) -> timedelta:
    """How long an attempt that found its project at capacity waits: 5 s, doubling to 30 s, spread by a fifth
    either way (so a crowd of them does not come back at once)."""
    seconds = min(LONGEST_WAIT_SECONDS, FIRST_WAIT_SECONDS * 2 ** min(times_over_capacity, 8))
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))
