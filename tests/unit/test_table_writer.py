"""The order every table format writes an interval in (`tables.writer.TableWriter`), driven through a format
whose table is a list in memory and whose data files are real Parquet files in memory."""

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from connectors.destinations.base import Context, WriteRequest
from connectors.destinations.tables.files import DataFiles
from connectors.destinations.tables.location import TableLocationConfig
from connectors.destinations.tables.writer import TableWriter
from tests.support.interval_writing import write_interval

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class MemoryTable(TableWriter):
    def __init__(self, config: TableLocationConfig, request: WriteRequest, table: list[Any] | None) -> None:
        super().__init__(config, request)
        self.table = table
        """The commits the table holds; None: no table."""
        self.stored: dict[str, pa.BufferOutputStream] = {}
        self.calls: list[str] = []
        self.fail_commit = False

    def _open(self, schema: pa.Schema) -> DataFiles:
        self.calls.append("open")
        self.table = [] if self.table is None else self.table

        def open_output(path: str) -> pa.BufferOutputStream:
            stream = self.stored[path] = pa.BufferOutputStream()
            return stream

        return DataFiles(None, lambda day, stem: f"{stem}.parquet", open_output, self.stored.pop, None)

    async def _take_columns(self, schema: pa.Schema) -> None:
        self.calls.append("take columns")

    def _file_form(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, pa.Schema]:
        return batch, batch.schema

    def _find_table(self) -> bool:
        self.calls.append("find")
        if self.table is None:
            return False
        self._know_time_column(["_inserted_at", "event"])
        return True

    def _commit(self) -> None:
        self.calls.append("commit")
        written = self._written()
        if any(c["run"] == self.commit_spec.run_id and c["records"] == self.records for c in self.table or []):
            self._landed_already("memory")
            return
        if self.fail_commit:
            raise OSError("the table moved")
        assert self.table is not None
        self.table.append({"run": self.commit_spec.run_id, "records": self.records, "files": written,
                           "time_column": self._time_column})  # fmt: skip

    async def _close(self) -> None:
        self.calls.append("close")


def writer(model: str = "events", table: list[Any] | None = None, run: str = "run-1") -> MemoryTable:
    config = TableLocationConfig(storage="File", path="t", table_name="t")
    request = WriteRequest(Context(Path("/nonexistent"), False), model, False, START, START + dt.timedelta(hours=1),
                           run_id=run)  # fmt: skip
    return MemoryTable(config, request, table)


def events(n: int) -> pa.RecordBatch:
    times = pa.array([START] * n, pa.timestamp("us", tz="UTC"))
    return pa.RecordBatch.from_arrays([times, pa.array(["$pageview"] * n)], names=["_inserted_at", "event"])


def persons(*ids: str) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([{"team_id": 1, "distinct_id": d, "person_version": 1} for d in ids])


def test_the_batches_go_to_files_that_one_commit_names() -> None:
    w = writer()
    asyncio.run(write_interval(w, events(3), events(2)))
    assert w.calls == ["open", "take columns", "commit", "close"]
    (commit,) = w.table or []
    assert commit["records"] == 5 and commit["time_column"] == "_inserted_at"
    assert w.files == len(commit["files"]) == 1 and w.bytes_written == commit["files"][0].size > 0
    assert set(w.stored) == {commit["files"][0].path}


def test_the_keys_of_persons_are_kept_for_the_commit() -> None:
    w = writer("persons")
    asyncio.run(write_interval(w, persons("a", "b"), persons("c")))
    assert pa.concat_tables(w._keys).column("distinct_id").to_pylist() == ["a", "b", "c"]
    assert w._keys[0].column_names == ["team_id", "distinct_id"]


def test_a_failed_commit_removes_the_files_and_closes_once() -> None:
    w = writer()
    w.fail_commit = True
    with pytest.raises(OSError, match="moved"):
        asyncio.run(write_interval(w, events(3)))
    assert w.stored == {} and w.table == [] and w.calls.count("close") >= 1 and w.calls[-1] == "close"


def test_a_commit_that_landed_before_is_not_made_again_and_its_files_go() -> None:
    table: list[Any] = []
    asyncio.run(write_interval(writer(table=table), events(3)))
    again = writer(table=table)
    asyncio.run(write_interval(again, events(3)))
    assert len(table) == 1 and again.stored == {}


def test_nothing_written_replaces_the_interval_of_a_table_found() -> None:
    table: list[Any] = []
    w = writer(table=table)
    asyncio.run(write_interval(w))
    assert w.calls == ["find", "commit", "close"] and table[0]["records"] == 0
    missing = writer(table=None)
    asyncio.run(write_interval(missing))
    assert missing.calls == ["find", "close"]


def test_nothing_written_of_persons_commits_nothing() -> None:
    w = writer("persons", table=[])
    asyncio.run(write_interval(w))
    assert w.calls == ["close"] and w.table == []
