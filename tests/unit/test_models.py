"""Validation of a batch export body: every problem names its field."""

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from api.errors import from_pydantic
from batch_exports.exports.validation import BatchExportIn
from connectors.destinations import DESTINATIONS, TYPES, parse_config


def body(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "nightly",
        "interval": "day",
        "destination": {"type": "File", "config": {"path": "out"}},
        **overrides,
    }


def problem(raw: dict[str, Any]) -> tuple[str | None, str]:
    with pytest.raises(ValidationError) as caught:
        BatchExportIn.model_validate(raw)
    error = from_pydantic(caught.value)
    assert error.status == 400
    return error.attr, error.detail


def test_what_posthog_leaves_implicit_is_filled_in_as_posthog_reports_it() -> None:
    weekly = BatchExportIn.model_validate(body(interval="week", timezone=None, start_at="2022-07-19 00:00:00"))
    assert (weekly.offset_day, weekly.offset_hour, weekly.timezone) == (0, 0, "UTC")
    assert weekly.start_at == datetime(2022, 7, 19, tzinfo=UTC)  # no offset: UTC
    daily = BatchExportIn.model_validate(body(interval="day", timezone="US/Pacific"))
    assert (daily.offset_day, daily.offset_hour) == (None, 0)
    hourly = BatchExportIn.model_validate(body(interval="hour"))
    assert (hourly.offset_day, hourly.offset_hour) == (None, None)


def test_a_valid_body_parses() -> None:
    parsed = BatchExportIn.model_validate(body(timezone="Europe/Berlin", offset_hour=3, id="ignored"))
    assert parsed.destination.parsed().model_dump()["path"] == "out"


@pytest.mark.parametrize(
    ("raw", "attr", "says"),
    [
        ({"interval": "day", "destination": {"type": "NoOp"}}, "name", "required"),
        (body(interval="fortnight"), "interval", "hour"),
        (body(destination={"type": "Carrier pigeon", "config": {}}), "destination__type", "File"),
        (body(destination={"type": "File", "config": {"path": "out", "bucket": "x"}}), "destination__config__bucket",
         "Unknown field"),
        (body(destination={"type": "File", "config": {}}), "destination__config__path", "required"),
        (body(destination={"type": "File", "config": {"path": "../etc"}}), "destination__config__path", ".."),
        (body(destination={"type": "File", "config": {"path": "o", "compression": "rar"}}),
         "destination__config__compression", "gzip"),
        (body(timezone="Mars/Olympus"), "timezone", "IANA"),
        (body(interval="hour", offset_hour=3), "offset_hour", "non-daily/weekly"),
        (body(offset_day=2), "offset_day", "weekly"),
        (body(interval="week", offset_day=9), "offset_day", "6"),
        (body(start_at="2024-02-01T00:00:00Z", end_at="2024-01-01T00:00:00Z"), "end_at", "after start_at"),
        (body(model="clicks"), "model", "events"),
    ],
)  # fmt: skip
def test_each_problem_names_its_field(raw: dict[str, Any], attr: str, says: str) -> None:
    got_attr, detail = problem(raw)
    assert got_attr == attr
    assert says in detail


SECRETS: dict[str, tuple[dict[str, Any], set[str]]] = {
    "S3": ({"bucket_name": "bucket", "aws_access_key_id": "AKIASECRET", "aws_secret_access_key": "s3cr3t-key"},
           {"aws_access_key_id", "aws_secret_access_key"}),
    "S3Compatible": ({"bucket_name": "bucket", "endpoint_url": "https://s3.example.com",
                      "aws_access_key_id": "AKIASECRET", "aws_secret_access_key": "s3cr3t-key"},
                     {"aws_access_key_id", "aws_secret_access_key"}),
    "Postgres": ({"host": "db.example.com", "database": "d", "table_name": "t", "user": "s3cr3t-user",
                  "password": "s3cr3t-password"}, {"user", "password"}),
    "HTTP": ({"url": "https://example.com/batch/", "token": "s3cr3t-token"}, {"token"}),
    "Iceberg": ({"storage": "S3", "bucket_name": "bucket", "table_name": "events", "aws_access_key_id": "AKIASECRET",
                 "aws_secret_access_key": "s3cr3t-key"}, {"aws_access_key_id", "aws_secret_access_key"}),
    "DeltaLake": ({"storage": "S3Compatible", "endpoint_url": "https://s3.example.com", "bucket_name": "bucket",
                   "table_name": "events", "aws_access_key_id": "AKIASECRET", "aws_secret_access_key": "s3cr3t-key"},
                  {"aws_access_key_id", "aws_secret_access_key"}),
    "AzureBlob": ({"container_name": "exports", "account_name": "acct", "account_key": "s3cr3t-key",
                   "connection_string": None}, {"connection_string", "account_key"}),
}  # fmt: skip
"""Each destination's config with the fields the contract marks secret (SPEC, section 5)."""


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_secret_fields_are_stored_but_never_shown(kind: str) -> None:
    raw, secret = SECRETS[kind]
    config = parse_config(kind, raw)
    assert config.secret_fields == secret
    shown = config.public()
    assert not secret & set(shown), shown
    assert not {raw[name] for name in secret} & {str(value) for value in shown.values()}
    assert {name: config.stored()[name] for name in secret} == {name: raw[name] for name in secret}


def test_every_destination_type_is_registered_once_with_its_checks() -> None:
    assert len(TYPES) == len(set(TYPES)) == len(DESTINATIONS)
    for destination in DESTINATIONS:
        assert destination.steps, destination.type
        assert set(destination.models) <= {"events", "persons", "sessions"}
