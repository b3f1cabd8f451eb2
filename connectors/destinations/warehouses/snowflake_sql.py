"""The statements the `Snowflake` destination sends, and the tables it creates: PostHog's own.

Every statement is built here from validated identifiers (quoted) and names this service makes (unquoted: a stage
table's name from `staging`, so its table stage `@%name` needs no quotes, which fakesnow could not read), and each
one is accepted by real Snowflake and by fakesnow, the server the tests run: no `REMOVE`, no quoted table stage,
no JSON load by column name. `tests/unit/test_snowflake_destination.py` parses each with sqlglot's Snowflake dialect.

A load is: `PUT` Parquet files to the table stage of a stage table of the attempt's own, `COPY INTO` that stage
table (each column cast from the file, JSON parsed into VARIANT), then one `MERGE` into the target (events by
`uuid`, persons by `(team_id, distinct_id)` when a version is newer, sessions by `(team_id, session_id)` when
`end_timestamp` is newer), then a mark of the run in `batch_export_runs`.
"""

from collections.abc import Callable

from connectors.sources.schemas import SCHEMAS

EVENTS_COLUMNS = {
    "uuid": "STRING", "event": "STRING", "properties": "VARIANT", "elements": "VARIANT", "people_set": "VARIANT",
    "people_set_once": "VARIANT", "distinct_id": "STRING", "team_id": "INTEGER", "ip": "STRING",
    "site_url": "STRING", "timestamp": "TIMESTAMP",
}  # fmt: skip
"""PostHog's Snowflake events table, in its order."""

RENAMED = {"set": "people_set", "set_once": "people_set_once"}
"""The PostgreSQL event layout's names that PostHog's Snowflake table spells its own way."""

_TYPES = {"uuid": "STRING", "text": "STRING", "json": "VARIANT", "timestamp": "TIMESTAMP", "bigint": "INTEGER",
          "float": "FLOAT", "boolean": "BOOLEAN", "text_list": "ARRAY"}  # fmt: skip


def _model_columns(model: str) -> dict[str, str]:
    """Persons and sessions as PostHog types them for Snowflake: the model's columns but `_inserted_at`."""
    return {name: _TYPES[kind] for name, kind in SCHEMAS[model].items() if name != "_inserted_at"}


TABLES: dict[str, dict[str, str]] = {
    "events": EVENTS_COLUMNS,
    "persons": _model_columns("persons"),
    "sessions": _model_columns("sessions"),
}
"""Each model's table: column name to Snowflake type."""

FAMILIES = {
    "STRING": {"TEXT"}, "VARIANT": {"VARIANT", "OBJECT", "ARRAY", "TEXT"}, "ARRAY": {"ARRAY", "VARIANT"},
    "INTEGER": {"FIXED"}, "FLOAT": {"REAL", "FIXED"}, "BOOLEAN": {"BOOLEAN"},
    "TIMESTAMP": {"TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ"},
}  # fmt: skip
"""For each type this destination writes, the kinds of column (the connector's names) that take it."""

MARKS_TABLE = "batch_export_runs"
MARKS_COLUMNS = {"batch_export_id": "STRING", "run_id": "STRING", "table_name": "STRING",
                 "data_interval_start": "TIMESTAMP", "data_interval_end": "TIMESTAMP", "records": "INTEGER",
                 "applied_at": "TIMESTAMP"}  # fmt: skip
"""One row per applied load: a retried attempt whose apply landed finds its run here and applies nothing."""


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def create_table(table: str, columns: dict[str, str]) -> str:
    definition = ", ".join(f"{quote(name)} {kind}" for name, kind in columns.items())
    return f"CREATE TABLE IF NOT EXISTS {quote(table)} ({definition}) COMMENT = 'PostHog generated table'"


def create_stage_table(stage: str, columns: dict[str, str]) -> str:
    definition = ", ".join(f"{quote(name)} {kind}" for name, kind in columns.items())
    return f"CREATE TRANSIENT TABLE {stage} ({definition})"


def describe(table: str) -> str:
    """The table's columns, read from the cursor's description (fakesnow's DESCRIBE leaves VARIANTs out)."""
    return f"SELECT * FROM {quote(table)} LIMIT 0"


def insert_nothing(table: str) -> str:
    """An insert of no row: refused where the role may not write the table, or where it is not a table."""
    return f"INSERT INTO {quote(table)} SELECT * FROM {quote(table)} WHERE 1 = 0"


def add_column(table: str, name: str, kind: str) -> str:
    return f"ALTER TABLE {quote(table)} ADD COLUMN {quote(name)} {kind}"


def stale_stages(prefix: str) -> str:
    """Stage tables an earlier attempt of the run left (a worker lost before it could drop them): unquoted names,
    so Snowflake holds them in upper case."""
    return (
        "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = CURRENT_SCHEMA() "
        f"AND STARTSWITH(TABLE_NAME, {literal(prefix.upper())})"
    )


def drop_table(stage: str) -> str:
    return f"DROP TABLE IF EXISTS {stage}"


def put(stage: str, file_name: str) -> str:
    """Upload of one file (sent as the statement's `file_stream`) to the stage table's own stage."""
    return f"PUT file:///{file_name} @%{stage} AUTO_COMPRESS = FALSE OVERWRITE = TRUE"


def _cast(name: str, kind: str) -> str:
    value = f"$1:{quote(name)}"
    if kind in ("VARIANT", "ARRAY"):
        return f"PARSE_JSON({value}::STRING)"  # the file holds the JSON text
    if kind == "TIMESTAMP":
        return f"{value}::STRING::TIMESTAMP"  # the file holds UTC without an offset: no Parquet logical types needed
    return f"{value}::{kind}"


def copy_into(stage: str, columns: dict[str, str]) -> str:
    """Load every file of the stage table's stage into it, casting each column; the files are purged."""
    names = ", ".join(quote(name) for name in columns)
    casts = ", ".join(_cast(name, kind) for name, kind in columns.items())
    return (
        f"COPY INTO {stage} ({names}) FROM (SELECT {casts} FROM @%{stage}) FILE_FORMAT = (TYPE = PARQUET) PURGE = TRUE"
    )


def merge(
    table: str, stage: str, columns: list[str], keys: tuple[str, ...], newer: tuple[str, ...],
    newer_condition: Callable[[Callable[[str], str], str, str], str],
) -> str:  # fmt: skip
    """One `MERGE` of the stage into the table: the stage's rows deduplicated by key (the newest kept), a matched
    row replaced (no `newer` columns) or replaced when `newer_condition` holds, a new one inserted."""
    order = ", ".join(f"{quote(c)} DESC NULLS LAST" for c in newer or ("timestamp",) if c in columns) or "1"
    partition = ", ".join(quote(k) for k in keys)
    on = " AND ".join(f"final.{quote(k)} = stage.{quote(k)}" for k in keys)
    matched = f"WHEN MATCHED AND ({newer_condition(quote, 'final', 'stage')}) THEN" if newer else "WHEN MATCHED THEN"
    updates = ", ".join(f"{quote(c)} = stage.{quote(c)}" for c in columns if c not in keys)
    names = ", ".join(quote(c) for c in columns)
    values = ", ".join(f"stage.{quote(c)}" for c in columns)
    return (
        f"MERGE INTO {quote(table)} AS final USING (SELECT * FROM {stage} "
        f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY {order}) = 1) AS stage ON {on} "
        f"{matched} UPDATE SET {updates} WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
    )


def create_marks() -> str:
    return create_table(MARKS_TABLE, MARKS_COLUMNS)


def find_mark() -> str:
    return f'SELECT "records" FROM {quote(MARKS_TABLE)} WHERE "run_id" = %(run_id)s AND "table_name" = %(table_name)s'


def add_mark() -> str:
    names = ", ".join(quote(c) for c in MARKS_COLUMNS)
    return (
        f"INSERT INTO {quote(MARKS_TABLE)} ({names}) SELECT %(batch_export_id)s, %(run_id)s, %(table_name)s, "
        "%(start)s::TIMESTAMP, %(end)s::TIMESTAMP, %(records)s, CURRENT_TIMESTAMP()::TIMESTAMP"
    )
