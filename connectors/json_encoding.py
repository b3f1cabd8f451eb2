"""How values JSON has no type for are written, the same in API responses and exported files."""

import uuid
from datetime import UTC, datetime
from typing import Any


def default(value: Any) -> Any:
    """`json.dumps(..., default=default)`: datetimes as ISO 8601 in UTC (`Z`), UUIDs as strings."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value.tzinfo else value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
