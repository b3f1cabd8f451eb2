"""The persons model read from PostHog's ClickHouse tables, as PostHog's persons export reads them.

PostHog's ingestion writes a row per version: of a person (`person`) when its properties change or it is
merged away (`is_deleted`), of a distinct id's link (`person_distinct_id2`) when it moves to another person.
"""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.sources.clickhouse.persons import ClickHousePersonsSource
from connectors.sources.persons import COLUMNS
from connectors.sources.reading import BatchSize
from tests.support.clickhouse import ClickHouseAccount
from tests.support.posthog_tables import PostHogClickHouse

START = datetime(2026, 11, 3, 10, tzinfo=UTC)
END = START + timedelta(hours=1)
DAY_BEFORE = START - timedelta(days=1)
TEAM = 7
P1, P2, P3, P4 = (uuid.UUID(int=n) for n in (1, 2, 3, 4))


def _at(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def person(
    id: uuid.UUID, version: int, at: datetime, deleted: bool = False, team: int = TEAM, **properties: Any
) -> dict[str, Any]:
    return {"id": str(id), "created_at": _at(DAY_BEFORE), "team_id": team, "properties": json.dumps(properties),
            "is_identified": 0, "is_deleted": int(deleted), "version": version, "_timestamp": _at(at),
            "_offset": 0}  # fmt: skip


def link(distinct_id: str, id: uuid.UUID, version: int, at: datetime, team: int = TEAM) -> dict[str, Any]:
    return {"team_id": team, "distinct_id": distinct_id, "person_id": str(id), "is_deleted": 0, "version": version,
            "_timestamp": _at(at), "_offset": 0, "_partition": 0}  # fmt: skip


async def test_changed_persons_and_links_with_their_latest_versions(clickhouse: ClickHouseAccount) -> None:
    posthog = PostHogClickHouse.created(clickhouse)
    merged_at = START + timedelta(minutes=10)
    posthog.insert("person", [
        person(P1, 0, DAY_BEFORE, name="unchanged"),
        person(P2, 0, DAY_BEFORE, x=1), person(P2, 1, START + timedelta(minutes=5), x=2),
        person(P3, 0, DAY_BEFORE, y=1),
        # c1 (P3's) merged into P2: P2's new version holds both, P3 is deleted
        person(P2, 2, merged_at, x=2, y=1), person(P3, 1, merged_at, deleted=True, y=1),
        person(P4, 0, END, z=1),  # after the interval
        person(P1, 5, START, team=TEAM + 1, other="team"),
    ])  # fmt: skip
    posthog.insert("person_distinct_id2", [
        link("a1", P1, 0, DAY_BEFORE), link("b1", P2, 0, DAY_BEFORE), link("c1", P3, 0, DAY_BEFORE),
        link("c1", P2, 1, merged_at), link("d1", P4, 0, END), link("a1", P1, 3, START, team=TEAM + 1),
    ])  # fmt: skip
    source = ClickHousePersonsSource(posthog.client(), TEAM)

    batches = [batch async for batch in source.read(START, END, size=BatchSize(rows=1))]
    rows = [row for batch in batches for row in batch.data.to_pylist()]
    assert batches[0].data.schema.names == list(COLUMNS)
    assert [(r["distinct_id"], r["person_id"], r["person_version"], r["person_distinct_id_version"], r["is_deleted"],
             r["_inserted_at"], json.loads(r["properties"])) for r in rows] == [
        ("b1", str(P2), 2, 0, False, merged_at, {"x": 2, "y": 1}),
        ("c1", str(P2), 2, 1, False, merged_at, {"x": 2, "y": 1}),
    ]  # fmt: skip
    assert all(r["team_id"] == TEAM and r["created_at"] == DAY_BEFORE for r in rows)

    rest = [row async for batch in source.read(START, END, after=batches[0].position) for row in batch.data.to_pylist()]
    assert [r["distinct_id"] for r in rest] == ["c1"]
    assert await source.count(START, END) == 2
    assert await source.first_at(END) == DAY_BEFORE
    assert await source.first_at(DAY_BEFORE) is None
