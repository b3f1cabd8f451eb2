"""Validation of a batch export body: every problem names its field."""

from typing import Any

import pytest
from pydantic import ValidationError

from api.errors import from_pydantic
from batch_exports.models import BatchExportIn


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
        (body(interval="hour", offset_hour=3), "offset_hour", "daily and weekly"),
        (body(offset_day=2), "offset_day", "weekly"),
        (body(interval="week", offset_day=9), "offset_day", "6"),
        (body(start_at="2024-02-01T00:00:00Z", end_at="2024-01-01T00:00:00Z"), "end_at", "after start_at"),
        (body(start_at="2024-02-01T00:00:00"), "start_at", "UTC offset"),
        (body(model="clicks"), "model", "events"),
    ],
)  # fmt: skip
def test_each_problem_names_its_field(raw: dict[str, Any], attr: str, says: str) -> None:
    got_attr, detail = problem(raw)
    assert got_attr == attr
    assert says in detail


def test_secret_fields_are_write_only() -> None:
    """A destination's secret fields are stored but never shown (S3 keys, passwords, tokens)."""
    from typing import ClassVar

    from batch_exports.destination_configs import DestinationConfig

    class WithSecret(DestinationConfig):
        secret_fields: ClassVar[frozenset[str]] = frozenset({"token"})
        url: str
        token: str

    config = WithSecret(url="https://example.com", token="s3cr3t")
    assert config.public()["url"] == "https://example.com" and "token" not in config.public()
    assert config.model_dump()["token"] == "s3cr3t"  # what is encrypted and stored
