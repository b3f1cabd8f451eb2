"""What the `BigQuery` destination says to BigQuery: its tables' columns and the statements it sends, each in
GoogleSQL that real BigQuery and the emulator the tests run (bqemulator) both take, and that sqlglot's BigQuery
dialect parses (a unit test checks every one).

The columns are PostHog's: for events its fixed set (JSON columns as `JSON` with `use_json_type`, else `STRING`),
partitioned by day on `timestamp`; for persons and sessions the model's columns without `_inserted_at`, typed by
their kind. The stage holds JSON as text; the apply parses it where the target's column is `JSON`.

The apply is one `MERGE` of the stage's newest row per key (`ROW_NUMBER`) and the run's mark, in one
transaction, by the model's rule (`staging.RULES`): events replace the row of the same `uuid`; persons and
sessions replace a row only when the staged one is newer, and insert the keys the target lacks. `SET` names the
target's columns unqualified (as the emulator needs).
"""

import re
from dataclasses import dataclass

from connectors.destinations.warehouses.staging import ApplyRule
from connectors.sources.schemas import SCHEMAS

EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("uuid", "text"), ("event", "text"), ("properties", "json"), ("elements", "text"), ("set", "json"),
    ("set_once", "json"), ("distinct_id", "text"), ("team_id", "bigint"), ("ip", "text"), ("site_url", "text"),
    ("timestamp", "timestamp"), ("bq_ingested_timestamp", "timestamp"),
)  # fmt: skip
"""PostHog's BigQuery events table, in its order. `elements` is the chain as a JSON string, kept as `STRING`."""
INGESTED = "bq_ingested_timestamp"
"""When the row reached BigQuery: set by the first apply that wrote it, kept by every later one."""
PARTITION_COLUMN = "timestamp"

TYPES = {"uuid": "STRING", "text": "STRING", "timestamp": "TIMESTAMP", "bigint": "INT64", "float": "FLOAT64",
         "boolean": "BOOL", "text_list": "STRING"}  # fmt: skip
"""BigQuery's type of each logical kind (`sources.schemas`); `json` is `JSON` or `STRING` (`use_json_type`)."""
SAME_TYPE = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}
"""The legacy names BigQuery still answers with for some tables."""

_PLAIN = re.compile(r"^[A-Za-z0-9_.:-]{1,1024}$")
MARKS_TABLE = "bx_run_marks"
"""The dataset's table of applied runs: one row per apply, in the same transaction as the apply."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    """BigQuery's type: STRING, JSON, INT64, ..."""
    repeated: bool = False

    @property
    def mode(self) -> str:
        return "REPEATED" if self.repeated else "NULLABLE"

    @property
    def sql_type(self) -> str:
        return f"ARRAY<{self.type}>" if self.repeated else self.type

    @property
    def stage_type(self) -> str:
        """Its type in the stage: JSON travels as text."""
        return "STRING" if self.type == "JSON" else self.type


def columns(model: str, use_json_type: bool) -> tuple[Column, ...]:
    """The target table's columns for `model`."""
    kinds = (
        EVENT_COLUMNS if model == "events" else tuple((c, k) for c, k in SCHEMAS[model].items() if c != "_inserted_at")
    )
    json_type = "JSON" if use_json_type else "STRING"
    return tuple(
        Column(name, json_type if kind == "json" else TYPES[kind], kind == "text_list") for name, kind in kinds
    )


def normal_type(type_name: str) -> str:
    return SAME_TYPE.get(type_name.upper(), type_name.upper())


def quote(name: str) -> str:
    """A validated identifier (or dotted path of them) in backticks."""
    return f"`{name}`"


def add_column(table: str, column: Column) -> str:
    return f"ALTER TABLE {quote(table)} ADD COLUMN IF NOT EXISTS {quote(column.name)} {column.sql_type}"


def create_marks(marks: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {quote(marks)} "
        "(table_id STRING, run_id STRING, records INT64, applied_at TIMESTAMP)"
    )


def applied(marks: str) -> str:
    """Whether the run's apply of as many records landed: parameters @table_id, @run_id and @records."""
    return (
        f"SELECT COUNT(*) AS applied FROM {quote(marks)} "
        "WHERE table_id = @table_id AND run_id = @run_id AND records = @records"
    )


def merge(target: str, stage: str, rule: ApplyRule, staged: tuple[Column, ...], into: dict[str, Column]) -> str:
    """The `MERGE` of the stage's newest row per key into the target, by the model's rule; `into` is the target's
    column of each staged one (its type decides whether the text is parsed as JSON)."""
    key, newer = rule.key, rule.newer
    names = [c.name for c in staged]
    order = ", ".join(f"{quote(c)} DESC" for c in newer or (INGESTED,) if c in names) or "1"
    partition = ", ".join(quote(c) for c in key)
    listed = ", ".join(quote(n) for n in names)
    newest = (
        f"SELECT {listed} FROM (SELECT {listed}, ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY {order}) "
        f"AS bx_row FROM {quote(stage)}) WHERE bx_row = 1"
    )

    def value(name: str) -> str:
        return f"PARSE_JSON(s.{quote(name)})" if into[name].type == "JSON" else f"s.{quote(name)}"

    on = " AND ".join(f"t.{quote(c)} = s.{quote(c)}" for c in key)
    updated = [n for n in names if n not in key and n != INGESTED]
    sets = ", ".join(f"{quote(n)} = {value(n)}" for n in updated)
    condition = rule.newer_condition(quote)
    matched = f"WHEN MATCHED AND ({condition}) THEN" if newer else "WHEN MATCHED THEN"
    values = ", ".join(value(n) for n in names)
    return (
        f"MERGE {quote(target)} AS t USING ({newest}) AS s ON {on} "
        f"{matched} UPDATE SET {sets} "
        f"WHEN NOT MATCHED BY TARGET THEN INSERT ({listed}) VALUES ({values})"
    )


def literal(value: str) -> str:
    """A string of identifier characters as a GoogleSQL literal (a script's statements take no parameters in
    every BigQuery: the values of a mark are inlined, and only such values are)."""
    if not _PLAIN.match(value):
        raise ValueError(f"not a plain value for a literal: {value[:40]!r}")
    return f"'{value}'"


def apply_script(merge_statement: str, marks: str, table_id: str, run_id: str, records: int) -> str:
    """The merge and the run's mark in one transaction."""
    return (
        f"BEGIN TRANSACTION; {merge_statement}; "
        f"INSERT INTO {quote(marks)} (table_id, run_id, records, applied_at) "
        f"VALUES ({literal(table_id)}, {literal(run_id)}, {int(records)}, CURRENT_TIMESTAMP()); COMMIT TRANSACTION;"
    )
