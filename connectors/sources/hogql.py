"""`hogql_query` and HogQL filters: parsed with sqlglot, checked against a whitelist, compiled to SQL.

Accepted: `SELECT <expressions> FROM events`, with no joins, unions, CTEs, subqueries, WHERE, GROUP BY
or the like. An expression may use the known event columns, `properties.<name>` /
`person_properties.<name>` (also `properties['$name']`), literals, arithmetic, comparisons, AND/OR/NOT,
IS NULL, IN (literals), LIKE/ILIKE and the functions in `FUNCTIONS`.

Nothing the user wrote reaches SQL as text: columns and functions map to fixed SQL, property names
and literals become bound parameters, and output names are applied to the rows, never to the SQL.

Parsing is the costly part (an export's filters are read, compiled and shown again on every request), so
the latest checked queries and expressions are kept; they are immutable.
"""

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from connectors.sources.params import Params

MAX_LENGTH = 10_000
MAX_DEPTH = 200
"""How deeply expressions may nest at most (`BATCH_EXPORTS_MAX_EXPRESSION_DEPTH` may ask for less): compiling
them recurses, so this stays well inside Python's recursion limit."""

COLUMNS = {
    "uuid": "uuid",
    "event": "event",
    "properties": "properties",
    "distinct_id": "distinct_id",
    "person_id": "person_id",
    "person_properties": "person_properties",
    "timestamp": "timestamp",
    "created_at": "created_at",
    "elements_chain": "elements_chain",
    "inserted_at": "inserted_at",
    "_inserted_at": "inserted_at",
    "team_id": "team_id",
}
PROPERTY_COLUMNS = {"properties": "properties", "person_properties": "person_properties"}
_NAME = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]{0,199}$")
_NUMERIC = r"'^\s*-?[0-9]+(\.[0-9]+)?\s*$'"


class HogQLError(ValueError):
    """The query or expression is not one this service runs; the message says which part."""


class HogQLParseError(HogQLError):
    """The text does not parse at all (PostHog says exactly "Failed to parse query")."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"it does not parse: {reason}")
        self.reason = reason


def _to_number(args: list[str]) -> str:
    (value,) = args
    return f"(CASE WHEN ({value})::text ~ {_NUMERIC} THEN ({value})::text::numeric END)"


def _fixed(name: str, count: int | None) -> Callable[[list[str]], str]:
    def render(args: list[str]) -> str:
        if count is not None and len(args) != count:
            raise HogQLError(f"{name} takes {count} argument{'s' * (count != 1)}")
        return f"{name}({', '.join(args)})"

    return render


def _single(template: str) -> Callable[[list[str]], str]:
    def render(args: list[str]) -> str:
        if len(args) != 1:
            raise HogQLError("this function takes 1 argument")
        return template.format(args[0])

    return render


FUNCTIONS: dict[str, Callable[[list[str]], str]] = {
    "lower": _fixed("lower", 1),
    "upper": _fixed("upper", 1),
    "length": _single("length(({})::text)"),
    "trim": _fixed("btrim", 1),
    "coalesce": _fixed("coalesce", None),
    "concat": _fixed("concat", None),
    "nullif": _fixed("nullif", 2),
    "abs": _fixed("abs", 1),
    "round": _fixed("round", 1),
    "tostring": _single("({})::text"),
    "toint": lambda args: f"trunc({_to_number(args)})",
    "tofloat": _to_number,
}
"""Function name (lower case) -> how its compiled arguments become PostgreSQL's SQL."""

_CLICKHOUSE_NUMBER = "if(match(toString({0}), '^\\s*-?[0-9]+(\\.[0-9]+)?\\s*$'), toFloat64OrNull(toString({0})), NULL)"
CLICKHOUSE_FUNCTIONS: dict[str, Callable[[list[str]], str]] = {
    "lower": _fixed("lowerUTF8", 1),
    "upper": _fixed("upperUTF8", 1),
    "length": _single("lengthUTF8(toString({}))"),
    "trim": _fixed("trimBoth", 1),
    "coalesce": _fixed("coalesce", None),
    "concat": _fixed("concat", None),
    "nullif": _fixed("nullIf", 2),
    "abs": _fixed("abs", 1),
    "round": _fixed("round", 1),
    "tostring": _single("toString({})"),
    "toint": _single(f"toInt64(trunc({_CLICKHOUSE_NUMBER}))"),
    "tofloat": _single(_CLICKHOUSE_NUMBER),
}
"""The same functions in ClickHouse's SQL."""


class Dialect(ABC):
    """How a checked expression's leaves become one database's SQL, its values bound in that database's way."""

    functions: dict[str, Callable[[list[str]], str]]
    """The functions of `FUNCTIONS`' names, rendered."""
    columns: dict[str, str]
    """The known columns (`COLUMNS`' names), as that database's query names them."""

    @abstractmethod
    def text(self, value: str) -> str: ...

    @abstractmethod
    def integer(self, value: int) -> str: ...

    @abstractmethod
    def number(self, value: float) -> str: ...

    @abstractmethod
    def property(self, column: str, key: str) -> str:
        """The property's value as text (NULL when missing or JSON null), as PostgreSQL's `->>` gives it."""

    @abstractmethod
    def has(self, column: str, key: str) -> str:
        """Whether the JSON object in `column` has `key`."""

    @abstractmethod
    def one_of(self, text: str, values: list[str]) -> str:
        """Whether `text` is one of `values` (NULL when `text` is)."""

    @abstractmethod
    def matches(self, text: str, pattern: str) -> str:
        """Whether `text` matches the regular expression (NULL when `text` is)."""

    @abstractmethod
    def number_of(self, text: str) -> str:
        """`text` as a number when it is one (`-12.5`), else NULL."""

    @abstractmethod
    def decimal(self, value: str) -> str:
        """A number given as text, bound as that database's exact number (or its closest)."""

    @abstractmethod
    def truth(self, condition: str) -> str:
        """`condition` as a boolean, NULL as false."""


class PostgreSQL(Dialect):
    def __init__(self, p: Params) -> None:
        self.p, self.functions, self.columns = p, FUNCTIONS, COLUMNS

    def text(self, value: str) -> str:
        return self.p(value, "::text")

    def integer(self, value: int) -> str:
        return self.p(value, "::bigint") if abs(value) < 2**63 else self.p(str(value), "::numeric")

    def number(self, value: float) -> str:
        return self.p(value, "::float8")

    def property(self, column: str, key: str) -> str:
        return f"({PROPERTY_COLUMNS[column]} ->> {self.p(key, '::text')})"

    def has(self, column: str, key: str) -> str:
        return f"({PROPERTY_COLUMNS[column]} ? {self.p(key, '::text')})"

    def one_of(self, text: str, values: list[str]) -> str:
        return f"({text} = ANY({self.p(values, '::text[]')}))"

    def matches(self, text: str, pattern: str) -> str:
        return f"({text} ~ {self.p(pattern, '::text')})"

    def number_of(self, text: str) -> str:
        return f"(CASE WHEN {text} ~ {_NUMERIC} THEN {text}::numeric END)"

    def decimal(self, value: str) -> str:
        return self.p(value, "::numeric")

    def truth(self, condition: str) -> str:
        return f"coalesce(({condition})::boolean, false)"


_BINARY = {
    exp.EQ: "=",
    exp.NEQ: "<>",
    exp.GT: ">",
    exp.GTE: ">=",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.And: "AND",
    exp.Or: "OR",
    exp.Add: "+",
    exp.Sub: "-",
    exp.Mul: "*",
    exp.Div: "/",
    exp.Mod: "%",
    exp.Like: "LIKE",
    exp.ILike: "ILIKE",
}
_SQLGLOT_FUNCTIONS: dict[type[exp.Expression], str] = {
    exp.Lower: "lower",
    exp.Upper: "upper",
    exp.Length: "length",
    exp.Trim: "trim",
    exp.Coalesce: "coalesce",
    exp.Concat: "concat",
    exp.Nullif: "nullif",
    exp.Abs: "abs",
    exp.Round: "round",
}


@dataclass(frozen=True)
class Expression:
    """A checked expression; `to_sql` compiles it, binding its values in `p`."""

    node: exp.Expression
    name: str

    def to_sql(self, p: Params) -> str:
        return _compile(self.node, PostgreSQL(p))

    def to_dialect(self, dialect: Dialect) -> str:
        return _compile(self.node, dialect)


@dataclass(frozen=True)
class Query:
    """A checked `SELECT ... FROM events`: its expressions, each with its output name."""

    expressions: tuple[Expression, ...]

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.expressions]


def depth(node: exp.Expression) -> int:
    """How deeply `node`'s tree nests (a walk of its own: the tree may be deeper than Python would recurse)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in current.iter_expressions())
    return deepest


def _check_depth(node: exp.Expression, max_depth: int) -> None:
    while isinstance(node, exp.Paren):
        node = node.this
    limit = min(max_depth, MAX_DEPTH)
    if (nesting := depth(node)) > limit:
        raise HogQLError(
            f"an expression nests {nesting} levels deep, more than {limit} (BATCH_EXPORTS_MAX_EXPRESSION_DEPTH)"
        )


def _parse(text: str) -> exp.Expression:
    if not isinstance(text, str) or not text.strip():
        raise HogQLError("the query is empty")
    if len(text) > MAX_LENGTH:
        raise HogQLError(f"the query is longer than {MAX_LENGTH} characters")
    try:
        _strict(sqlglot.tokenize(text, read="mysql"))
        statements = sqlglot.parse(text, read="mysql")
    except HogQLParseError:
        raise
    except (ParseError, TokenError) as error:
        raise HogQLParseError(str(error).splitlines()[0][:200]) from None
    except (RecursionError, ValueError):
        raise HogQLParseError("it is not SQL") from None
    present = [s for s in statements if isinstance(s, exp.Expression)]
    if len(statements) != 1 or len(present) != 1:
        raise HogQLError("it must be a single SELECT statement")
    return present[0]


def _strict(tokens: list[Any]) -> None:
    """What sqlglot forgives and HogQL does not: an empty item in a list (`a,, b`, `a, FROM`, `SELECT , a`)."""
    kinds = [token.token_type for token in tokens]
    for before, after in zip([None, *kinds], [*kinds, None], strict=True):
        if after is TokenType.COMMA and before in (None, TokenType.COMMA, TokenType.SELECT, TokenType.L_PAREN):
            raise HogQLParseError("an empty item before a comma")
        if before is TokenType.COMMA and after in (None, TokenType.FROM, TokenType.R_PAREN):
            raise HogQLParseError("an empty item after a comma")
    if kinds and kinds[0] is TokenType.SELECT and (len(kinds) == 1 or kinds[1] is TokenType.FROM):
        raise HogQLParseError("SELECT names nothing")


def parse_query(text: str, max_depth: int = MAX_DEPTH) -> Query:
    """Check a `hogql_query`; raises HogQLError saying what is not allowed, such as expressions nested more than
    `max_depth` levels."""
    query = _checked_query(text)
    if max_depth < MAX_DEPTH:
        for expression in query.expressions:
            _check_depth(expression.node, max_depth)
    return query


@functools.lru_cache(maxsize=256)
def _checked_query(text: str) -> Query:
    node = _parse(text)
    if not isinstance(node, exp.Select):
        raise HogQLError(f"it must be a SELECT, not {node.key.upper()}")
    source = node.args.get("from_") or node.args.get("from")
    if not isinstance(source, exp.From) or not isinstance(source.this, exp.Table) or source.this.name != "events":
        raise HogQLError("it must select FROM events")
    if source.this.args.get("alias") or source.this.args.get("db") or source.this.args.get("catalog"):
        raise HogQLError("FROM events takes no alias or schema")
    for key, value in node.args.items():
        if key not in ("expressions", "from", "from_", "kind", "hint") and value:
            raise HogQLError(f"{key.upper().rstrip('_')} is not allowed: only SELECT <expressions> FROM events")
    if node.args.get("kind") or node.args.get("hint"):
        raise HogQLError("only a plain SELECT is allowed")
    expressions = []
    for item in node.expressions:
        name = _output_name(item)
        inner = item.this if isinstance(item, exp.Alias) else item
        _check_depth(inner, MAX_DEPTH)
        _check(inner)
        expressions.append(Expression(inner, name))
    names = [e.name for e in expressions]
    if duplicates := sorted({n for n in names if names.count(n) > 1}):
        raise HogQLError(f"column names must be unique; name them with AS: {', '.join(duplicates)}")
    return Query(tuple(expressions))


def parse_expression(text: str, max_depth: int = MAX_DEPTH) -> Expression:
    """Check one HogQL expression (a `hogql` filter); raises HogQLError."""
    if len(text or "") > MAX_LENGTH:
        raise HogQLError(f"the expression is longer than {MAX_LENGTH} characters")
    if not isinstance(text, str) or not text.strip():
        raise HogQLError("the expression is empty")
    query = parse_query(f"SELECT ({text}) AS expression FROM events", max_depth)
    if len(query.expressions) != 1:
        raise HogQLError("it must be one expression")
    return query.expressions[0]


def _output_name(item: exp.Expression) -> str:
    if isinstance(item, exp.Star) or (isinstance(item, exp.Column) and isinstance(item.this, exp.Star)):
        raise HogQLError("SELECT * is not allowed: name the columns to export")
    if isinstance(item, exp.Alias):
        name = item.alias
    elif isinstance(item, exp.Column):
        name = item.name
    elif isinstance(item, exp.Bracket) and item.expressions and isinstance(item.expressions[0], exp.Literal):
        name = str(item.expressions[0].this)
    else:
        raise HogQLError(f"name the expression with AS: {item.sql(dialect='mysql')[:80]}")
    if not _NAME.match(name):
        raise HogQLError(f"'{name[:80]}' is not a usable column name (letters, digits, _ and $)")
    return name


def _check(node: exp.Expression) -> None:
    """Raise HogQLError unless every part of `node` compiles; compiling into a throwaway does it."""
    _compile(node, PostgreSQL(Params()))


def _compile(node: exp.Expression, p: Dialect) -> str:
    if isinstance(node, exp.Paren):
        return f"({_compile(node.this, p)})"
    if isinstance(node, exp.Column):
        table, name = node.table, node.name
        if table:
            if table not in PROPERTY_COLUMNS or node.args.get("db"):
                raise HogQLError(f"'{node.sql(dialect='mysql')[:80]}' is not a known column or property")
            return p.property(table, name)
        if name not in COLUMNS:
            raise HogQLError(f"'{name[:80]}' is not a known column; use one of {', '.join(sorted(COLUMNS))}")
        return p.columns[name]
    if isinstance(node, exp.Bracket):
        target, keys = node.this, node.expressions
        if (
            isinstance(target, exp.Column)
            and not target.table
            and target.name in PROPERTY_COLUMNS
            and len(keys) == 1
            and isinstance(keys[0], exp.Literal)
            and keys[0].is_string
        ):
            return p.property(target.name, str(keys[0].this))
        raise HogQLError("only properties['name'] and person_properties['name'] may be indexed")
    if isinstance(node, exp.Literal):
        if node.is_string:
            return p.text(str(node.this))
        try:
            return p.integer(int(node.this))
        except ValueError:
            return p.number(float(node.this))
    if isinstance(node, exp.Boolean):
        return "TRUE" if node.this else "FALSE"
    if isinstance(node, exp.Null):
        return "NULL"
    if isinstance(node, exp.Neg):
        return f"(-{_compile(node.this, p)})"
    if isinstance(node, exp.Not):
        return f"(NOT {_compile(node.this, p)})"
    if isinstance(node, exp.Is):
        if not isinstance(node.expression, exp.Null):
            raise HogQLError("IS is only for IS NULL / IS NOT NULL")
        return f"({_compile(node.this, p)} IS NULL)"
    if isinstance(node, exp.In):
        if node.args.get("query") or not node.expressions:
            raise HogQLError("IN takes a list of literals, not a subquery")
        options = ", ".join(_compile(option, p) for option in node.expressions)
        return f"({_compile(node.this, p)} IN ({options}))"
    for kind, operator in _BINARY.items():
        if type(node) is kind:
            return f"({_compile(node.this, p)} {operator} {_compile(node.expression, p)})"
    if isinstance(node, exp.If):
        otherwise = node.args.get("false")
        default = f" ELSE {_compile(otherwise, p)}" if otherwise is not None else ""
        return f"(CASE WHEN {_compile(node.this, p)} THEN {_compile(node.args['true'], p)}{default} END)"
    function = _function_name(node)
    if function is not None:
        return p.functions[function]([_compile(arg, p) for arg in _arguments(node)])
    raise HogQLError(f"{node.key.upper()} is not allowed here: {node.sql(dialect='mysql')[:80]}")


def _function_name(node: exp.Expression) -> str | None:
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower()
        if name not in FUNCTIONS:
            raise HogQLError(
                f"function '{str(node.this)[:40]}' is not allowed; use one of {', '.join(sorted(FUNCTIONS))}"
            )
        return name
    return _SQLGLOT_FUNCTIONS.get(type(node))


def _arguments(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.Anonymous):
        return list(node.expressions)
    if isinstance(node, exp.Round) and node.args.get("decimals") is not None:
        raise HogQLError("round takes 1 argument")
    if isinstance(node, exp.Trim) and (node.args.get("expression") or node.args.get("position")):
        raise HogQLError("trim takes 1 argument")
    args = [node.this] if node.args.get("this") is not None else []
    if node.args.get("expression") is not None:
        args.append(node.args["expression"])
    return args + list(node.expressions)


def schema_of(query: Query, text: str) -> dict[str, Any]:
    """What an export with this query exports, as its `schema`."""
    return {
        "fields": [{"alias": e.name, "expression": e.node.sql(dialect="mysql")} for e in query.expressions],
        "hogql_query": text,
    }
