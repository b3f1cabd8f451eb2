"""What a config or an export body may hold: secrets stay where they were given, templates and paths are
bounded, and the selection's limits answer with the field and the setting."""

from typing import Any

import pytest
from botocore.session import get_session
from pydantic import ValidationError

from api.errors import from_pydantic
from batch_exports.exports.validation import BatchExportIn, InvalidField, Limits, merge_destination
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
        ("Postgres", POSTGRES, {"has_self_signed_cert": True}, "password"),
        ("AwsS3", S3, {"encryption": "aws:kms", "kms_key_id": "arn:aws:kms:us-east-1:1:key/theirs"},
         "aws_access_key_id"),
        ("Iceberg", {**S3, "storage": "S3", "table_name": "t"}, {"storage": "S3Compatible",
         "endpoint_url": "https://evil.example"}, "aws_access_key_id"),
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


@pytest.mark.parametrize(
    ("kind", "stored"),
    [
        ("S3", S3),
        ("AwsS3", S3),
        ("S3Compatible", {**S3, "endpoint_url": "https://s3.example.com"}),
        ("Iceberg", {**S3, "storage": "S3", "table_name": "t"}),
        ("DeltaLake", {**S3, "storage": "S3Compatible", "endpoint_url": "https://s3.example.com", "table_name": "t"}),
    ],
)
def test_a_bucket_or_region_changes_without_the_keys(kind: str, stored: dict[str, Any]) -> None:
    """SigV4 sends the secret key nowhere (PostHog's own API test PATCHes `bucket_name` alone)."""
    config = parse_config(kind, stored)
    change = {"bucket_name": "another-bucket", "region": "eu-west-1"}
    merged = merge_destination(kind, config, {"config": change})
    assert merged["config"] == {**config.stored(), **change}
    assert merged["config"]["aws_secret_access_key"] == "secret"


def test_a_custom_endpoint_is_addressed_path_style() -> None:
    """Why the bucket is not a scope field with a custom endpoint: botocore keeps it out of the host name, so a
    new bucket never sends a request (its key id and signature) to another host."""
    client = get_session().create_client(
        "s3", endpoint_url="https://s3.example.com", region_name="us-east-1",
        aws_access_key_id="AKIA", aws_secret_access_key="secret",
    )  # fmt: skip
    url = client.generate_presigned_url("get_object", Params={"Bucket": "attacker-chosen", "Key": "k"})
    assert url.startswith("https://s3.example.com/attacker-chosen/k?")


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
