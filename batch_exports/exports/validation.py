"""The batch export as the API receives it: its fields (`ExportFields`) validated in full, as a request body.

The bounds that are settings (`Limits`: how many filters, how long, how deeply nested) reach validation as its
context, and are checked before the costlier checks of what they bound.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from batch_exports.exports.export import ExportFields
from connectors.destinations import TYPES, DestinationConfig, destination, parse_config
from connectors.destinations.integrations import own_config
from connectors.sources.hogql import MAX_DEPTH, HogQLError, HogQLParseError, parse_query, schema_of
from contracts.intervals import Interval, in_utc_range
from contracts.search_attributes import KEYWORD_BYTES, keyword_bytes


@dataclass(frozen=True)
class Limits:
    """The bounds of an export's selection, from the settings of the same names (`BATCH_EXPORTS_MAX_...`)."""

    max_filters: int
    max_filter_length: int
    max_expression_depth: int

    @classmethod
    def of(cls, settings: Any) -> "Limits":
        return cls(settings.max_filters, settings.max_filter_length, settings.max_expression_depth)


def _text_length(value: Any) -> int:
    if isinstance(value, list):
        return sum(_text_length(v) for v in value)
    return len(value) if isinstance(value, str) else len(str(value)) if value is not None else 0


class DestinationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(json_schema_extra={"enum": list(TYPES)})
    config: dict[str, Any] = Field(default_factory=dict)

    def parsed(self) -> DestinationConfig:
        return parse_config(self.type, self.config)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in TYPES:
            raise ValueError(f"'{value[:100]}' is not a destination type; use one of {', '.join(TYPES)}")
        return value

    @model_validator(mode="after")
    def _config_fits_type(self) -> Self:
        try:
            self.parsed()
        except ValidationError as error:  # report each problem at destination.config.<field>
            raise ValidationError.from_exception_data(
                "DestinationIn",
                [
                    InitErrorDetails(
                        type=PydanticCustomError(e["type"], e["msg"].replace("{", "{{").replace("}", "}}")),
                        loc=("config", *e["loc"]),
                        input=e["input"],
                    )
                    for e in error.errors(include_url=False)
                ],
            ) from None
        return self


SCHEDULE_BOUNDS = (datetime(2, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))
"""Where an export's `start_at` and `end_at` may lie: a year from either end of what a datetime holds, room for a
week's interval, its offsets and jitter."""


class BatchExportIn(ExportFields):
    """A create body. Read-only fields a client echoes back (id, created_at, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    destination: DestinationIn

    @field_validator("name")
    @classmethod
    def _fits_search_attribute(cls, value: str) -> str:
        """The name is the schedule's `BatchExportName` search attribute, which Temporal bounds in bytes."""
        if (size := keyword_bytes(value)) > KEYWORD_BYTES:
            raise ValueError(
                f"the name may be at most {KEYWORD_BYTES} bytes as Temporal stores it (JSON, where a character "
                f"beyond ASCII takes 6 bytes and an emoji 12); this one is {size}"
            )
        return value

    @field_validator("filters", mode="before")
    @classmethod
    def _bounded_filters(cls, value: Any, info: ValidationInfo) -> Any:
        """The number and size of the filters, checked before any of them is parsed."""
        limits = info.context
        if not isinstance(limits, Limits) or not isinstance(value, list):
            return value
        if len(value) > limits.max_filters:
            raise field_error(  # a field validator's error is placed under its field
                (), len(value), f"at most {limits.max_filters} filters (BATCH_EXPORTS_MAX_FILTERS); "
                f"got {len(value)}"
            )  # fmt: skip
        for index, item in enumerate(value):
            for part in ("key", "value"):
                if isinstance(item, dict) and (size := _text_length(item.get(part))) > limits.max_filter_length:
                    raise field_error(
                        (index, part), size, f"a filter's {part} may be at most {limits.max_filter_length} "
                        f"characters long (BATCH_EXPORTS_MAX_FILTER_LENGTH); this one is {size}"
                    )  # fmt: skip
        return value

    @field_validator("hogql_query")
    @classmethod
    def _allowed_query(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and value.strip():
            try:
                parse_query(value, getattr(info.context, "max_expression_depth", MAX_DEPTH))
            except HogQLParseError:
                raise ValueError("Failed to parse query") from None  # PostHog's words, which its clients match
            except HogQLError as error:
                raise ValueError(f"hogql_query is not allowed: {error}") from None
        return value or None

    def exported_schema(self) -> dict[str, Any] | None:
        """The exported columns, when a hogql_query picks them."""
        return schema_of(parse_query(self.hogql_query), self.hogql_query) if self.hogql_query else None

    @field_validator("timezone", mode="before")
    @classmethod
    def _known_timezone(cls, value: object) -> object:
        if value is None:  # PostHog's: no timezone is UTC
            return "UTC"
        if not isinstance(value, str):
            return value  # the str field says what is wrong
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not an IANA time zone name (for example 'Europe/Berlin')") from None
        return value

    @field_validator("start_at", "end_at")
    @classmethod
    def _aware(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        """A time with no offset (`2022-07-19 00:00:00`) is UTC, as PostHog reads it; its UTC time lies in the years
        2 to 9998, so that every interval and boundary around it is a datetime too."""
        if value is None:
            return None
        try:
            value = in_utc_range(value)
        except OverflowError:
            value = None
        if value is None or not SCHEDULE_BOUNDS[0] <= value < SCHEDULE_BOUNDS[1]:
            raise ValueError("must lie between the years 2 and 9998 (in UTC)")
        return value

    @model_validator(mode="after")
    def _offsets_fit_interval(self) -> Self:
        if self.offset_day is not None and self.interval is not Interval.WEEK:
            raise field_error("offset_day", self.offset_day, "offset_day is not applicable for non-weekly intervals")
        if self.offset_hour is not None and not self.interval.is_calendar:
            message = "offset_hour is not applicable for non-daily/weekly intervals"
            raise field_error("offset_hour", self.offset_hour, message)
        # Daily and weekly exports start at midnight on Sunday unless told otherwise (what PostHog reports).
        if self.interval.is_calendar and self.offset_hour is None:
            self.offset_hour = 0
        if self.interval is Interval.WEEK and self.offset_day is None:
            self.offset_day = 0
        target = destination(self.destination.type)
        if self.model not in target.models:
            raise field_error("model", self.model, f"the {target.type} destination exports {', '.join(target.models)}")
        if self.hogql_query and not target.custom_columns:
            raise field_error(
                "hogql_query", self.hogql_query, f"the {target.type} destination exports the model's columns"
            )
        if (self.hogql_query or self.filters) and self.model != "events":
            raise field_error("model", self.model, "hogql_query and filters apply to the events model only")
        if self.start_at and self.end_at and self.start_at >= self.end_at:
            raise field_error("end_at", self.end_at, "end_at must be after start_at")
        return self


def field_error(field: str | tuple[str | int, ...], value: Any, message: str) -> ValidationError:
    """A validation error that names `field` (or a path to a part of it), for checks that span several fields."""
    loc = field if isinstance(field, tuple) else (field,)
    detail = InitErrorDetails(
        type=PydanticCustomError("invalid", message.replace("{", "{{").replace("}", "}}")), loc=loc, input=value
    )
    return ValidationError.from_exception_data("BatchExportIn", [detail])


class InvalidField(ValueError):
    """A request value that is well-formed but not acceptable; `attr` names it."""

    def __init__(self, attr: str, message: str) -> None:
        super().__init__(message)
        self.attr = attr


def merge_destination(stored_type: str, stored: DestinationConfig, posted: Any) -> dict[str, Any]:
    """A posted `destination` merged over the stored one, as PUT, PATCH and `run_test_step/` take it (PostHog's
    merge: the posted config's fields over the stored config's).

    Its type cannot change. A secret stays with the place it was given for: when a field that says where
    the secrets go (`secret_scope_fields`: host, url, bucket, ...) changes, every stored secret must be sent
    again in the same request, or it is an InvalidField naming the first one missing.
    """
    if not isinstance(posted, dict):
        raise InvalidField("destination", "destination must be an object.")
    new_type = posted.get("type", stored_type)
    if new_type != stored_type:
        raise InvalidField(
            "destination__type",
            f"Cannot change destination type from '{stored_type}' to '{str(new_type)[:100]}'. Delete this batch "
            "export and create a new one with the new destination type.",
        )
    config = posted.get("config") or {}
    if not isinstance(config, dict):
        raise InvalidField("destination__config", "destination.config must be an object.")
    merged = {**own_config(stored_type, stored), **config}
    try:
        changed = parse_config(stored_type, merged)
    except ValidationError:
        return {"type": stored_type, "config": merged}  # the body's own validation names the problem
    moved = sorted(f for f in stored.secret_scope_fields if getattr(changed, f, None) != getattr(stored, f, None))
    missing = sorted(f for f in stored.secret_fields if getattr(stored, f, None) and f not in config)
    if moved and missing:
        raise InvalidField(
            f"destination__config__{missing[0]}",
            f"Changing {', '.join(repr(f) for f in moved)} changes where the stored secrets are sent: send "
            f"{', '.join(repr(f) for f in missing)} again in the same request.",
        )
    return {"type": stored_type, "config": merged}
