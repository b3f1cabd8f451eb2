"""Backfills from the earliest data and up to now (`start_at`/`end_at: null`), and their estimates (`dry_run`)."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from tests.support.helpers import another_gateway, create_export, eventually
from tests.support.stack import API_KEY, Project

BACKFILL_DONE = ("Completed", "Failed", "Cancelled")


def whole_hour(hours_ago: int) -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_ago)


async def insert(project: Project, at: list[datetime], event: str = "$pageview") -> None:
    """Events as an earlier ingestion left them, named `event`, with a `$session_id` each."""
    rows = [(uuid.uuid4(), project.id, event, f"user-{i}", {"$session_id": f"s{i % 2}"}, t)
            for i, t in enumerate(at)]  # fmt: skip
    await project.stack.pool.executemany(
        """
        INSERT INTO events (uuid, team_id, event, distinct_id, properties, timestamp, created_at, inserted_at)
        VALUES ($1, $2, $3, $4, $5::jsonb, $6, $6, $6)
        """,
        rows,
    )


async def file_export(project: Project, **fields: Any) -> dict[str, Any]:
    path = f"ranges-{uuid.uuid4().hex[:8]}"
    destination = {"type": "File", "config": {"path": path, **fields.pop("config", {})}}
    return await create_export(project, {"name": path, "interval": "hour", "destination": destination, **fields})


async def backfill(project: Project, export: dict[str, Any], body: dict[str, Any], query: str = "") -> tuple[int, Any]:
    return await project.request("POST", f"batch_exports/{export['id']}/backfills/{query}", json=body)


async def finished(project: Project, export: dict[str, Any], backfill_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        _, body = await project.request("GET", f"batch_exports/{export['id']}/backfills/{backfill_id}/")
        return body if body["status"] in BACKFILL_DONE else None  # type: ignore[no-any-return]

    return await eventually(done, within=60)


async def test_a_null_start_begins_at_the_first_interval_holding_the_exports_data(project: Project) -> None:
    await insert(project, [whole_hour(6) + timedelta(minutes=5)], event="ignored")  # before: not selected
    await insert(project, [whole_hour(5) + timedelta(minutes=20, seconds=s) for s in range(3)])
    await insert(project, [whole_hour(3) + timedelta(minutes=40, seconds=s) for s in range(2)])
    export = await file_export(project, config={"exclude_events": ["ignored"]})

    status, body = await backfill(project, export, {"start_at": None, "end_at": whole_hour(1).isoformat()})
    assert status == 201, body
    assert datetime.fromisoformat(body["start_at"]) == whole_hour(5)  # the hour of its first selected event
    assert datetime.fromisoformat(body["end_at"]) == whole_hour(1)
    assert body["start_from_data"] is True
    done = await finished(project, export, body["backfill_id"])
    assert done["status"] == "Completed", done
    assert done["progress"]["total_runs"] == 4 and done["total_records_count"] == 5


async def test_a_null_end_runs_up_to_the_last_whole_interval(project: Project) -> None:
    await insert(project, [whole_hour(2) + timedelta(minutes=1)])
    export = await file_export(project)
    before = datetime.now(UTC)
    status, body = await backfill(project, export, {"start_at": whole_hour(3).isoformat(), "end_at": None})
    assert status == 201, body
    # The last boundary at the request (the hour may have turned between the two readings of the clock).
    assert datetime.fromisoformat(body["end_at"]) in (whole_hour(0), before.replace(minute=0, second=0, microsecond=0))
    assert body["start_from_data"] is False
    done = await finished(project, export, body["backfill_id"])
    expected_runs = (datetime.fromisoformat(body["end_at"]) - whole_hour(3)) // timedelta(hours=1)
    assert (done["status"], done["progress"]["total_runs"]) == ("Completed", expected_runs), done


async def test_open_ends_are_refused_when_nothing_or_too_much_lies_in_them(project: Project) -> None:
    export = await file_export(project)
    status, error = await backfill(project, export, {"start_at": None, "end_at": None})
    assert (status, error["attr"]) == (400, "start_at"), error
    assert "no data" in error["detail"]
    status, error = await backfill(project, export, {"end_at": None})
    assert (status, error["attr"]) == (400, "start_at"), error  # a missing start is not a null one

    await insert(project, [whole_hour(10)])
    async with (
        another_gateway(project.stack, max_backfill_intervals=5) as gateway,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http,
    ):
        url = f"{gateway}/api/projects/{project.id}/batch_exports/{export['id']}/backfills/"
        for query in ("", "?dry_run=true"):  # the limit holds for the range the nulls resolve to, estimate or not
            async with http.post(url + query, json={"start_at": None, "end_at": None}) as response:
                error = await response.json()
            assert (response.status, error["attr"]) == (400, "start_at"), error
            assert "BATCH_EXPORTS_MAX_BACKFILL_INTERVALS" in error["detail"]
    assert await project.stack.pool.fetchval(
        "SELECT count(*) FROM batch_export_backfills WHERE batch_export_id = $1", uuid.UUID(export["id"])
    ) == 0  # fmt: skip


async def test_a_dry_run_counts_per_interval_and_day_and_starts_nothing(project: Project) -> None:
    day = (datetime.now(UTC) - timedelta(days=3)).replace(hour=23, minute=0, second=0, microsecond=0)
    await insert(project, [day + timedelta(minutes=10, seconds=s) for s in range(3)])
    await insert(project, [day + timedelta(hours=2, minutes=10, seconds=s) for s in range(4)])
    await insert(project, [day + timedelta(hours=2, minutes=30)], event="ignored")
    export = await file_export(project, config={"exclude_events": ["ignored"]})
    end = day + timedelta(hours=5)

    status, estimate = await backfill(project, export, {"start_at": None, "end_at": end.isoformat()}, "?dry_run=true")
    assert status == 200, estimate
    assert datetime.fromisoformat(estimate["start_at"]) == day  # what a real backfill would choose
    assert (estimate["intervals"], estimate["intervals_with_data"], estimate["records"]) == (5, 2, 7)
    assert [(d["day"], d["records"]) for d in estimate["days"]] == [
        (day.date().isoformat(), 3), ((day + timedelta(days=1)).date().isoformat(), 4)
    ]  # fmt: skip
    assert all(d["bytes"] > 0 for d in estimate["days"])
    assert estimate["bytes"] == sum(d["bytes"] for d in estimate["days"])
    assert estimate["estimated_seconds"] is None  # no run to time it by yet
    status, page = await project.request("GET", f"batch_exports/{export['id']}/backfills/")
    assert (status, page["results"]) == (200, [])
    status, runs = await project.request("GET", f"batch_exports/{export['id']}/runs/")
    assert (status, runs["results"]) == (200, [])

    # Once runs have exported, bytes per record and time come from them.
    status, started = await backfill(project, export, {"start_at": None, "end_at": end.isoformat()})
    assert status == 201, started
    assert (await finished(project, export, started["backfill_id"]))["status"] == "Completed"
    written = await project.stack.pool.fetchrow(
        "SELECT sum(bytes_exported) AS b, sum(records_completed) AS r FROM batch_export_runs "
        "WHERE batch_export_id = $1",
        uuid.UUID(export["id"]),
    )
    status, again = await backfill(project, export, {"start_at": None, "end_at": end.isoformat()}, "?dry_run=true")
    assert status == 200, again
    per_record = written["b"] / written["r"]
    assert [d["bytes"] for d in again["days"]] == [round(3 * per_record), round(4 * per_record)]
    assert isinstance(again["estimated_seconds"], float) and again["estimated_seconds"] >= 0


async def test_a_daily_estimate_follows_the_exports_local_days(project: Project) -> None:
    # New York midnight is 05:00 UTC in winter, 04:00 in summer: the two events fall on two local days.
    base = datetime(2025, 1, 14, 4, 30, tzinfo=UTC)  # 23:30 on the 13th in New York
    await insert(project, [base, base + timedelta(hours=1)])
    export = await file_export(project, interval="day", timezone="America/New_York")
    status, estimate = await backfill(
        project, export, {"start_at": "2025-01-10", "end_at": "2025-01-20"}, "?dry_run=true"
    )
    assert status == 200, estimate
    assert (estimate["intervals"], estimate["intervals_with_data"], estimate["records"]) == (10, 2, 2)
    assert [(d["day"], d["records"]) for d in estimate["days"]] == [("2025-01-13", 1), ("2025-01-14", 1)]
    status, estimate = await backfill(project, export, {"start_at": None, "end_at": "2025-01-20"}, "?dry_run=true")
    assert datetime.fromisoformat(estimate["start_at"]) == datetime(2025, 1, 13, 5, tzinfo=UTC), estimate


async def test_unpause_dry_run_estimates_the_paused_gap_and_changes_nothing(project: Project) -> None:
    await insert(project, [whole_hour(4) + timedelta(minutes=3)])
    export = await file_export(project)
    await project.stack.pool.execute(  # paused five hours ago: five intervals were skipped
        "UPDATE batch_exports SET covered_until = $2 WHERE id = $1", uuid.UUID(export["id"]), whole_hour(5)
    )
    path = f"batch_exports/{export['id']}/unpause/"
    status, estimate = await project.request("POST", path + "?dry_run=true", json={"backfill": True})
    assert status == 200, estimate
    assert datetime.fromisoformat(estimate["start_at"]) == whole_hour(5)
    assert (estimate["intervals_with_data"], estimate["records"]) == (1, 1)
    assert estimate["intervals"] == (datetime.fromisoformat(estimate["end_at"]) - whole_hour(5)) // timedelta(hours=1)
    status, seen = await project.request("GET", f"batch_exports/{export['id']}/")
    assert (status, seen["paused"]) == (200, True)
    # An interval of the gap that has a run already is not run again: not counted either.
    status, started = await backfill(project, export, {"start_at": whole_hour(4).isoformat(),
                                                       "end_at": whole_hour(3).isoformat()})  # fmt: skip
    assert status == 201, started
    assert (await finished(project, export, started["backfill_id"]))["status"] == "Completed"
    status, again = await project.request("POST", path + "?dry_run=true", json={"backfill": True})
    assert (status, again["intervals"], again["intervals_with_data"], again["records"]) == (
        200, estimate["intervals"] - 1, 0, 0), again  # fmt: skip
    status, error = await project.request("POST", path + "?dry_run=true", json={})
    assert (status, error["attr"]) == (400, "dry_run"), error
    status, error = await backfill(project, export, {"start_at": None, "end_at": None}, "?dry_run=maybe")
    assert (status, error["attr"]) == (400, "dry_run"), error
    status, page = await project.request("GET", f"batch_exports/{export['id']}/backfills/")
    assert (status, [b["id"] for b in page["results"]]) == (200, [started["backfill_id"]])  # no dry run started one


async def test_estimates_follow_property_filters_and_moved_events(project: Project) -> None:
    hour = whole_hour(30)
    await insert(project, [hour + timedelta(minutes=1, seconds=s) for s in range(5)])  # sessions s0 s1 s0 s1 s0
    session = {"type": "event", "key": "$session_id", "value": "s0", "operator": "exact"}
    filtered, plain = await file_export(project, filters=[session]), await file_export(project)
    body = {"start_at": hour.isoformat(), "end_at": (hour + timedelta(hours=3)).isoformat()}
    status, estimate = await backfill(project, filtered, body, "?dry_run=true")
    assert (status, estimate["records"], estimate["intervals_with_data"]) == (200, 3, 1), estimate
    # Events whose ingestion time changes (a re-import) are counted where they are now.
    await project.stack.pool.execute(
        "UPDATE events SET inserted_at = inserted_at + interval '2 hours' "
        "WHERE team_id = $1 AND distinct_id = 'user-0'",
        project.id,
    )
    status, estimate = await backfill(project, plain, body, "?dry_run=true")
    assert (status, estimate["records"], estimate["intervals_with_data"]) == (200, 5, 2), estimate
    assert sum(d["records"] for d in estimate["days"]) == 5
