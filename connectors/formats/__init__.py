"""File formats a destination can write: how record batches become the bytes of one file.

An encoder turns each batch into the bytes to append (possibly none yet) and, at the end, the bytes
that close the file, so writers stream whatever the format.
"""

from typing import Protocol

import pyarrow as pa

from connectors.formats.jsonlines import JsonLinesEncoder
from connectors.formats.options import Compression, FileFormat
from connectors.formats.parquet import ParquetEncoder


class Encoder(Protocol):
    suffix: str
    """What file names end with: `.jsonl.gz`, `.parquet`, ..."""

    def encode(self, batch: pa.RecordBatch) -> bytes: ...

    def finish(self) -> bytes: ...


def encoder_for(file_format: FileFormat, compression: Compression | None, model: str, custom: bool) -> Encoder:
    """The encoder of a file; `custom` when a hogql_query chose the columns (Parquet keeps the query's types)."""
    if file_format is FileFormat.PARQUET:
        return ParquetEncoder(compression, None if custom else model)
    return JsonLinesEncoder(compression)
