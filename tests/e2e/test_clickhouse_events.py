"""The events model read from PostHog's ClickHouse tables (the engine behind the stand-in), row by row.

Data is written as PostHog's ingestion writes it: copies of an event before a merge, `inserted_at` missing on
rows older than the column (`_timestamp` then), a distinct id merged after its events were ingested (an
override row), and an override deleted again.
"""

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from connectors.sources.buckets import Buckets
from connectors.sources.clickhouse.events import ClickHouseEventsSource
from connectors.sources.events import COLUMNS, POSTGRES_COLUMNS, EventSelection
from connectors.sources.reading import BatchSize
from contracts.intervals import Interval, IntervalSpec
from tests.support.clickhouse import ClickHouseAccount
from tests.support.posthog_tables import Event, PostHogClickHouse

START = datetime(2026, 11, 3, 10, tzinfo=UTC)
END = START + timedelta(hours=1)
TEAM, OTHER_TEAM = 7, 8
P1, P2, P3 = (uuid.UUID(int=n) for n in (1, 2, 3))


@pytest.fixture
def posthog(clickhouse: ClickHouseAccount) -> PostHogClickHouse:
    """PostHog's tables in a database of this test's own (the tests here use fixed team ids)."""
    return PostHogClickHouse.created(clickhouse)


def _event(name: str, distinct_id: str, person: uuid.UUID, inserted: datetime | None, **fields: Any) -> Event:
    stamp = fields.pop("_timestamp", inserted or START)
    return Event(TEAM, name, distinct_id, person, fields.pop("timestamp", START - timedelta(minutes=5)), inserted,
                 stamp, **fields)  # fmt: skip


async def _rows(source: ClickHouseEventsSource, **kwargs: Any) -> tuple[list[dict[str, Any]], pa.Schema | None]:
    batches = [batch async for batch in source.read(START, END, **kwargs)]
    rows = [row for batch in batches for row in batch.data.to_pylist()]
    return rows, batches[0].data.schema if batches else None


async def test_the_interval_by_ingestion_time_each_event_once_with_its_person_after_overrides(
    posthog: PostHogClickHouse,
) -> None:
    inside = START + timedelta(minutes=10)
    anon = _event("$pageview", "anon", P1, inside, properties={"$set": {"a": 1}, "$ip": "1.2.3.4"})
    user = _event("$pageview", "user", P2, inside + timedelta(minutes=1), elements_chain='a:href="/x"')
    before_column = _event("old", "user", P2, None, _timestamp=inside + timedelta(minutes=2))
    unmerged = _event("$pageview", "undone", P3, inside + timedelta(minutes=3))
    outside = [_event("late", "user", P2, END), _event("early", "user", P2, START - timedelta(microseconds=1)),
               Event(OTHER_TEAM, "$pageview", "user", P2, START, inside, inside)]  # fmt: skip
    events = [anon, user, before_column, unmerged, *outside]
    posthog.insert("events", [e.row() for e in [*events, anon, user]])  # two copies each, before any merge
    posthog.insert("person_distinct_id_overrides", [
        {"team_id": TEAM, "distinct_id": "anon", "person_id": str(P2), "is_deleted": 0, "version": 1},
        {"team_id": TEAM, "distinct_id": "undone", "person_id": str(P2), "is_deleted": 0, "version": 1},
        {"team_id": TEAM, "distinct_id": "undone", "person_id": str(P2), "is_deleted": 1, "version": 2},
        {"team_id": OTHER_TEAM, "distinct_id": "user", "person_id": str(P3), "is_deleted": 0, "version": 1},
    ])  # fmt: skip

    rows, schema = await _rows(ClickHouseEventsSource(posthog.client(), TEAM))
    assert [(r["event"], r["distinct_id"], r["person_id"]) for r in rows] == [
        ("$pageview", "anon", str(P2)), ("$pageview", "user", str(P2)), ("old", "user", str(P2)),
        ("$pageview", "undone", str(P3)),
    ]  # fmt: skip
    assert schema is not None and schema.names == list(COLUMNS)
    first = rows[0]
    assert first["uuid"] == str(anon.uuid) and first["_inserted_at"] == anon.inserted_at
    assert first["timestamp"] == anon.timestamp and first["properties"] == '{"$set": {"a": 1}, "$ip": "1.2.3.4"}'
    assert rows[2]["_inserted_at"] == before_column._timestamp

    postgres, schema = await _rows(ClickHouseEventsSource(posthog.client(), TEAM, EventSelection(layout="postgres")))
    assert schema is not None and schema.names == list(POSTGRES_COLUMNS)
    assert postgres[0]["ip"] == "1.2.3.4" and json.loads(postgres[0]["set"]) == {"a": 1}
    assert postgres[0]["site_url"] == "" and postgres[0]["set_once"] is None
    assert json.loads(postgres[1]["elements"]) == 'a:href="/x"'  # ClickHouse's toJSONString, as PostHog's
    assert postgres[1]["ip"] is None and postgres[1]["set"] is None


async def test_a_read_resumes_after_its_position_and_selects_by_name(posthog: PostHogClickHouse) -> None:
    at = [START + timedelta(minutes=m) for m in range(6)]
    events = [_event("in" if i % 2 else "out", f"d{i}", P1, t) for i, t in enumerate(at)]
    posthog.insert("events", [e.row() for e in events])
    source = ClickHouseEventsSource(posthog.client(), TEAM)
    positions = [batch.position async for batch in source.read(START, END, size=BatchSize(rows=1))]
    assert len(positions) == 6
    rest, _ = await _rows(source, after=positions[1])
    assert [r["distinct_id"] for r in rest] == ["d2", "d3", "d4", "d5"]
    some, _ = await _rows(source, after=positions[1], limit=2)
    assert [r["distinct_id"] for r in some] == ["d2", "d3"]
    named, _ = await _rows(ClickHouseEventsSource(posthog.client(), TEAM, EventSelection(include_events=("in",))))
    assert [r["distinct_id"] for r in named] == ["d1", "d3", "d5"]
    unnamed, _ = await _rows(ClickHouseEventsSource(posthog.client(), TEAM, EventSelection(exclude_events=("in",))))
    assert [r["distinct_id"] for r in unnamed] == ["d0", "d2", "d4"]


async def test_counts_per_bucket_and_the_first_event(posthog: PostHogClickHouse) -> None:
    days = [START - timedelta(days=2), START - timedelta(days=2, minutes=-3), START + timedelta(minutes=7)]
    posthog.insert("events", [_event("e", f"d{i}", P1, t).row() for i, t in enumerate(days)])
    source = ClickHouseEventsSource(posthog.client(), TEAM)
    assert await source.count(START - timedelta(days=3), END) == 3
    hourly = await source.counts(START - timedelta(days=3), END, Buckets(IntervalSpec(Interval.HOUR)))
    assert [(c.bucket, c.records) for c in hourly] == [(days[0].replace(minute=0), 2), (START, 1)]
    daily = await source.counts(START - timedelta(days=3), END, Buckets(IntervalSpec(Interval.DAY, "America/New_York")))
    assert sorted((c.bucket, c.records) for c in daily) == [(date(2026, 11, 1), 2), (date(2026, 11, 3), 1)]
    assert await source.first_at(END) == days[0]
    assert await source.first_at(days[0]) is None
