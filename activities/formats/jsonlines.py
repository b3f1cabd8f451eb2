"""JSONLines: one JSON object per line, UTF-8; uuids as strings, datetimes in ISO 8601 (UTC);
compressed while written when the config asks (gzip, brotli, zstd)."""

import json
from typing import Any

from activities.formats.compression import SUFFIXES, compressor
from batch_exports.destination_configs import Compression
from batch_exports.json_encoding import default

_encoder = json.JSONEncoder(default=default, separators=(",", ":"), ensure_ascii=False)


def encode(batch: list[dict[str, Any]]) -> bytes:
    return "".join(_encoder.encode(row) + "\n" for row in batch).encode()


class JsonLinesEncoder:
    def __init__(self, compression: Compression | None) -> None:
        self.suffix = ".jsonl" + (SUFFIXES[compression] if compression else "")
        self._compressor = compressor(compression)

    def encode(self, rows: list[dict[str, Any]]) -> bytes:
        return self._compressor.compress(encode(rows))

    def finish(self) -> bytes:
        return self._compressor.flush()
