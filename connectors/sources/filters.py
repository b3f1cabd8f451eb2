"""Property filters of an export: `{type, key, value, operator}`, all ANDed, compiled to bound SQL.

`event` filters look at the event's properties, `person` filters at the person properties stored
with it, and `hogql` filters are a HogQL boolean expression in `key`.
"""

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from connectors.sources.hogql import MAX_DEPTH, Dialect, HogQLError, PostgreSQL, parse_expression
from connectors.sources.params import Params, like_containing

Operator = Literal[
    "exact", "is_not", "icontains", "not_icontains", "regex", "not_regex", "gt", "gte", "lt", "lte", "is_set",
    "is_not_set",
]  # fmt: skip
Scalar = str | int | float | bool
_COLUMN = {"event": "properties", "person": "person_properties"}
_COMPARE = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
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
        return self.to_dialect(PostgreSQL(p))

    def to_dialect(self, sql: Dialect) -> str:
        """The filter as a condition in `sql`'s database; a missing property fails every test but `is_not_set`."""
        if self.type == "hogql":
            return sql.truth(parse_expression(self.key).to_dialect(sql))
        column = _COLUMN[self.type]
        if self.operator in ("is_set", "is_not_set"):
            test = sql.has(column, self.key)
            return test if self.operator == "is_set" else f"(NOT {test})"
        text = sql.property(column, self.key)  # every parameter allocated must be used
        match self.operator:
            case "exact" | "is_not":
                values: list[Scalar] = self.value if isinstance(self.value, list) else [self.value or ""]
                test = sql.truth(sql.one_of(text, [_as_text(v) for v in values]))
            case "icontains" | "not_icontains":
                test = sql.truth(f"{text} ILIKE {sql.text(like_containing(str(self.value)))}")
            case "regex" | "not_regex":
                test = sql.truth(sql.matches(text, str(self.value)))
            case _:
                return sql.truth(f"{sql.number_of(text)} {_COMPARE[self.operator]} {sql.decimal(str(self.value))}")
        return test if self.operator in ("exact", "icontains", "regex") else f"(NOT {test})"


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
