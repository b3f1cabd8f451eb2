"""A deployment reading a self-hosted PostHog's ClickHouse (`BATCH_EXPORTS_SOURCE=clickhouse`), from its API.

Events and persons are written into PostHog's tables as PostHog's ingestion writes them; exports created
through the API deliver them to a File destination, row for row (sessions: `test_source_models`). A backfill
and the schedule bound their intervals by the same ingestion time, so together they export an event once.
Capture answers 404: PostHog's ingestion owns events.
"""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.helpers import create_export, event, export_now, run_hour
from tests.support.posthog_tables import Event, PostHogClickHouse
from tests.support.stack import Project


def _ingested(team: Project, name: str, distinct_id: str, person: uuid.UUID, at: datetime, **fields: Any) -> Event:
    return Event(team.id, name, distinct_id, person, fields.pop("timestamp", at), at, at, **fields)


async def test_capture_is_not_here(team: Project) -> None:
    payload = {"api_key": team.token, "batch": [event("x", "someone")]}
    status, body = await team.request("POST", "/batch/", key=None, json=payload)
    assert status == 404 and body["code"] == "capture_not_here" and "PostHog" in body["detail"]


async def test_events_from_posthogs_tables_to_a_file(team: Project, posthog: PostHogClickHouse) -> None:
    now = datetime.now(UTC)
    p1, p2 = uuid.uuid4(), uuid.uuid4()
    events = [
        _ingested(team, "$pageview", "anon", p1, now - timedelta(minutes=20), properties={"$current_url": "/a"}),
        _ingested(team, "$identify", "user", p2, now - timedelta(minutes=10), person_properties={"email": "u@x"}),
    ]
    posthog.insert("events", [e.row() for e in events] + [events[0].row()])  # a copy not merged yet
    posthog.insert("events", [_ingested(team, "old", "user", p2, now - timedelta(hours=2)).row()])
    posthog.insert("person_distinct_id_overrides", [
        {"team_id": team.id, "distinct_id": "anon", "person_id": str(p2), "is_deleted": 0, "version": 1}])  # fmt: skip

    rows = await export_now(team, "clickhouse-events")
    assert [(r["uuid"], r["event"], r["distinct_id"], r["person_id"]) for r in rows] == [
        (str(events[0].uuid), "$pageview", "anon", str(p2)),
        (str(events[1].uuid), "$identify", "user", str(p2)),
    ]
    assert rows[0]["properties"] == {"$current_url": "/a"} and rows[1]["person_properties"] == {"email": "u@x"}
    assert list(rows[0]) == ["uuid", "timestamp", "_inserted_at", "created_at", "event", "properties", "distinct_id",
                             "elements_chain", "person_properties", "person_id"]  # fmt: skip


async def test_a_backfill_then_the_schedule_export_an_event_once(team: Project, posthog: PostHogClickHouse) -> None:
    """PostHog's backfills bound intervals by `timestamp` and its schedule by ingestion time, so an event that
    arrived an hour after it happened is exported by both (PostHog's issue #27699). Here both bound by
    ingestion time: the late event is the later hour's alone."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    late = _ingested(
        team, "late", "d", uuid.uuid4(), hour - timedelta(minutes=30), timestamp=hour - timedelta(hours=1, minutes=30)
    )
    on_time = _ingested(team, "on-time", "d", uuid.uuid4(), hour - timedelta(hours=1, minutes=20))
    posthog.insert("events", [late.row(), on_time.row()])
    export = await create_export(team, {"name": "once", "interval": "hour",
                                        "destination": {"type": "File", "config": {"path": "once"}}})  # fmt: skip
    backfilled = await team.request("POST", f"batch_exports/{export['id']}/backfills/",
                                    json={"start_at": (hour - timedelta(hours=2)).isoformat(),
                                          "end_at": (hour - timedelta(hours=1)).isoformat()})  # fmt: skip
    assert backfilled[0] == 201, backfilled
    await run_hour(team, export, hour, 2)
    exported = [json.loads(line)["event"] for file in sorted((team.files / "once").iterdir())
                for line in file.read_text().splitlines()]  # fmt: skip
    assert sorted(exported) == ["late", "on-time"]
