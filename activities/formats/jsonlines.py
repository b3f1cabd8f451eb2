"""JSONLines: one JSON object per line, UTF-8; uuids as strings, datetimes in ISO 8601 (UTC)."""

import json
from typing import Any

from batch_exports.json_encoding import default

EXTENSION = "jsonl"


_encoder = json.JSONEncoder(default=default, separators=(",", ":"), ensure_ascii=False)


def encode(batch: list[dict[str, Any]]) -> bytes:
    return "".join(_encoder.encode(row) + "\n" for row in batch).encode()
