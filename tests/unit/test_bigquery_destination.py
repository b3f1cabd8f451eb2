"""The BigQuery destination without a server: its config (required fields, write-only secrets, the fields that
scope them, 400-worthy errors without the secret), the statements it sends (each parses in sqlglot's BigQuery
dialect, and says what the apply must), the stage's rows and the reconciling of a table's columns."""

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
import sqlglot
from google.cloud.bigquery import SchemaField
from pydantic import ValidationError
from sqlglot import exp

from connectors.destinations import DestinationUserError, parse_config
from connectors.destinations.base import Context
from connectors.destinations.network.hosts import HostRefused
from connectors.destinations.network.proxy import serving
from connectors.destinations.warehouses import bigquery_sql as sql
from connectors.destinations.warehouses.bigquery import (
    BigQueryConfig,
    arrow_schema,
    client,
    reconcile,
    staged_rows,
)
from connectors.destinations.warehouses.staging import RULES
from entrypoints.bigquery import throwaway_key

KEY = throwaway_key()
GOOD = {"project_id": "my-project", "dataset_id": "analytics", "table_id": "events", "private_key": KEY,
        "private_key_id": "abc123", "client_email": "exports@my-project.iam.gserviceaccount.com"}  # fmt: skip


def problem(config: dict[str, object]) -> tuple[str, str]:
    with pytest.raises(ValidationError) as raised:
        parse_config("BigQuery", config)
    first = raised.value.errors(include_url=False)[0]
    return ".".join(str(p) for p in first["loc"]), first["msg"]


def test_a_good_config_shows_no_secret_and_scopes_them_by_project_and_token_uri() -> None:
    config = parse_config("BigQuery", GOOD)
    assert isinstance(config, BigQueryConfig) and config.token_uri == "https://oauth2.googleapis.com/token"
    assert not {"private_key", "private_key_id"} & set(config.public())
    assert config.secret_scope_fields == {"project_id", "token_uri"}
    assert "abc123" not in config.redact("key abc123 refused") and KEY not in config.redact(f"it was {KEY}")
    assert parse_config("BigQuery", {**GOOD, "private_key": KEY.replace("\n", "\\n")})  # as a JSON key file holds it


@pytest.mark.parametrize(
    ("field", "value"),
    [("private_key", "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"),
     ("client_email", "no-at-sign"), ("project_id", "Upper_Case"), ("dataset_id", "a-b"), ("table_id", "a.b"),
     ("table_id", "bx_stage_x"), ("table_id", "bx_run_marks"), ("token_uri", "http://oauth2.googleapis.com/token"),
     ("token_uri", "https://user@host/token")],
)  # fmt: skip
def test_a_bad_field_is_named_and_no_key_echoed(field: str, value: str) -> None:
    where, message = problem({**GOOD, field: value})
    assert where == field and KEY not in message and "not a key" not in message


@pytest.mark.parametrize("field", ["project_id", "dataset_id", "table_id", "private_key", "private_key_id",
                                   "client_email"])  # fmt: skip
def test_each_required_field_is_required(field: str) -> None:
    assert problem({k: v for k, v in GOOD.items() if k != field})[0] == field


async def test_a_token_uri_not_googles_is_refused_before_any_connection(tmp_path: Path) -> None:
    async with serving() as egress:
        google = {"bigquery_url": "", "bigquery_token_uri": "https://oauth2.googleapis.com/token"}
        context = Context(files_root=tmp_path, allow_private=True, egress=egress, destination_settings=google)
        route = egress.route(context)
        config = BigQueryConfig.model_validate({**GOOD, "token_uri": "https://tokens.example.com/token"})
        with pytest.raises(HostRefused) as refused:
            client(config, context, route)
        assert refused.value.field == "token_uri" and route.connections == 0
        assert "BATCH_EXPORTS_BIGQUERY_TOKEN_URI" in str(refused.value)
        elsewhere = {**google, "bigquery_token_uri": "https://tokens.example.com/token"}
        named = Context(files_root=tmp_path, allow_private=True, egress=egress, destination_settings=elsewhere)
        client(config, named, egress.route(named)).close()  # the setting names it: allowed
        legacy = BigQueryConfig.model_validate({**GOOD, "token_uri": "https://accounts.google.com/o/oauth2/token"})
        client(legacy, context, route).close()


def statements(model: str, use_json_type: bool) -> list[str]:
    columns = sql.columns(model, use_json_type)
    merge = sql.merge("p.d.t", "p.d.bx_stage_1_a", RULES[model], columns, {c.name: c for c in columns})
    return [
        sql.apply_script(merge, "p.d.bx_run_marks", "t", "0193a1b2-c3d4-7e5f-8a6b-000000000001", 12),
        sql.create_marks("p.d.bx_run_marks"),
        sql.applied("p.d.bx_run_marks"),
        *(sql.add_column("p.d.t", c) for c in columns),
    ]


@pytest.mark.parametrize("use_json_type", [True, False])
@pytest.mark.parametrize("model", ["events", "persons", "sessions"])
def test_every_statement_parses_in_bigquerys_dialect(model: str, use_json_type: bool) -> None:
    for text in statements(model, use_json_type):
        parsed = sqlglot.parse(text, read="bigquery")
        assert parsed and not any(isinstance(e, exp.Command) for e in parsed if e is not None), text


@pytest.mark.parametrize("model", ["events", "persons", "sessions"])
def test_the_merge_dedups_by_key_sets_unqualified_columns_and_replaces_only_newer(model: str) -> None:
    columns = sql.columns(model, True)
    merge = sql.merge("p.d.t", "p.d.s", RULES[model], columns, {c.name: c for c in columns})
    (parsed,) = [e for e in sqlglot.parse(merge, read="bigquery") if e is not None]
    assert isinstance(parsed, exp.Merge)
    key, newer = RULES[model].key, RULES[model].newer
    window = parsed.find(exp.Window)
    assert window is not None and [c.name for c in window.args["partition_by"]] == list(key)
    updates = [w for w in parsed.find_all(exp.When) if w.args.get("matched")]
    (update,) = updates
    targets = [eq.this for eq in update.find_all(exp.EQ) if isinstance(eq.parent, exp.Update)]
    assert targets and all(isinstance(c, exp.Column) and not c.table for c in targets)
    assert sql.INGESTED not in {c.name for c in targets}  # the first apply's time is kept
    assert {c.name for c in targets}.isdisjoint(key)
    condition = update.args.get("condition")
    assert (condition is None) == (not newer) and all(c in merge for c in newer)
    inserted = [w for w in parsed.find_all(exp.When) if not w.args.get("matched")]
    assert len(inserted) == 1 and "NOT MATCHED BY TARGET" in merge
    json_columns = [c.name for c in columns if c.type == "JSON"]
    assert all(f"PARSE_JSON(s.`{name}`)" in merge for name in json_columns)


def test_the_apply_is_one_transaction_with_the_runs_mark() -> None:
    script = sql.apply_script("MERGE `t` AS t USING `s` AS s ON t.a = s.a WHEN NOT MATCHED THEN INSERT (a) "
                              "VALUES (s.a)", "p.d.bx_run_marks", "events", "run-1", 3)  # fmt: skip
    parts = [p.strip() for p in script.split(";") if p.strip()]
    assert parts[0] == "BEGIN TRANSACTION" and parts[-1] == "COMMIT TRANSACTION"
    assert parts[1].startswith("MERGE") and parts[2].startswith("INSERT INTO `p.d.bx_run_marks`")
    assert "'events', 'run-1', 3, CURRENT_TIMESTAMP()" in parts[2]
    with pytest.raises(ValueError):
        sql.apply_script("MERGE ...", "p.d.bx_run_marks", "events", "run'; DROP TABLE x; --", 3)


def test_events_have_posthogs_columns_and_json_as_the_option_says() -> None:
    names = [c.name for c in sql.columns("events", True)]
    assert names == ["uuid", "event", "properties", "elements", "set", "set_once", "distinct_id", "team_id", "ip",
                     "site_url", "timestamp", "bq_ingested_timestamp"]  # fmt: skip
    types = {c.name: c.type for c in sql.columns("events", True)}
    assert (types["properties"], types["elements"], types["team_id"], types["timestamp"]) == (
        "JSON", "STRING", "INT64", "TIMESTAMP")  # fmt: skip
    assert {c.type for c in sql.columns("events", False) if c.name in ("properties", "set", "set_once")} == {"STRING"}
    sessions = {c.name: c for c in sql.columns("sessions", True)}
    assert sessions["urls"].repeated and sessions["urls"].sql_type == "ARRAY<STRING>" and "_inserted_at" not in sessions


def test_staged_rows_take_the_stages_types_json_as_text_and_the_ingestion_time() -> None:
    columns = sql.columns("events", True)
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    batch = pa.RecordBatch.from_pydict({
        "uuid": pa.array(["018f0000-0000-7000-8000-000000000001"]),
        "properties": pa.array(['{"a": 1}'], pa.large_string()),
        "team_id": pa.array([7], pa.int32()), "timestamp": pa.array([at.replace(tzinfo=None)], pa.timestamp("ns")),
    })  # fmt: skip
    table = staged_rows(batch, arrow_schema(columns), at)
    row = table.to_pylist()[0]
    assert row["properties"] == '{"a": 1}' and row["team_id"] == 7 and row["timestamp"] == at
    assert row["bq_ingested_timestamp"] == at and row["ip"] is None
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")


def test_a_table_with_json_as_text_takes_the_rows_and_another_type_is_named() -> None:
    wanted = sql.columns("events", True)
    posthogs = [SchemaField(c.name, "STRING" if c.type == "JSON" else c.type) for c in wanted if c.name != sql.INGESTED]
    missing, into = reconcile("p.d.t", wanted, posthogs)
    assert [c.name for c in missing] == [sql.INGESTED] and into["properties"].type == "STRING"
    legacy = [SchemaField("team_id", "INTEGER"), SchemaField("timestamp", "TIMESTAMP")]
    assert reconcile("p.d.t", wanted, legacy)[1]["team_id"].type == "INT64"
    with pytest.raises(DestinationUserError) as conflict:
        reconcile("p.d.t", wanted, [SchemaField("team_id", "STRING"), SchemaField("uuid", "STRING", mode="REPEATED")])
    said = str(conflict.value)
    assert "team_id is STRING in the table, the export writes INT64" in said
    assert "uuid is ARRAY<STRING> in the table, the export writes STRING" in said
