"""Parquet: columns typed by the model's schema (UUIDs and JSON columns as text), compressed inside the file
(zstd unless the config says snappy, gzip, lz4 or brotli). Row groups are emitted as batches come."""

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.formats.options import Compression
from connectors.sources.schemas import SCHEMAS

ARROW_TYPES = {
    "uuid": pa.string(), "text": pa.string(), "json": pa.string(), "timestamp": pa.timestamp("us", tz="UTC"),
    "bigint": pa.int64(), "float": pa.float64(), "boolean": pa.bool_(), "text_list": pa.list_(pa.string()),
}  # fmt: skip
REPEATING = {"text", "bigint", "boolean"}
UNORDERED = {"json", "uuid", "text_list"}


class _Chunks:
    """Where the Parquet writer writes: bytes collected until the encoder hands them on."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def encoding_choices(model: str | None) -> tuple[bool | list[str], bool | list[str]]:
    """The columns that get dictionaries, and those that get min/max statistics, of a model's files (all, for a
    hogql_query's columns)."""
    kinds = SCHEMAS.get(model or "") or {}
    # Dictionaries pay off for columns that repeat (event names, ids of a few users), not for unique ones.
    dictionary: bool | list[str] = [n for n, k in kinds.items() if k in REPEATING] or True
    # Min/max statistics let readers skip row groups by time or name; of JSON documents and random ids they
    # are of no use, and cost the writer a comparison per value.
    statistics: bool | list[str] = [n for n, k in kinds.items() if k not in UNORDERED] or True
    return dictionary, statistics


class ParquetEncoder:
    suffix = ".parquet"

    def __init__(self, compression: Compression | None, model: str | None) -> None:
        self.compression = (compression or Compression.ZSTD).value
        kinds = SCHEMAS.get(model or "")
        self._schema = pa.schema([(n, ARROW_TYPES[k]) for n, k in kinds.items()]) if kinds is not None else None
        self._dictionary, self._statistics = encoding_choices(model)
        self._sink = _Chunks()
        self._writer: pq.ParquetWriter | None = None

    def _table(self, batch: pa.RecordBatch) -> pa.Table:
        """The batch in the file's types: the model's schema, or (for a hogql_query) the query's own types."""
        columns = [c.storage if isinstance(c, pa.ExtensionArray) else c for c in batch.columns]  # JSON as text
        if self._schema is None:
            return pa.Table.from_arrays(columns, names=batch.schema.names)
        by_name = dict(zip(batch.schema.names, columns, strict=True))
        return pa.Table.from_arrays([by_name[f.name].cast(f.type) for f in self._schema], schema=self._schema)

    def _open(self, schema: pa.Schema) -> pq.ParquetWriter:
        if self._writer is None:
            self._schema = schema
            self._writer = pq.ParquetWriter(
                pa.PythonFile(self._sink, mode="w"),
                schema,
                compression=self.compression,
                use_dictionary=self._dictionary,
                write_statistics=self._statistics,
            )
        return self._writer

    def encode(self, batch: pa.RecordBatch) -> bytes:
        if batch.num_rows == 0:
            return b""
        table = self._table(batch)
        self._open(table.schema).write_table(table)
        return self._sink.take()

    def finish(self) -> bytes:
        self._open(self._schema or pa.schema([])).close()  # an empty interval: a valid file with no rows
        return self._sink.take()
