"""The columns each model exports and their types, named once for every destination that needs types.

Types are logical: `uuid`, `text`, `json`, `timestamp`, `bigint`, `float`, `boolean`. The Postgres
destination maps them to column types, the Parquet format to Arrow types.
"""

SCHEMAS: dict[str, dict[str, str]] = {
    "events": {
        "uuid": "uuid", "event": "text", "properties": "json", "distinct_id": "text", "person_id": "uuid",
        "person_properties": "json", "timestamp": "timestamp", "created_at": "timestamp", "elements_chain": "text",
        "_inserted_at": "timestamp",
    },
    "persons": {
        "team_id": "bigint", "distinct_id": "text", "person_id": "uuid", "properties": "json",
        "person_version": "bigint", "person_distinct_id_version": "bigint", "created_at": "timestamp",
        "is_deleted": "boolean", "_inserted_at": "timestamp",
    },
    "sessions": {
        "session_id": "text", "distinct_id": "text", "start_timestamp": "timestamp", "end_timestamp": "timestamp",
        "duration_seconds": "float", "entry_url": "text", "exit_url": "text", "pageview_count": "bigint",
        "event_count": "bigint", "_inserted_at": "timestamp",
    },
}  # fmt: skip

KEYS: dict[str, tuple[str, ...]] = {
    "events": ("uuid",),
    "persons": ("team_id", "distinct_id"),
    "sessions": ("session_id",),
}
"""The columns that identify a record: a rerun replaces the rows with the same key."""
