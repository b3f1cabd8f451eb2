"""JSONLines: one JSON object per line, UTF-8; uuids as strings, datetimes as ISO 8601 in UTC
(`2026-01-01T10:00:00.000000Z`), JSON columns inline; compressed while written when the config asks
(gzip, brotli, zstd). Lines are built a column at a time in native code (see `connectors.columns`)."""

import pyarrow as pa

from connectors.columns import json_lines
from connectors.formats.compression import SUFFIXES, compressor
from connectors.formats.options import Compression


class JsonLinesEncoder:
    def __init__(self, compression: Compression | None) -> None:
        self.suffix = ".jsonl" + (SUFFIXES[compression] if compression else "")
        self._compressor = compressor(compression)

    def encode(self, batch: pa.RecordBatch) -> bytes:
        return self._compressor.compress(memoryview(json_lines(batch)))

    def finish(self) -> bytes:
        return self._compressor.flush()
