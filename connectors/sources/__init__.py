"""Sources: where a run reads its interval from, one module per model (events, persons, sessions).

A source streams an interval as Arrow record batches (a bounded number of rows each, and of the `BatchSize` a
writer asks for), in an order a checkpoint can resume from (`position`, for each batch), so an export's memory
does not grow with its interval. The export activity only ever sees this interface.
"""

from datetime import datetime
from typing import Protocol

from connectors.sources.buckets import Buckets, Count
from connectors.sources.clickhouse.events import ClickHouseEventsSource
from connectors.sources.clickhouse.http import ClickHouse
from connectors.sources.clickhouse.persons import ClickHousePersonsSource
from connectors.sources.clickhouse.sessions import ClickHouseSessionsSource
from connectors.sources.events import EventSelection, EventsSource
from connectors.sources.persons import PersonsSource
from connectors.sources.reading import AS_READ, BatchSize, RecordStream, SourceDatabase
from connectors.sources.sessions import SessionsSource

MODELS = ("events", "persons", "sessions")


class Source(Protocol):
    def read(
        self, start: datetime, end: datetime, *, after: str | None = None, limit: int = 0, size: BatchSize = AS_READ
    ) -> RecordStream:
        """The interval's rows after `after` (at most `limit`), in batches of `size` where one is given."""
        ...

    async def count(self, start: datetime, end: datetime) -> int: ...

    async def counts(self, start: datetime, end: datetime, buckets: Buckets) -> list[Count]:
        """The rows of `[start, end)` counted per bucket, without reading them."""
        ...

    async def first_at(self, before: datetime) -> datetime | None:
        """When the first row before `before` falls (its time as intervals bound it), or None."""
        ...


def open_events(
    db: SourceDatabase | ClickHouse, team_id: int, selection: EventSelection | None = None
) -> EventsSource | ClickHouseEventsSource:
    """The events model of one team from either source (which can also check a selection before it is saved)."""
    if isinstance(db, ClickHouse):
        return ClickHouseEventsSource(db, team_id, selection)
    return EventsSource(db, team_id, selection or EventSelection())


def open_source(
    db: SourceDatabase | ClickHouse, team_id: int, model: str, selection: EventSelection | None = None
) -> Source:
    """The source of one team's `model`; `selection` narrows the events model (include/exclude, filters, query)."""
    if model == "events":
        return open_events(db, team_id, selection)
    if isinstance(db, ClickHouse):
        match model:
            case "persons":
                return ClickHousePersonsSource(db, team_id)
            case "sessions":
                return ClickHouseSessionsSource(db, team_id)
        raise ValueError(f"model '{model}' has no source")
    match model:
        case "persons":
            return PersonsSource(db, team_id)
        case "sessions":
            return SessionsSource(db, team_id)
    raise ValueError(f"model '{model}' has no source")
