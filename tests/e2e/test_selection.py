"""Filters and hogql_query end to end: validated when saved, applied when exported, on either source.

The same cases run on this service's PostgreSQL (events sent to its capture endpoint) and on PostHog's
ClickHouse (the same events written into PostHog's tables as its ingestion writes them).
"""

from typing import Any

from tests.support.helpers import export_now, ingest
from tests.support.stack import Project


def visit(distinct_id: str, **properties: Any) -> dict[str, Any]:
    return {"event": "$pageview", "distinct_id": distinct_id, "properties": properties}


async def test_filters_select_the_events_they_describe(source_project: Project) -> None:
    project = source_project
    await ingest(
        project,
        [
            {**visit("a", plan="pro", price=30, path="/Pricing/annual"), "$set": {"tier": "gold"}},
            visit("b", plan="free", price=5, path="/docs"),
            visit("c", plan="pro", price="12", path="/pricing"),
            visit("d", price="not a number"),
        ],
    )
    cases: list[tuple[list[dict[str, Any]], set[str]]] = [
        ([{"key": "plan", "value": "pro"}], {"a", "c"}),
        ([{"key": "plan", "value": ["pro", "free"], "operator": "exact"}], {"a", "b", "c"}),
        ([{"key": "plan", "value": "pro", "operator": "is_not"}], {"b", "d"}),
        ([{"key": "path", "value": "pricing", "operator": "icontains"}], {"a", "c"}),
        ([{"key": "path", "value": "^/doc", "operator": "regex"}], {"b"}),
        ([{"key": "price", "value": 10, "operator": "gt"}], {"a", "c"}),
        ([{"key": "price", "value": 12, "operator": "lte"}], {"b", "c"}),
        ([{"key": "plan", "operator": "is_not_set"}], {"d"}),
        ([{"type": "person", "key": "tier", "value": "gold"}], {"a"}),
        ([{"type": "hogql", "key": "length(distinct_id) = 1 AND properties.plan = 'pro'"}], {"a", "c"}),
        ([{"key": "plan", "value": "pro"}, {"key": "price", "value": 20, "operator": "gte"}], {"a"}),
    ]
    for number, (filters, expected) in enumerate(cases):
        rows = await export_now(project, f"filters-{project.id}-{number}", filters=filters)
        assert {row["distinct_id"] for row in rows} == expected, filters


async def test_hogql_query_picks_and_names_the_columns(source_project: Project) -> None:
    project = source_project
    await ingest(project, [visit("ada", plan="pro", **{"$browser": "Firefox"}), visit("bob")])
    query = "SELECT event, lower(distinct_id) AS who, properties.$browser AS browser, toString(uuid) AS id FROM events"
    status, export = await project.request(
        "POST",
        "batch_exports/",
        json={"name": "q", "interval": "hour", "hogql_query": query, "destination": {"type": "NoOp"}},
    )
    assert status == 201, export
    assert [field["alias"] for field in export["schema"]["fields"]] == ["event", "who", "browser", "id"]
    rows = await export_now(project, f"hogql-{project.id}", hogql_query=query)
    assert sorted((row["who"], row["browser"]) for row in rows) == [("ada", "Firefox"), ("bob", None)]
    assert all(set(row) == {"event", "who", "browser", "id"} for row in rows)


async def test_bad_selections_are_400s_that_say_why(source_project: Project) -> None:
    project = source_project
    base = {"name": "bad", "interval": "hour", "destination": {"type": "NoOp"}}
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"hogql_query": "SELECT event FROM events WHERE 1 = 1"}, "hogql_query", "WHERE is not allowed"),
        ({"hogql_query": "SELECT pg_sleep(1) AS s FROM events"}, "hogql_query", "pg_sleep"),
        ({"hogql_query": "SELECT round(properties.x) AS r FROM events"}, "hogql_query", "does not fit"),
        ({"filters": [{"type": "hogql", "key": "lower(timestamp) = 'x'"}]}, "filters", "does not fit"),
        ({"filters": [{"key": "x", "value": "(", "operator": "regex"}]}, "filters__0__value", "regular expression"),
        ({"filters": [{"key": "x", "operator": "gt", "value": "many"}]}, "filters__0", "compares numbers"),
        ({"filters": [{"key": "x", "operator": "almost"}]}, "filters__0__operator", "exact"),
        ({"filters": [{"type": "hogql", "key": "1; DROP TABLE events"}]}, "filters__0", "HogQL"),
        ({"model": "persons", "filters": [{"key": "x", "value": "y"}]}, "model", "events model only"),
    ]
    for fields, attr, says in cases:
        status, body = await project.request("POST", "batch_exports/", json={**base, **fields})
        assert (status, body["attr"]) == (400, attr), (fields, body)
        assert says in body["detail"], body
