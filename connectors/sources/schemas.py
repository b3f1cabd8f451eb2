"""The columns each model exports and their types, named once for every destination that needs types.

Types are logical: `uuid`, `text`, `json`, `timestamp`, `bigint`, `float`, `boolean`, `text_list`. The Postgres
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
    "sessions": {  # PostHog's 48 columns, in its order
        "session_id": "text", "session_id_v7": "text", "team_id": "bigint", "distinct_id": "text",
        "start_timestamp": "timestamp", "end_timestamp": "timestamp", "urls": "text_list", "num_uniq_urls": "bigint",
        "entry_current_url": "text", "entry_pathname": "text", "entry_hostname": "text", "end_current_url": "text",
        "end_pathname": "text", "end_hostname": "text", "entry_utm_source": "text", "entry_utm_campaign": "text",
        "entry_utm_medium": "text", "entry_utm_term": "text", "entry_utm_content": "text",
        "entry_referring_domain": "text", "entry_gclid": "text", "entry_fbclid": "text", "entry_gad_source": "text",
        "pageview_count": "bigint", "autocapture_count": "bigint", "screen_count": "bigint", "channel_type": "text",
        "session_duration": "bigint", "duration": "bigint", "is_bounce": "boolean", "last_external_click_url": "text",
        "page_screen_autocapture_count_up_to": "bigint", "exit_current_url": "text", "exit_pathname": "text",
        "vitals_lcp": "float", "_inserted_at": "timestamp", "entry_gclsrc": "text", "entry_dclid": "text",
        "entry_gbraid": "text", "entry_wbraid": "text", "entry_msclkid": "text", "entry_twclid": "text",
        "entry_li_fat_id": "text", "entry_mc_cid": "text", "entry_igshid": "text", "entry_ttclid": "text",
        "entry__kx": "text", "entry_irclid": "text",
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
    "sessions": ("team_id", "session_id"),
}
"""The columns that identify a record: a rerun replaces the rows with the same key. PostHog's in every warehouse it
writes: a session id is a client's, unique within a team only, so two teams' sessions in one table keep a row each."""

NEWER: dict[str, tuple[str, ...]] = {
    "events": (),
    "persons": ("person_version", "person_distinct_id_version"),
    "sessions": ("end_timestamp",),
}
"""The columns that say a record is newer than the one of the same key a destination holds: a destination that
keeps what it holds (a warehouse's stage-then-apply) replaces it only when one of them is greater. Empty for
events: a record of an interval is replaced whole by a rerun of the interval."""
