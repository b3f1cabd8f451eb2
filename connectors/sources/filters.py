"""Property filters of an export: `{type, key, value, operator}`, all ANDed, compiled to bound SQL.

`event` filters look at the event's properties, `person` filters at the person properties stored
with it, and `hogql` filters are a HogQL boolean expression in `key`.
"""

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from connectors.sources.hogql import MAX_DEPTH, HogQLError, parse_expression
from connectors.sources.params import Params, like_containing

Operator = Literal[
    "exact", "is_not", "icontains", "not_icontains", "regex", "not_regex", "gt", "gte", "lt", "lte", "is_set",
    "is_not_set",
]  # fmt: skip
Scalar = str | int | float | bool
_COLUMN = {"event": "properties", "person": "person_properties"}
_COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_NUMERIC = r"'^\s*-?[0-9]+(\.[0-9]+)?\s*$'"
STORED = "stored"
"""The validation context of filters read back from storage: checked when they were saved, so a HogQL key is
not parsed again until it is compiled (reading an export costs no parse)."""


class PropertyFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["event", "person", "hogql"] = "event"
    key: str = Field(min_length=1, max_length=10_000)
    value: Scalar | list[Scalar] | None = None
    operator: Operator = "exact"

    @model_validator(mode="after")
    def _value_fits_operator(self, info: ValidationInfo) -> Self:
        if self.type == "hogql":
            if info.context == STORED:
                return self
            try:  # the context, when validation has one, may bound the nesting further (a setting)
                parse_expression(self.key, getattr(info.context, "max_expression_depth", MAX_DEPTH))
            except HogQLError as error:
                raise ValueError(f"the HogQL expression in key is not allowed: {error}") from None
            return self
        if self.operator in ("is_set", "is_not_set"):
            return self
        if self.value is None or self.value == []:
            raise ValueError(f"operator '{self.operator}' needs a value")
        if self.operator in _COMPARE and not _is_number(self.value):
            raise ValueError(f"operator '{self.operator}' compares numbers; value must be one")
        if self.operator in ("icontains", "not_icontains", "regex", "not_regex") and not isinstance(self.value, str):
            raise ValueError(f"operator '{self.operator}' takes a string value")
        return self

    def to_sql(self, p: Params) -> str:
        if self.type == "hogql":
            return f"coalesce(({parse_expression(self.key).to_sql(p)})::boolean, false)"
        column = _COLUMN[self.type]
        if self.operator == "is_set":
            return f"({column} ? {p(self.key, '::text')})"
        if self.operator == "is_not_set":
            return f"(NOT ({column} ? {p(self.key, '::text')}))"
        text = f"({column} ->> {p(self.key, '::text')})"  # every parameter allocated must be used
        match self.operator:
            case "exact" | "is_not":
                values: list[Scalar] = self.value if isinstance(self.value, list) else [self.value or ""]
                test = f"coalesce({text} = ANY({p([_as_text(v) for v in values], '::text[]')}), false)"
                return test if self.operator == "exact" else f"(NOT {test})"
            case "icontains" | "not_icontains":
                test = f"coalesce({text} ILIKE {p(like_containing(str(self.value)), '::text')}, false)"
                return test if self.operator == "icontains" else f"(NOT {test})"
            case "regex" | "not_regex":
                test = f"coalesce({text} ~ {p(str(self.value), '::text')}, false)"
                return test if self.operator == "regex" else f"(NOT {test})"
            case _:
                number = f"(CASE WHEN {text} ~ {_NUMERIC} THEN {text}::numeric END)"
                return f"coalesce({number} {_COMPARE[self.operator]} {p(str(self.value), '::numeric')}, false)"


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _as_text(value: Scalar) -> str:
    """How PostgreSQL's `->>` renders the JSON value, so that `exact` compares like with like."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def regex_values(filters: list[PropertyFilter]) -> list[tuple[int, str]]:
    """The regular expressions among the filters (index, pattern), to check against PostgreSQL's syntax."""
    return [
        (i, str(f.value)) for i, f in enumerate(filters) if f.operator in ("regex", "not_regex") and f.type != "hogql"
    ]
