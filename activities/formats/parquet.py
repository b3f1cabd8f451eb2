"""Parquet: columns typed by the model's schema (JSON columns as text), compressed inside the file
(zstd unless the config says snappy, gzip, lz4 or brotli). Row groups are emitted as batches come."""

import json
import uuid
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from batch_exports.destination_configs import Compression
from batch_exports.json_encoding import default
from batch_exports.model_schemas import SCHEMAS

ARROW_TYPES = {
    "uuid": pa.string(), "text": pa.string(), "json": pa.string(), "timestamp": pa.timestamp("us", tz="UTC"),
    "bigint": pa.int64(), "float": pa.float64(), "boolean": pa.bool_(),
}  # fmt: skip


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


class ParquetEncoder:
    suffix = ".parquet"

    def __init__(self, compression: Compression | None, model: str | None) -> None:
        self.compression = (compression or Compression.ZSTD).value
        self.kinds = SCHEMAS.get(model or "")
        self._sink = _Chunks()
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def _schema_for(self, row: dict[str, Any]) -> pa.Schema:
        if self.kinds is not None:
            return pa.schema([(name, ARROW_TYPES[kind]) for name, kind in self.kinds.items()])
        return pa.schema([(name, pa.string()) for name in row])  # columns a hogql_query chose: as text

    def _column(self, name: str, rows: list[dict[str, Any]]) -> list[Any]:
        kind = self.kinds.get(name) if self.kinds else None
        values = [row.get(name) for row in rows]
        return [_text(v) for v in values] if kind in (None, "json", "uuid") else values

    def encode(self, rows: list[dict[str, Any]]) -> bytes:
        if not rows:
            return b""
        if self._writer is None:
            self._schema = self._schema_for(rows[0])
            self._writer = pq.ParquetWriter(
                pa.PythonFile(self._sink, mode="w"), self._schema, compression=self.compression
            )
        assert self._schema is not None
        table = pa.table({name: self._column(name, rows) for name in self._schema.names}, schema=self._schema)
        self._writer.write_table(table)
        return self._sink.take()

    def finish(self) -> bytes:
        if self._writer is None:  # an empty interval: a valid file with no rows
            self._schema = self._schema_for({})
            self._writer = pq.ParquetWriter(
                pa.PythonFile(self._sink, mode="w"), self._schema, compression=self.compression
            )
        self._writer.close()
        return self._sink.take()


def _text(value: Any) -> str | None:
    """A value for a text column: strings as they are, uuids and datetimes as usual, the rest as JSON."""
    if value is None or isinstance(value, str):
        return value
    encoded = default(value) if isinstance(value, uuid.UUID | datetime) else None
    return encoded if isinstance(encoded, str) else json.dumps(value, default=default)
