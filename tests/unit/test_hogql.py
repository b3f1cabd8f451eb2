"""The HogQL checker and compiler: what it accepts, what it refuses (and says why), and that nothing
a user writes ever reaches SQL as text (a property test with hostile input)."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.sources.hogql import COLUMNS, HogQLError, parse_expression, parse_query
from connectors.sources.params import Params


def compile_query(text: str) -> tuple[list[str], list[str], list[object]]:
    query = parse_query(text)
    p = Params()
    return query.names, [e.to_sql(p) for e in query.expressions], p.values


def test_columns_properties_and_functions_compile_with_bound_values() -> None:
    names, sql, values = compile_query(
        "SELECT event, properties.$browser AS browser, toString(uuid) AS id, lower(distinct_id) AS who, "
        "properties['$os'], if(event = 'signup', 1, 0) AS signed_up FROM events"
    )
    assert names == ["event", "browser", "id", "who", "$os", "signed_up"]
    assert sql[0] == "event" and sql[1] == "(properties ->> $1::text)" and sql[2] == "(uuid)::text"
    assert set(map(str, values)) == {"$browser", "$os", "0", "signup", "1"}  # every literal and key bound


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("SELECT event FROM events WHERE event = 'x'", "WHERE is not allowed"),
        ("SELECT * FROM events", "SELECT * is not allowed"),
        ("SELECT event FROM persons", "FROM events"),
        ("SELECT event FROM events e", "no alias"),
        ("SELECT e.event FROM events JOIN persons p ON 1 = 1", "JOINS is not allowed"),
        ("SELECT (SELECT 1) AS x FROM events", "SUBQUERY is not allowed"),
        ("SELECT event FROM events UNION SELECT event FROM events", "must be a SELECT"),
        ("WITH x AS (SELECT 1) SELECT event FROM events", "WITH is not allowed"),
        ("SELECT event FROM events; DROP TABLE events", "single SELECT"),
        ("SELECT pg_sleep(10) AS x FROM events", "function 'pg_sleep' is not allowed"),
        ("SELECT password FROM events", "'password' is not a known column"),
        ("SELECT secrets.key FROM events", "not a known column or property"),
        ("SELECT event, event FROM events", "unique"),
        ("SELECT lower(event) FROM events", "name the expression with AS"),
        ("SELECT event AS `a b` FROM events", "not a usable column name"),
        ("SELECT event FROM events LIMIT 1", "LIMIT is not allowed"),
        ("DELETE FROM events", "must be a SELECT"),
        ("", "empty"),
        ("SELECT event FROM", "does not parse"),
    ],
)
def test_anything_else_is_refused_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(HogQLError, match=re.escape(says)):
        parse_query(text)


def test_filter_expressions() -> None:
    p = Params()
    sql = parse_expression("properties.plan = 'pro' AND NOT event IN ('a', 'b')").to_sql(p)
    assert sql == "((((properties ->> $1::text) = $2::text) AND (NOT (event IN ($3::text, $4::text)))))"
    assert p.values == ["plan", "pro", "a", "b"]
    with pytest.raises(HogQLError):
        parse_expression("1; DROP TABLE events")


# Everything compiled SQL may contain besides $n placeholders: fixed columns, fixed functions, keywords.
_VOCABULARY = {
    *COLUMNS.values(), "properties", "person_properties", "text", "bigint", "numeric", "float8", "date", "lower",
    "upper", "length", "btrim", "coalesce", "concat", "nullif", "abs", "round", "trunc", "CASE", "WHEN", "THEN",
    "ELSE", "END", "AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE", "TRUE", "FALSE",
}  # fmt: skip
_OUR_LITERAL = r"'^\s*-?[0-9]+(\.[0-9]+)?\s*$'"
_FRAGMENTS = st.sampled_from([
    "SELECT", "FROM", "events", "persons", "event", "properties", ".", "$browser", "[", "]", "'x'", "'", '"', "`",
    "(", ")", ",", "AS", "a", "b1", "lower", "toString", "toInt", "if", "pg_sleep", "=", "<>", "+", "-", "*", "/",
    "AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "1", "2.5", ";", "--", "/*", "*/", "DROP TABLE events", "UNION",
    "WHERE", "JOIN", "WITH", "\\", "\x00", "é", "$1", "::text", "); DROP TABLE x; --",
])  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(st.lists(_FRAGMENTS | st.text(max_size=6), max_size=14).map(" ".join))
def test_hostile_input_never_reaches_sql_as_text(body: str) -> None:
    for text in (body, f"SELECT {body} FROM events"):
        try:
            _, sql, _ = compile_query(text)
        except HogQLError:
            continue
        for fragment in sql:
            rest = re.sub(r"\$\d+", " ", fragment.replace(_OUR_LITERAL, " "))
            assert not re.search(r"['\";`\\]|--|/\*", rest), fragment
            words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", rest))
            assert words <= _VOCABULARY, (text, fragment, words - _VOCABULARY)
