"""What writing an interval to a table is, whatever the format (`iceberg`, `delta_lake`): the batches go into
data files as they come (`files`), and one commit at the end names them (`rows`).

`TableWriter` keeps that order once; a format gives its hooks: open the table at the first batch, take a
later batch's new columns, the batch in the table's form, find the table when nothing was written, and the
commit itself. Nothing is in the table before the commit, so `write` never reports a checkpoint; a failed
or aborted attempt removes the files it wrote.
"""

import asyncio
import logging
from abc import abstractmethod

import pyarrow as pa

from connectors.destinations.base import IntervalWriter, WriteRequest
from connectors.destinations.tables.files import DataFiles, WrittenFile
from connectors.destinations.tables.location import Location, TableLocationConfig, locate
from connectors.destinations.tables.rows import TableCommit

logger = logging.getLogger(__name__)

BOUNDED_COLUMNS = ("_inserted_at", "_interval_start", "timestamp", "distinct_id", "session_id", "team_id")
"""The columns a table keeps the minimum and maximum of, per file: times and keys (what readers and the
commit's own search for the rows it replaces prune by), not JSON documents."""


class TableWriter(IntervalWriter):
    def __init__(self, config: TableLocationConfig, request: WriteRequest) -> None:
        self.commit_spec = TableCommit.of(request)
        self.context = request.context
        self.location: Location = locate(config, request.context)
        self.records = 0
        self._time_column = ""
        self._files: DataFiles | None = None
        self._keys: list[pa.Table] = []
        """The keys of the rows written (persons, sessions): the rows of the table a commit replaces."""

    # The format's hooks (the blocking ones run in a thread).
    @abstractmethod
    def _open(self, schema: pa.Schema) -> DataFiles:
        """At the first batch (blocking): the table, created when missing, with the batch's columns; the files
        its data goes to."""

    async def _take_columns(self, schema: pa.Schema) -> None:
        """A later batch's columns: added to the table when they are new to it."""

    @abstractmethod
    def _file_form(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, pa.Schema]:
        """The batch as the table's files hold it, and the schema to write it in."""

    @abstractmethod
    def _find_table(self) -> bool:
        """When nothing was written (blocking): whether the table exists; when it does, it is opened and its time
        column known (`_know_time_column`), so the commit can replace the interval."""

    @abstractmethod
    def _commit(self) -> None:
        """The commit (blocking): the files named, what they replace removed, the run's marks recorded; nothing
        when the run's commit is there already (`_landed_already`)."""

    async def _close(self) -> None:
        """Let go of the format's clients; called at the end of each attempt."""

    # The order.
    async def write(self, batch: pa.RecordBatch) -> bool:
        prepared = self.commit_spec.prepare(batch)
        if self._files is None:
            self._time_column = self.commit_spec.time_column(prepared.schema)
            self._files = await asyncio.to_thread(self._open, prepared.schema)
        else:
            await self._take_columns(prepared.schema)
        rows, schema = self._file_form(prepared)
        await asyncio.to_thread(self._files.write, rows, schema)
        self.records += prepared.num_rows
        if self.commit_spec.keys:
            self._keys.append(pa.Table.from_batches([prepared]).select(list(self.commit_spec.keys)))
        return False  # nothing is in the table before the commit

    async def commit(self, final: bool = True) -> None:
        try:
            # Nothing written: only a replaced interval (of a table that exists) has something to do.
            found = self._files is not None or (
                self.commit_spec.replaces_interval and await asyncio.to_thread(self._find_table)
            )
            if found:
                await asyncio.to_thread(self._commit)
        except BaseException:
            await self.abort()
            raise
        await self._close()

    async def abort(self) -> None:
        files, self._files = self._files, None
        try:
            if files is not None:
                await asyncio.to_thread(files.discard)
        finally:
            await self._close()

    # For the hooks.
    def _know_time_column(self, names: list[str]) -> None:
        """The time column of a table of columns `names` (one found, not written to)."""
        self._time_column = self.commit_spec.time_column(pa.schema([(name, pa.null()) for name in names]))

    def _written(self) -> list[WrittenFile]:
        """Close the files (blocking) and count them: what the commit names."""
        written = self._files.close() if self._files is not None else []
        self.bytes_written = sum(f.size for f in written)
        self.files = len(written)  # not 0 after rows: the execution that continues this one is not the first
        return written

    def _landed_already(self, table_name: str) -> None:
        """The run's commit is in the table (a lost attempt's): this attempt's files go, nothing is committed."""
        logger.info("%s: run %s committed these %s records already", table_name, self.commit_spec.run_id, self.records)
        if self._files is not None:
            self._files.discard()
