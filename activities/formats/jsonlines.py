"""JSONLines: one JSON object per line, UTF-8; uuids as strings, datetimes in ISO 8601 (UTC)."""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

EXTENSION = "jsonl"


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_encoder = json.JSONEncoder(default=_default, separators=(",", ":"), ensure_ascii=False)


def encode(batch: list[dict[str, Any]]) -> bytes:
    return "".join(_encoder.encode(row) + "\n" for row in batch).encode()
