"""Sources: where a run reads its interval from, one module per model (events, persons, sessions).

A source streams an interval as Arrow record batches (a bounded number of rows each, and at most `batch_bytes`
when that is given), in an order a checkpoint can resume from (`position`, for each batch), so an export's memory
does not grow with its interval. The export activity
only ever sees this interface.
"""

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

from activities.sources.events import EventSelection, EventsSource
from activities.sources.persons import PersonsSource
from activities.sources.reading import RecordBatch, SourceDatabase
from activities.sources.sessions import SessionsSource
from batch_exports.exports import BatchExport
from batch_exports.hogql import parse_query


class Source(Protocol):
    def read(
        self, start: datetime, end: datetime, *, after: str | None = None, limit: int = 0, batch_bytes: int = 0
    ) -> AsyncIterator[RecordBatch]: ...

    async def count(self, start: datetime, end: datetime) -> int: ...


def source_for(export: BatchExport, db: SourceDatabase) -> Source:
    """The source of the export's model, narrowed by what the export selects."""
    match export.model:
        case "events":
            config = export.destination_config
            selection = EventSelection(
                include_events=tuple(config.include_events or ()),
                exclude_events=tuple(config.exclude_events or ()),
                filters=tuple(export.filters or ()),
                query=parse_query(export.hogql_query) if export.hogql_query else None,
            )
            return EventsSource(db, export.team_id, selection)
        case "persons":
            return PersonsSource(db, export.team_id)
        case "sessions":
            return SessionsSource(db, export.team_id)
    raise ValueError(f"model '{export.model}' has no source")
