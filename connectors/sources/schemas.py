"""The columns each model exports and their types, named once for every destination that needs types.

Types are logical: `uuid`, `text`, `json`, `timestamp`, `bigint`, `float`, `boolean`. The Postgres
destination maps them to column types, the Parquet format to Arrow types.
"""

SCHEMAS: dict[str, dict[str, str]] = {
    "events": {  # PostHog's columns for files, in its order
        "uuid": "uuid", "timestamp": "timestamp", "_inserted_at": "timestamp", "created_at": "timestamp",
        "event": "text", "properties": "json", "distinct_id": "text", "elements_chain": "text",
        "person_properties": "json", "person_id": "uuid",
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

POSTGRES_SCHEMAS: dict[str, dict[str, str]] = {
    **SCHEMAS,
    "events": {  # PostHog's PostgreSQL export: its own columns (`uuid` as text, as its VARCHAR(200) holds it)
        "uuid": "text", "event": "text", "properties": "json", "elements": "json", "set": "json",
        "set_once": "json", "distinct_id": "text", "team_id": "bigint", "ip": "text", "site_url": "text",
        "timestamp": "timestamp",
    },
}  # fmt: skip
"""The PostgreSQL destination's columns: the events model has PostHog's own set for it."""

KEYS: dict[str, tuple[str, ...]] = {
    "events": ("uuid",),
    "persons": ("team_id", "distinct_id"),
    "sessions": ("session_id",),
}
"""The columns that identify a record: a rerun replaces the rows with the same key."""
