"""Sources: where a run reads its interval from, one module per model.

A source streams an interval as record batches (bounded lists of rows), in an order a checkpoint can
resume from, so an export's memory does not grow with its interval.
"""

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from activities.sources.events import EventsSource

RecordBatch = list[dict[str, Any]]


class Source(Protocol):
    @property
    def columns(self) -> tuple[str, ...]: ...

    def read(
        self, team_id: int, start: datetime, end: datetime, *, after: str | None = None, limit: int = 0
    ) -> AsyncIterator[RecordBatch]: ...

    def position(self, row: dict[str, Any]) -> str: ...

    async def count(self, team_id: int, start: datetime, end: datetime) -> int: ...


def source_for(model: str, pool: asyncpg.Pool) -> Source:
    if model == "events":
        return EventsSource(pool)
    raise ValueError(f"model '{model}' has no source")
