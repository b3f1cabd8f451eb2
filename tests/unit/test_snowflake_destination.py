"""The `Snowflake` destination without a server: its config (required fields, secrets write-only and bound to the
account, 400s naming the field), the statements it sends (each parses in sqlglot's Snowflake dialect) and the
Parquet files it stages."""

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from api.errors import from_pydantic
from batch_exports.exports.validation import InvalidField, merge_destination
from connectors.destinations import Context, DestinationUserError, parse_config
from connectors.destinations.warehouses import snowflake_sql as sql
from connectors.destinations.warehouses.snowflake import Session, SnowflakeConfig, parquet_file
from connectors.destinations.warehouses.staging import RULES, STAGE_PREFIX

BASE = {"account": "myorg-acct", "user": "exporter", "database": "DB", "warehouse": "WH", "schema": "PUBLIC",
        "table_name": "events"}  # fmt: skip


def pem(passphrase: bytes | None = None) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())  # fmt: skip
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


def refusal(config: dict[str, Any]) -> tuple[str | None, str]:
    with pytest.raises(ValidationError) as refused:
        parse_config("Snowflake", config)
    error = from_pydantic(refused.value)
    return error.attr, error.detail


def test_password_and_keypair_configs_are_taken() -> None:
    with_password = parse_config("Snowflake", {**BASE, "password": "pw"})
    key = pem(b"phrase")
    with_key = parse_config("Snowflake", {**BASE, "authentication_type": "keypair", "private_key": key,
                                          "private_key_passphrase": "phrase", "role": "LOADER"})  # fmt: skip
    assert isinstance(with_key, SnowflakeConfig) and with_key.private_key == key
    assert "password" not in with_password.public() and with_password.stored()["password"] == "pw"
    assert not {"private_key", "private_key_passphrase"} & set(with_key.public())


@pytest.mark.parametrize(
    ("change", "attr", "words"),
    [
        ({}, "password", "required when authentication_type is password"),
        ({"authentication_type": "keypair"}, "private_key", "required when authentication_type is keypair"),
        ({"authentication_type": "keypair", "private_key": "-----BEGIN NOT A KEY-----"}, "private_key",
         "not a PEM private key"),
        ({"authentication_type": "passwordless", "password": "p"}, "authentication_type", "'password' or 'keypair'"),
        ({"password": "p", "table_name": 'ev"ents'}, "table_name", "pattern"),
        ({"password": "p", "schema": "a.b"}, "schema", "pattern"),
        ({"password": "p", "account": "evil.example.com/x"}, "account", "account identifier"),
        ({"password": "p", "account": "127.0.0.1:80@x"}, "account", "account identifier"),
        ({"password": "p", "endpoint": "http://127.0.0.1"}, "endpoint", "Unknown field"),
        ({"password": "p" * 1001}, "password", "at most 1000"),
    ],
)  # fmt: skip
def test_a_bad_config_is_refused_naming_the_field(change: dict[str, Any], attr: str, words: str) -> None:
    found_attr, detail = refusal({**BASE, **change})
    assert found_attr == attr and words in detail, (found_attr, detail)


def test_a_key_and_its_passphrase_must_agree_and_neither_is_quoted() -> None:
    key = pem(b"right")
    attr, detail = refusal({**BASE, "authentication_type": "keypair", "private_key": key,
                            "private_key_passphrase": "wrong"})  # fmt: skip
    assert attr == "private_key" and "passphrase" in detail and "wrong" not in detail and key[40:80] not in detail
    attr, detail = refusal({**BASE, "authentication_type": "keypair", "private_key": key})
    assert attr == "private_key" and "encrypted" in detail
    attr, detail = refusal({**BASE, "authentication_type": "keypair", "private_key": pem(),
                            "private_key_passphrase": "unneeded"})  # fmt: skip
    assert attr == "private_key" and "not encrypted" in detail


def test_moving_the_account_needs_the_secrets_again() -> None:
    stored = parse_config("Snowflake", {**BASE, "password": "pw"})
    with pytest.raises(InvalidField) as refused:
        merge_destination("Snowflake", stored, {"config": {"account": "theirs-acct"}})
    assert refused.value.attr.startswith("destination__config__")
    merged = merge_destination(
        "Snowflake",
        stored,
        {"config": {"account": "theirs-acct", "password": "pw", "private_key": None, "private_key_passphrase": None}},
    )
    assert merged["config"]["account"] == "theirs-acct"
    table_moved = merge_destination("Snowflake", stored, {"config": {"table_name": "other"}})
    assert table_moved["config"]["password"] == "pw"  # the same account: the password stays


def test_the_account_is_the_identifier_without_the_domain() -> None:
    config = parse_config("Snowflake", {**BASE, "password": "p", "account": "MyOrg-Acct.snowflakecomputing.com"})
    assert config.account == "myorg-acct"  # type: ignore[attr-defined]


STAGE = f"{STAGE_PREFIX}0193a1b2c3d47e5f8a6b00000000000a_1"


def merge(model: str) -> str:
    rule = RULES[model]
    return sql.merge(model, STAGE, list(sql.TABLES[model]), rule.key, rule.newer, rule.newer_condition)


PARAMS = {"run_id": "'r'", "table_name": "'t'", "batch_export_id": "'e'", "start": "'2024-01-01'",
          "end": "'2024-01-02'", "records": "3"}  # fmt: skip


def statements() -> list[str]:
    sent = [sql.create_marks(), sql.find_mark() % PARAMS, sql.add_mark() % PARAMS, sql.stale_stages(STAGE_PREFIX),
            sql.drop_table(STAGE), sql.put(STAGE, "part-0.parquet"), sql.describe("events"),
            sql.add_column("events", "ip", "STRING"), sql.insert_nothing("events")]  # fmt: skip
    for model, columns in sql.TABLES.items():
        sent += [sql.create_table(model, columns), sql.create_stage_table(STAGE, columns),
                 sql.copy_into(STAGE, columns), merge(model)]  # fmt: skip
    return sent


@pytest.mark.parametrize("statement", statements(), ids=lambda s: s[:60])
def test_each_statement_parses_as_snowflake(statement: str) -> None:
    parsed = sqlglot.parse(statement, read="snowflake", error_level=sqlglot.ErrorLevel.RAISE)
    assert len(parsed) == 1 and parsed[0] is not None
    assert not isinstance(parsed[0], sqlglot.exp.Command), "parsed as an opaque command, not understood"


def test_no_statement_uses_what_fakesnow_refuses() -> None:
    for statement in statements():
        assert '@%"' not in statement and "REMOVE" not in statement and "MATCH_BY_COLUMN_NAME" not in statement


def test_the_merge_keeps_the_newest_staged_row_and_replaces_only_when_newer() -> None:
    persons = merge("persons")
    parsed = sqlglot.parse_one(persons, read="snowflake")
    assert '"person_version" DESC NULLS LAST, "person_distinct_id_version" DESC NULLS LAST' in persons
    assert "QUALIFY" in parsed.sql("snowflake")
    condition = parsed.args["whens"].expressions[0].args["condition"].sql("snowflake")
    assert 'final."person_version" < stage."person_version"' in condition
    events = merge("events")
    assert 'ON final."uuid" = stage."uuid" WHEN MATCHED THEN UPDATE' in events
    assert '"uuid" = stage."uuid",' not in events.split("UPDATE SET")[1]  # the key is not updated
    sessions = merge("sessions")
    assert 'final."team_id" = stage."team_id" AND final."session_id" = stage."session_id"' in sessions
    assert 'final."end_timestamp" < stage."end_timestamp"' in sessions


def test_posthogs_tables() -> None:
    assert list(sql.TABLES["events"].items()) == [
        ("uuid", "STRING"), ("event", "STRING"), ("properties", "VARIANT"), ("elements", "VARIANT"),
        ("people_set", "VARIANT"), ("people_set_once", "VARIANT"), ("distinct_id", "STRING"), ("team_id", "INTEGER"),
        ("ip", "STRING"), ("site_url", "STRING"), ("timestamp", "TIMESTAMP")]  # fmt: skip
    assert sql.TABLES["persons"]["properties"] == "VARIANT" and "_inserted_at" not in sql.TABLES["persons"]
    assert sql.TABLES["sessions"]["urls"] == "ARRAY" and len(sql.TABLES["sessions"]) == 47


def test_stale_stages_are_looked_for_in_upper_case() -> None:
    """Unquoted names: Snowflake keeps them in upper case, so the prefix is looked for so."""
    assert f"STARTSWITH(TABLE_NAME, '{STAGE_PREFIX.upper()}')" in sql.stale_stages(STAGE_PREFIX)


def test_the_staged_file_holds_json_text_utc_times_and_renamed_columns() -> None:
    at = pa.array([datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)], pa.timestamp("us", tz="UTC"))
    batch = pa.RecordBatch.from_arrays(
        [pa.array(["u1"]), pa.array(['{"$set": 1}']), pa.array(['{"a": 2}']), pa.array([7], pa.int32()), at],
        names=["uuid", "properties", "set", "team_id", "timestamp"],
    )
    table = pq.read_table(io.BytesIO(parquet_file([batch], sql.TABLES["events"])))
    row = table.to_pylist()[0]
    assert table.column_names == list(sql.TABLES["events"])
    assert row["people_set"] == '{"a": 2}' and row["timestamp"] == "2024-01-01 12:00:00.123456"
    assert row["team_id"] == 7 and row["elements"] is None and row["properties"] == '{"$set": 1}'


@pytest.mark.parametrize(
    ("url", "allow_private", "refused"),
    [
        ("http://8.8.8.8:80", True, "is not https: credentials never travel in clear"),
        ("http://127.0.0.1:1", False, "127.0.0.1 is a private, loopback or otherwise internal address"),
        ("https://[::1]:443", False, "must be reachable on the internet"),
    ],
)
async def test_an_endpoint_the_policy_refuses_is_refused_before_any_connection(
    url: str, allow_private: bool, refused: str
) -> None:
    """No egress proxy in this context: a session that got as far as connecting would fail on its absence."""
    config = parse_config("Snowflake", {**BASE, "password": "pw"})
    assert isinstance(config, SnowflakeConfig)
    context = Context(
        files_root=Path("/nonexistent"), allow_private=allow_private, destination_settings={"snowflake_url": url}
    )
    with pytest.raises(DestinationUserError, match=refused):
        await Session(config, context).open()
