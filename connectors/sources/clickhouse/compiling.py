"""HogQL expressions and property filters in ClickHouse's SQL (see `connectors.sources.hogql.Dialect`).

The same checked expressions the PostgreSQL source compiles, over the columns of the deduplicated events
the ClickHouse events model reads; every value a bound `{name:Type}` parameter. A property is read as
PostgreSQL's `->>` reads it: a string as its text, any other JSON value as its JSON text, missing or JSON
null as NULL.
"""

from connectors.sources.clickhouse.http import Params
from connectors.sources.hogql import CLICKHOUSE_FUNCTIONS, COLUMNS, PROPERTY_COLUMNS, Dialect

_NUMERIC = r"^\s*-?[0-9]+(\.[0-9]+)?\s*$"


class ClickHouseSQL(Dialect):
    def __init__(self, p: Params) -> None:
        self.p, self.functions = p, CLICKHOUSE_FUNCTIONS
        self.columns = {name: "_inserted_at" if column == "inserted_at" else column for name, column in COLUMNS.items()}

    def text(self, value: str) -> str:
        return self.p(value, "String")

    def integer(self, value: int) -> str:
        return self.p(value, "Int64") if abs(value) < 2**63 else self.p(value, "Float64")

    def number(self, value: float) -> str:
        return self.p(value, "Float64")

    def property(self, column: str, key: str) -> str:
        json, name = PROPERTY_COLUMNS[column], self.p(key, "String")
        kind = f"JSONType({json}, {name})"
        return (f"if({kind} = 'Null', NULL, if({kind} = 'String', JSONExtractString({json}, {name}), "
                f"JSONExtractRaw({json}, {name})))")  # fmt: skip

    def has(self, column: str, key: str) -> str:
        return f"JSONHas({PROPERTY_COLUMNS[column]}, {self.p(key, 'String')})"

    def one_of(self, text: str, values: list[str]) -> str:
        return f"has({self.p(values, 'Array(String)')}, {text})"

    def matches(self, text: str, pattern: str) -> str:
        return f"match({text}, {self.p(pattern, 'String')})"

    def number_of(self, text: str) -> str:
        return f"if(match({text}, {self.p(_NUMERIC, 'String')}), toFloat64OrNull({text}), NULL)"

    def decimal(self, value: str) -> str:
        return self.p(float(value), "Float64")

    def truth(self, condition: str) -> str:
        return f"ifNull(toBool({condition}), false)"
