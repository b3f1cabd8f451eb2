"""The Parquet data files a table destination writes itself, while the interval is read.

One file is open per partition (a day of the time column; one in all for an unpartitioned table), each
streamed to the table's storage as batches come (on S3 its parts go up while it grows) and closed past
`FILE_BYTES`. The encoding is the Parquet format's own (`formats.parquet`): zstd, dictionaries for the columns
that repeat, min/max statistics for the columns readers prune by and not for JSON documents or ids. A file
is in the table only once a commit names it: the files of an attempt that does not commit are removed when
they can be, and harm no reader when they cannot.
"""

import contextlib
import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.formats.parquet import encoding_choices

FILE_BYTES = 256 * 2**20
"""A file is closed once this much is written to it (compressed): a new one takes the partition's next rows."""
EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class WrittenFile:
    path: str
    """As the table names it (a URI, or a path relative to the table)."""
    day: dt.date | None
    """Its partition: the day of the time column its rows share (None for an unpartitioned table)."""
    records: int
    size: int
    metadata: pq.FileMetaData


class _OpenFile:
    def __init__(self, path: str, stream: Any, schema: pa.Schema, day: dt.date | None, options: dict[str, Any]) -> None:
        self.path, self.stream, self.day = path, stream, day
        self.writer = pq.ParquetWriter(stream, schema, **options)
        self.records = 0

    def close(self) -> WrittenFile:
        self.writer.close()
        size = self.stream.tell()
        self.stream.close()
        return WrittenFile(self.path, self.day, self.records, size, self.writer.writer.metadata)


class DataFiles:
    """The data files of one commit, written as batches come (blocking calls: run them in a thread)."""

    def __init__(
        self,
        model: str | None,
        name: Callable[[dt.date | None, str], str],
        open_output: Callable[[str], Any],
        remove: Callable[[str], None],
        day_of: str | None,
    ) -> None:
        """`name` gives a file's path from its day and a unique stem; `open_output` opens a stream to write it;
        `day_of` names the time column whose day partitions the files (None: no partitions)."""
        dictionary, statistics = encoding_choices(model)
        self.options = {"compression": "zstd", "compression_level": 1, "use_dictionary": dictionary,
                        "write_statistics": statistics}  # fmt: skip
        self.name, self.open_output, self.remove_file, self.day_of = name, open_output, remove, day_of
        self.written: list[WrittenFile] = []
        self._open: dict[dt.date | None, _OpenFile] = {}
        self._stem = uuid.uuid4().hex

    def write(self, batch: pa.RecordBatch, schema: pa.Schema) -> None:
        """Write `batch` (in `schema`, which may carry field ids) to its partitions' files."""
        batch = pa.RecordBatch.from_arrays(batch.columns, schema=schema)
        for day, rows in self._by_day(batch):
            file = self._open.get(day)
            if file is None or not file.writer.schema.equals(schema):
                if file is not None:
                    self._close(day)
                path = self.name(day, f"{self._stem}-{len(self.written) + len(self._open):05d}")
                file = self._open[day] = _OpenFile(path, self.open_output(path), schema, day, self.options)
            file.writer.write_batch(rows)
            file.records += rows.num_rows
            if file.stream.tell() >= FILE_BYTES:
                self._close(day)

    def _by_day(self, batch: pa.RecordBatch) -> list[tuple[dt.date | None, pa.RecordBatch]]:
        if self.day_of is None:
            return [(None, batch)]
        days = pc.cast(batch.column(self.day_of), pa.date32())
        distinct = pc.unique(days).to_pylist()
        if len(distinct) == 1:
            return [(distinct[0], batch)]
        return [(day, batch.filter(pc.equal(days, pa.scalar(day, pa.date32())))) for day in distinct]

    def _close(self, day: dt.date | None) -> None:
        self.written.append(self._open.pop(day).close())

    def close(self) -> list[WrittenFile]:
        """Close every open file; all the files written."""
        for day in list(self._open):
            self._close(day)
        return self.written

    def discard(self) -> None:
        """Close what is open and remove every file written (best effort: an orphan file harms no reader)."""
        paths = [file.path for file in self.written] + [file.path for file in self._open.values()]
        for file in self._open.values():
            with contextlib.suppress(Exception):
                file.close()
        self._open, self.written = {}, []
        for path in paths:
            with contextlib.suppress(Exception):
                self.remove_file(path)


def days_since_epoch(day: dt.date) -> int:
    return (day - EPOCH).days
