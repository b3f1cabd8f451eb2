"""What a config or an export body may hold: secrets stay where they were given, templates and paths are
bounded, and the selection's limits answer with the field and the setting."""

from typing import Any

import pytest
from pydantic import ValidationError

from api.errors import from_pydantic
from batch_exports.models import BatchExportIn, InvalidField, Limits, merge_destination
from connectors.destinations import parse_config

POSTGRES = {"host": "db.example.com", "database": "d", "table_name": "t", "user": "u", "password": "p"}
S3 = {"bucket_name": "bucket", "aws_access_key_id": "AKIA", "aws_secret_access_key": "secret"}


@pytest.mark.parametrize(
    ("kind", "stored", "change", "first_missing"),
    [
        ("Postgres", POSTGRES, {"host": "evil.example.com"}, "password"),
        ("Postgres", POSTGRES, {"port": 6543}, "password"),
        ("Postgres", POSTGRES, {"database": "other"}, "password"),
        ("Postgres", POSTGRES, {"host": "evil.example.com", "password": "p"}, "user"),
        ("HTTP", {"url": "https://a.example.com/batch/", "token": "t"}, {"url": "https://b.example.com/"}, "token"),
        ("AwsS3", S3, {"bucket_name": "elsewhere"}, "aws_access_key_id"),
        ("AwsS3", S3, {"region": "eu-west-1"}, "aws_access_key_id"),
        ("S3Compatible", {**S3, "endpoint_url": "https://s3.example.com"}, {"endpoint_url": "https://evil.example"},
         "aws_access_key_id"),
    ],
)  # fmt: skip
def test_moving_a_secret_needs_the_secret(
    kind: str, stored: dict[str, Any], change: dict[str, Any], first_missing: str
) -> None:
    config = parse_config(kind, stored)
    with pytest.raises(InvalidField) as refused:
        merge_destination(kind, config, {"config": change})
    assert refused.value.attr == f"destination__config__{first_missing}"
    again = {name: stored[name] for name in config.secret_fields}
    merged = merge_destination(kind, config, {"config": {**change, **again}})
    assert merged["config"] == {**config.stored(), **change}


def test_other_fields_keep_the_stored_secrets() -> None:
    config = parse_config("Postgres", POSTGRES)
    for change in ({"table_name": "t2"}, {"schema": "s"}, {"host": "db.example.com"}, {"port": 5432}, {}):
        merged = merge_destination("Postgres", config, {"type": "Postgres", "config": change})
        assert merged["config"]["password"] == "p" and merged["config"]["user"] == "u"


def test_the_type_cannot_change() -> None:
    with pytest.raises(InvalidField) as refused:
        merge_destination("Postgres", parse_config("Postgres", POSTGRES), {"type": "HTTP"})
    assert str(refused.value) == (
        "Cannot change destination type from 'Postgres' to 'HTTP'. Delete this batch export and create a new one "
        "with the new destination type."
    )


@pytest.mark.parametrize(
    "prefix", ["{year:>30000000}", "{year!r}", "{year!s:>9}", "{year[0]}", "{year.real}", "{0}", "{}",
               "{year:{month}}", "{ year}", "{nope}", "{year", "year}"],
)  # fmt: skip
def test_a_prefix_takes_bare_fields_only(prefix: str) -> None:
    with pytest.raises(ValidationError):
        parse_config("AwsS3", {**S3, "prefix": prefix})


def test_a_prefix_of_bare_fields_and_literal_braces_is_fine() -> None:
    config = parse_config("AwsS3", {**S3, "prefix": "{table}/{year}/{month}/{{literal}}"})
    assert config.model_dump()["prefix"] == "{table}/{year}/{month}/{{literal}}"


@pytest.mark.parametrize(
    "path", ["a\x00b", "tab\there", "x" * 256, "ok/" + "é" * 128, "../up", "/absolute", "a/../b", "y" * 1001]
)
def test_impossible_file_paths_are_refused(path: str) -> None:
    with pytest.raises(ValidationError):
        parse_config("File", {"path": path})


LIMITS = Limits(max_filters=3, max_filter_length=20, max_expression_depth=5)
NOOP = {"name": "n", "interval": "hour", "destination": {"type": "NoOp"}}


@pytest.mark.parametrize(
    ("fields", "attr", "setting"),
    [
        ({"filters": [{"key": "k", "operator": "is_set"}] * 4}, "filters", "BATCH_EXPORTS_MAX_FILTERS"),
        ({"filters": [{"key": "k" * 21, "operator": "is_set"}]}, "filters__0__key", "BATCH_EXPORTS_MAX_FILTER_LENGTH"),
        ({"filters": [{"key": "k", "value": ["v" * 10] * 3}]}, "filters__0__value", "BATCH_EXPORTS_MAX_FILTER_LENGTH"),
        ({"filters": [{"type": "hogql", "key": "+".join("1" * 7)}]}, "filters__0",
         "BATCH_EXPORTS_MAX_EXPRESSION_DEPTH"),
        ({"hogql_query": "SELECT " + "+".join(["event"] * 7) + " AS x FROM events"}, "hogql_query",
         "BATCH_EXPORTS_MAX_EXPRESSION_DEPTH"),
    ],
)  # fmt: skip
def test_the_selection_is_bounded_by_the_settings(fields: dict[str, Any], attr: str, setting: str) -> None:
    with pytest.raises(ValidationError) as refused:
        BatchExportIn.model_validate({**NOOP, **fields}, context=LIMITS)
    error = from_pydantic(refused.value)
    assert (error.status, error.attr) == (400, attr) and setting in error.detail, error.detail
    BatchExportIn.model_validate({**NOOP, **fields})  # without the settings' limits, within the hard ones


def test_deep_expressions_are_refused_even_without_settings() -> None:
    with pytest.raises(ValidationError) as refused:
        BatchExportIn.model_validate({**NOOP, "filters": [{"type": "hogql", "key": "+".join(["1"] * 3000)}]})
    assert "BATCH_EXPORTS_MAX_EXPRESSION_DEPTH" in from_pydantic(refused.value).detail
