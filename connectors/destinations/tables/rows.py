"""What the table destinations (Iceberg, Delta Lake) share: the rows an interval's commit replaces, the
types its columns take, and the marks that let a retried commit be recognised.

- events: the first execution of an interval replaces the rows whose time column falls in the interval, so
  a rerun leaves one copy of each; a continued execution (a segment after the first) adds its rows to
  them. The time column is `_inserted_at` (what the interval bounds), or, for a hogql_query that does not
  select it, `_interval_start`, which the writer adds: the start of the interval that exported the row.
- persons and sessions: a row replaces the row with the same key (`(team_id, distinct_id)`, `session_id`).
- A commit is all-or-nothing, so nothing is in the table before it (`write` says False until then) and a
  retried attempt writes the interval again. Every commit carries the export, the run (one execution) and
  the number of records it holds: a run that already committed that many records is an attempt whose commit
  landed before its worker was lost, and its commit is not applied again.

Columns are stored as Arrow's plain types (UUIDs and JSON as text, timestamps in microseconds, UTC), all
nullable; a new column (a hogql_query that selects one more) is added to the table, and a column whose
type differs from the table's is the user's error, named with both types.
"""

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from connectors.columns import is_extension, uuid_strings
from connectors.destinations.base import DestinationUserError, WriteRequest
from connectors.sources.schemas import KEYS

TIME_COLUMN = "_inserted_at"
INTERVAL_COLUMN = "_interval_start"
DAY_SUFFIX = "_day"
MICROSECONDS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TableCommit:
    """One execution's commit: which interval, which run, which rows it replaces."""

    model: str
    custom_columns: bool
    start: datetime
    end: datetime
    batch_export_id: str
    run_id: str
    first_segment: bool
    """The interval's first execution: its commit replaces the interval (events). Table writers count the data
    files a commit adds (`IntervalWriter.files`), so an execution that continues one is never first."""

    @classmethod
    def of(cls, request: WriteRequest) -> "TableCommit":
        return cls(request.model, request.custom_columns, request.start, request.end, request.batch_export_id,
                   request.run_id, request.first_file == 0)  # fmt: skip

    @property
    def keys(self) -> tuple[str, ...] | None:
        """The key a row replaces rows by (persons, sessions); None for events, replaced by interval."""
        return None if self.model == "events" else KEYS[self.model]

    @property
    def replaces_interval(self) -> bool:
        return self.keys is None and self.first_segment

    def marks(self, records: int | None) -> dict[str, str]:
        """What the commit records about itself (snapshot summary, commit info); `records` where it is known
        before the commit is made."""
        marks = {
            "batch-export-id": self.batch_export_id,
            "batch-export-run-id": self.run_id,
            "batch-export-interval": f"{self.start.isoformat()}/{self.end.isoformat()}",
        }
        return marks if records is None else {**marks, "batch-export-records": str(records)}

    def already_committed(self, found: list[dict[str, str]], records: int) -> bool:
        """Whether one of the marks `found` in the table is this commit's: the same run, as many records."""
        return any(
            mark.get("batch-export-run-id") == self.run_id and mark.get("batch-export-records") == str(records)
            for mark in found
        )

    def time_column(self, schema: pa.Schema) -> str:
        return TIME_COLUMN if TIME_COLUMN in schema.names else INTERVAL_COLUMN

    def prepare(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch as the table stores it: plain types, and the interval's column when the time is not there."""
        columns = [plain(column) for column in batch.columns]
        names = list(batch.schema.names)
        if TIME_COLUMN not in names:
            names.append(INTERVAL_COLUMN)
            columns.append(pa.repeat(pa.scalar(self.start, MICROSECONDS), batch.num_rows))
        elif self.custom_columns and self.keys is None:
            self._check_in_interval(columns[names.index(TIME_COLUMN)])
        return pa.RecordBatch.from_arrays(columns, names=names)

    def _check_in_interval(self, times: pa.Array) -> None:
        """A hogql_query's `_inserted_at` must be the ingestion time the interval bounds (a rerun replaces by it)."""
        if not pa.types.is_timestamp(times.type):
            raise DestinationUserError(f"{TIME_COLUMN} must be a timestamp (inserted_at), not {times.type}")
        bounds = pc.min_max(times)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if low is not None and (low < self.start or high >= self.end):
            raise DestinationUserError(
                f"the hogql_query's {TIME_COLUMN} has values outside the interval ({low} to {high}): "
                f"select inserted_at AS {TIME_COLUMN}, or leave it out"
            )


def plain(column: pa.Array) -> pa.Array:
    """The column in a type every table format and reader takes: UUIDs and JSON as text, timestamps in
    microseconds UTC, large strings as strings."""
    kind = column.type
    if is_extension(kind, "arrow.uuid"):
        return uuid_strings(column)
    if isinstance(column, pa.ExtensionArray):
        return plain(column.storage)
    if pa.types.is_timestamp(kind) and (kind.unit != "us" or kind.tz != "UTC"):
        if kind.tz is None:
            column = pc.assume_timezone(column, "UTC")
        return pc.cast(column, MICROSECONDS, safe=False)
    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pc.cast(column, pa.string())
    if pa.types.is_null(kind):
        return pa.nulls(len(column), pa.string())
    if pa.types.is_unsigned_integer(kind):
        return pc.cast(column, pa.int64())  # Iceberg and Delta have no unsigned types
    return column


def nullable(schema: pa.Schema) -> pa.Schema:
    """Every field nullable (a required column would refuse a later batch's nulls)."""
    return pa.schema([field.with_nullable(True) for field in schema])


def type_conflict(table_name: str, problems: list[str]) -> DestinationUserError:
    return DestinationUserError(
        f"the table {table_name} does not take this export's columns: {'; '.join(problems)}. "
        "Export to a new table, or change the query so the columns keep their types"
    )
