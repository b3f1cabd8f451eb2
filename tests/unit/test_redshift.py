"""The Redshift destination's config (PostHog's fields, secrets write-only, COPY refused) and its statements, each
of which Redshift's grammar (sqlglot's dialect) must read as a statement it knows."""

import pytest
import sqlglot
from pydantic import ValidationError
from sqlglot import exp

from batch_exports.exports.validation import InvalidField, merge_destination
from connectors.destinations import parse_config
from connectors.destinations.warehouses.postgres import _OWN_TABLES
from connectors.destinations.warehouses.redshift import (
    HELD_COLUMNS,
    MARKS,
    MAY_CREATE,
    MAY_DELETE,
    MAY_INSERT,
    STAGES,
    RedshiftConfig,
    add_column,
    apply_statements,
    column_types,
    conflicts,
    create_marks,
    create_table,
    drop_table,
    find_mark,
    insert_mark,
    insert_rows,
    stage_types,
    table,
)
from connectors.destinations.warehouses.staging import RULES, ApplyRule
from connectors.sources.schemas import KEYS

CONFIG = {"host": "cluster.example.com", "database": "dev", "schema": "exports", "table_name": "events",
          "user": "awsuser", "password": "Secret-Pass1"}  # fmt: skip


def error_of(config: dict[str, object]) -> tuple[str, str]:
    with pytest.raises(ValidationError) as raised:
        parse_config("Redshift", config)
    first = raised.value.errors()[0]
    return ".".join(str(part) for part in first["loc"]), first["msg"]


def test_posthogs_fields_with_port_5439_and_varchar_insert_by_default() -> None:
    config = parse_config("Redshift", CONFIG)
    assert isinstance(config, RedshiftConfig)
    assert (config.port, config.properties_data_type, config.mode, config.schema_name) == (
        5439, "varchar", "INSERT", "exports")  # fmt: skip


@pytest.mark.parametrize("field", ["host", "database", "table_name", "user"])
def test_a_required_field_missing_is_named(field: str) -> None:
    assert error_of({k: v for k, v in CONFIG.items() if k != field})[0] == field


@pytest.mark.parametrize(
    ("change", "field"),
    [({"properties_data_type": "json"}, "properties_data_type"), ({"port": 0}, "port"), ({"mode": "UNLOAD"}, "mode"),
     ({"table_name": "events; DROP TABLE x"}, "table_name"), ({"schema": "a.b"}, "schema"), ({"extra": 1}, "extra")],
)  # fmt: skip
def test_a_bad_value_is_named(change: dict[str, object], field: str) -> None:
    assert error_of({**CONFIG, **change})[0] == field


def test_copy_mode_and_its_inputs_are_refused_saying_why() -> None:
    field, message = error_of({**CONFIG, "mode": "COPY"})
    assert field == "mode" and "COPY ... MANIFEST" in message and "INSERT" in message
    keys = {"aws_access_key_id": "AKIA", "aws_secret_access_key": "s"}
    copy_inputs = {"s3_bucket": "b", "region_name": "us-east-1", "authorization": keys}
    field, message = error_of({**CONFIG, "copy_inputs": copy_inputs})
    assert field == "copy_inputs" and "mode COPY" in message
    assert parse_config("Redshift", {**CONFIG, "copy_inputs": None}).public()["copy_inputs"] is None


def test_user_and_password_are_write_only_secrets_scoped_to_where_they_go() -> None:
    config = parse_config("Redshift", CONFIG)
    shown = config.public()
    assert "user" not in shown and "password" not in shown and shown["host"] == "cluster.example.com"
    assert {"host", "port", "database"} <= RedshiftConfig.secret_scope_fields
    assert config.redact('password authentication failed for user "awsuser" (Secret-Pass1)') == (
        'password authentication failed for user "[redacted]" ([redacted])')  # fmt: skip


def test_posthogs_tables() -> None:
    varchar = column_types("events", "varchar")
    assert list(varchar) == ["uuid", "event", "properties", "elements", "set", "set_once", "distinct_id", "team_id",
                             "ip", "site_url", "timestamp"]  # fmt: skip
    assert (varchar["properties"], varchar["team_id"], varchar["uuid"]) == ("VARCHAR(65535)", "INTEGER", "VARCHAR(200)")
    assert column_types("events", "super")["set_once"] == "SUPER"
    persons = column_types("persons", "super")
    assert (
        persons["properties"] == "SUPER" and persons["person_id"] == "VARCHAR(65535)" and "_inserted_at" not in persons
    )
    sessions = column_types("sessions", "varchar")
    assert sessions["urls"] == "SUPER" and sessions["vitals_lcp"] == "DOUBLE PRECISION" and len(sessions) == 47


def test_a_table_of_another_shape_is_named_and_json_fits_super_or_varchar() -> None:
    wanted = column_types("events", "super")
    held = {"uuid": "character varying", "properties": "character varying", "set": "super", "team_id": "bigint",
            "timestamp": "integer", "event": "boolean"}  # fmt: skip
    assert conflicts(wanted, held) == [
        "column event is boolean, where this export writes VARCHAR(200)",
        "column timestamp is integer, where this export writes TIMESTAMP WITH TIME ZONE",
    ]
    staged = stage_types(wanted, held)
    assert (staged["properties"], staged["set"], staged["set_once"]) == ("VARCHAR(65535)", "SUPER", "SUPER")


def redshift_statement(sql: str) -> exp.Expr:
    parsed = sqlglot.parse(sql, read="redshift")
    assert len(parsed) == 1 and parsed[0] is not None, sql
    assert not isinstance(parsed[0], exp.Command), f"not a statement Redshift's grammar knows: {sql}"
    return parsed[0]


def every_statement() -> list[str]:
    target, stage = table("exports", "events"), table("exports", "bx_stage_0123_abcd")
    sent = [_OWN_TABLES, HELD_COLUMNS, STAGES, MAY_CREATE, MAY_INSERT, MAY_DELETE, create_marks("exports"),
            find_mark("exports"), insert_mark("exports"), drop_table(stage),
            add_column(target, "set", "SUPER")]  # fmt: skip
    for model in KEYS:
        for data_type in ("varchar", "super"):
            types = column_types(model, data_type)
            sent += [create_table(target, types), create_table(stage, types, if_not_exists=False),
                     insert_rows(stage, types, 3)]  # fmt: skip
        sent += apply_statements(target, stage, list(types), RULES[model])
    return sent


def test_every_statement_parses_as_redshift() -> None:
    statements = every_statement()
    assert len(statements) > 20
    for sql in statements:
        redshift_statement(sql)


def test_the_statements_say_what_they_should() -> None:
    insert = redshift_statement(insert_rows(table("s", "t"), {"a": "VARCHAR(200)", "b": "SUPER"}, 2))
    assert insert.sql("redshift") == 'INSERT INTO "s"."t" ("a", "b") VALUES ($1, JSON_PARSE($2)), ($3, JSON_PARSE($4))'
    rule = ApplyRule(("k",), ("v",))
    drop, delete, insert = (redshift_statement(s) for s in apply_statements('"s"."t"', '"s"."st"', ["k", "v"], rule))
    assert isinstance(drop, exp.Delete) and drop.this.name == "st"  # the staged rows that are not newer go
    assert isinstance(delete, exp.Delete) and delete.this.name == "t"
    assert isinstance(insert, exp.Insert) and insert.this.this.name == "t"
    assert redshift_statement(create_marks("s")).this.this.name == MARKS
    with pytest.raises((AssertionError, sqlglot.ParseError)):  # what sqlglot cannot read is not taken on trust
        redshift_statement("MERGE INTO t USING s ON t.k = s.k REMOVE DUPLICATES")


@pytest.mark.parametrize("change", [{"host": "evil.example.com"}, {"port": 5440}, {"database": "other"},
                                    {"has_self_signed_cert": True}])  # fmt: skip
def test_moving_where_the_secrets_go_needs_them_again(change: dict[str, object]) -> None:
    config = parse_config("Redshift", CONFIG)
    with pytest.raises(InvalidField) as refused:
        merge_destination("Redshift", config, {"config": change})
    assert refused.value.attr == "destination__config__password"
    merged = merge_destination("Redshift", config, {"config": {**change, "user": "awsuser", "password": "x"}})
    assert merged["config"] == {**config.stored(), **change, "password": "x"}
    assert merge_destination("Redshift", config, {"config": {"table_name": "events_v2"}})["config"]["user"] == "awsuser"


def test_integers_fit_a_float_column_and_floats_do_not_fit_an_integer_one() -> None:
    wanted = {"session_duration": "BIGINT", "vitals_lcp": "DOUBLE PRECISION"}
    assert conflicts(wanted, {"session_duration": "double precision", "vitals_lcp": "real"}) == []
    assert conflicts(wanted, {"vitals_lcp": "bigint"}) == [
        "column vitals_lcp is bigint, where this export writes DOUBLE PRECISION"
    ]
