"""The sessions model read from PostHog's ClickHouse `raw_sessions_v3`, by PostHog's interval rule.

Events are written into `events` as PostHog's ingestion writes them; PostHog's materialized view turns each into
a row of `raw_sessions_v3`'s aggregate states, which the source aggregates again. A session is exported in the
interval holding the later of its last ingestion and its end, unless it ended more than three days before it.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from connectors.sources.clickhouse.sessions import ClickHouseSessionsSource
from connectors.sources.reading import BatchSize
from connectors.sources.sessions import COLUMNS
from tests.support.clickhouse import ClickHouseAccount
from tests.support.posthog_tables import Event, PostHogClickHouse

START = datetime(2026, 11, 3, 10, tzinfo=UTC)
END = START + timedelta(hours=1)
TEAM = 7
MINUTE = timedelta(minutes=1)


def session(began: datetime, n: int) -> str:
    """A UUIDv7 session id as posthog-js makes it when a session begins."""
    ms = f"{int(began.timestamp() * 1000):012x}"
    return f"{ms[:8]}-{ms[8:]}-7000-8000-{n:012x}"


def pageview(session_id: str, at: datetime, ingested: datetime, team: int = TEAM) -> dict[str, Any]:
    return Event(team, "$pageview", "u", uuid.UUID(int=1), at, ingested, ingested,
                 properties={"$session_id": session_id}).row()  # fmt: skip


async def test_a_session_is_exported_in_the_interval_of_its_end_and_last_ingestion(
    clickhouse: ClickHouseAccount,
) -> None:
    posthog = PostHogClickHouse.created(clickhouse, sessions=True)
    on_time, early, recent = session(START, 1), session(START, 2), session(START - timedelta(hours=2), 3)
    ends_later, ended_long_ago = session(END - 10 * MINUTE, 4), session(START - timedelta(days=4), 5)
    on_time_first = pageview(on_time, START + 5 * MINUTE, START + 5 * MINUTE)
    posthog.insert("events", [
        on_time_first, pageview(on_time, START + 6 * MINUTE, START + 6 * MINUTE),
        pageview(early, START + 30 * MINUTE, START - timedelta(hours=2)),  # ingested before it happened
        # ended before the interval, within three days: its last event ingested in the interval
        pageview(recent, START - timedelta(hours=2), START - timedelta(hours=2)),
        pageview(recent, START - 90 * MINUTE, START + 20 * MINUTE),
        # begun in the interval, ends in the next one
        pageview(ends_later, END - 10 * MINUTE, END - 10 * MINUTE),
        pageview(ends_later, END + 5 * MINUTE, END + 5 * MINUTE),
        # ended four days before, an event of it ingested in the interval: too late to reopen it
        pageview(ended_long_ago, START - timedelta(days=4), START - timedelta(days=4)),
        pageview(ended_long_ago, START - timedelta(days=4) + MINUTE, START + 10 * MINUTE),
        pageview(session(START, 6), START + 5 * MINUTE, START + 5 * MINUTE, team=TEAM + 1),
    ])  # fmt: skip
    posthog.insert("events", [on_time_first])  # a copy the events table has not merged yet: counted once
    source = ClickHouseSessionsSource(posthog.client(), TEAM)

    batches = [batch async for batch in source.read(START, END, size=BatchSize(rows=1))]
    rows = [row for batch in batches for row in batch.data.to_pylist()]
    assert [(r["session_id"], r["_inserted_at"], r["end_timestamp"], r["pageview_count"]) for r in rows] == [
        (recent, START + 20 * MINUTE, START - 90 * MINUTE, 2),
        (on_time, START + 6 * MINUTE, START + 6 * MINUTE, 2),
        (early, START + 30 * MINUTE, START + 30 * MINUTE, 1),
    ]  # in the order of their ids  # fmt: skip
    rest = [row async for batch in source.read(START, END, after=batches[0].position) for row in batch.data.to_pylist()]
    assert [r["session_id"] for r in rest] == [on_time, early]
    later = [row async for batch in source.read(END, END + timedelta(hours=1)) for row in batch.data.to_pylist()]
    assert [(r["session_id"], r["start_timestamp"], r["end_timestamp"], r["pageview_count"]) for r in later] == [
        (ends_later, END - 10 * MINUTE, END + 5 * MINUTE, 2)
    ]
    assert await source.count(START, END) == 3
    assert await source.first_at(END) == START + 6 * MINUTE
    assert await source.first_at(START + 6 * MINUTE) is None


async def test_sessions_are_typed_as_the_postgresql_sources(clickhouse: ClickHouseAccount) -> None:
    posthog = PostHogClickHouse.created(clickhouse, sessions=True)
    posthog.insert("events", [pageview(session(START, 1), START + MINUTE, START + MINUTE)])
    (batch,) = [batch async for batch in ClickHouseSessionsSource(posthog.client(), TEAM).read(START, END)]
    types = dict(zip(batch.data.schema.names, batch.data.schema.types, strict=True))
    assert list(types) == list(COLUMNS)
    kinds = {
        pa.string(): {"session_id", "session_id_v7", "distinct_id", "channel_type", "entry_current_url",
                      "entry_utm_source", "entry_gclsrc", "entry_irclid", "exit_pathname"},
        pa.int64(): {"team_id", "num_uniq_urls", "pageview_count", "session_duration", "duration",
                     "page_screen_autocapture_count_up_to"},
        pa.timestamp("us", tz="UTC"): {"start_timestamp", "end_timestamp", "_inserted_at"},
        pa.bool_(): {"is_bounce"},
        pa.float64(): {"vitals_lcp"},
    }  # fmt: skip
    assert {name: types[name] for names in kinds.values() for name in names} == {
        name: kind for kind, names in kinds.items() for name in names
    }
    assert types["urls"] == pa.list_(pa.string())  # items nullable too, as a PostgreSQL array's may be
    assert all(field.nullable for field in batch.data.schema)
