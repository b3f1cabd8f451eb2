"""What PostHog's own batch-export API tests assert, asked of this API the way a PostHog client asks it."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.helpers import create_export, export_now, insert_events, later_boundary, runs_until, start_run
from tests.support.stack import Project

NOOP = {"type": "NoOp", "config": {}}


async def test_every_route_answers_with_and_without_its_trailing_slash(project: Project) -> None:
    status, created = await project.request(
        "POST", "batch_exports", json={"name": "slash", "interval": "hour", "destination": NOOP, "paused": True}
    )
    assert status == 201, created
    export = created["id"]
    for path in (
        "batch_exports", f"batch_exports/{export}", f"batch_exports/{export}/runs", f"batch_exports/{export}/logs",
        f"batch_exports/{export}/backfills", "batch_exports/test?destination=S3",
    ):  # fmt: skip
        for variant in (path, path.replace("?", "/?") if "?" in path else path + "/"):
            status, body = await project.request("GET", variant)
            assert status == 200, (variant, body)
    status, body = await project.request("POST", f"batch_exports/{export}/pause")
    assert (status, body) == (200, {"paused": True})
    status, _ = await project.request("POST", "/batch", key=None, json={"api_key": project.token, "batch": []})
    assert status == 200


async def test_daily_and_weekly_exports_report_their_offsets_as_posthog_does(project: Project) -> None:
    def body(interval: str, **fields: Any) -> dict[str, Any]:
        return {"name": interval, "interval": interval, "destination": NOOP, "paused": True, **fields}

    _, day = await project.request("POST", "batch_exports/", json=body("day", timezone="US/Pacific"))
    _, week = await project.request("POST", "batch_exports/", json=body("week", timezone="Europe/London"))
    _, hour = await project.request("POST", "batch_exports/", json=body("hour", timezone="Europe/Berlin"))
    assert (day["offset_day"], day["offset_hour"]) == (None, 0)  # midnight: accepted, whatever the DST nights
    assert (week["offset_day"], week["offset_hour"]) == (0, 0)
    assert (hour["offset_day"], hour["offset_hour"], hour["timezone"]) == (None, None, "Europe/Berlin")

    status, berlin = await project.request(
        "POST", "batch_exports/", json=body("day", timezone="Europe/Berlin", offset_hour=1)
    )
    assert status == 201, berlin
    status, patched = await project.request("PATCH", f"batch_exports/{berlin['id']}/", json={"interval": "hour"})
    assert status == 200, patched
    assert (patched["interval"], patched["timezone"], patched["offset_day"], patched["offset_hour"]) == (
        "hour", "Europe/Berlin", None, None,
    )  # fmt: skip
    status, patched = await project.request("PATCH", f"batch_exports/{berlin['id']}/", json={"timezone": None})
    assert (status, patched["timezone"]) == (200, "UTC"), patched
    status, error = await project.request(
        "PATCH", f"batch_exports/{berlin['id']}/", json={"interval": "week", "offset_day": 7}
    )
    assert (status, error["attr"]) == (400, "offset_day"), error


async def test_put_is_a_full_update_and_times_without_an_offset_are_utc(project: Project) -> None:
    export = await create_export(project, {"name": "put", "interval": "hour", "destination": NOOP})
    status, error = await project.request(
        "PUT", f"batch_exports/{export['id']}/", json={"name": "renamed", "interval": "hour"}
    )
    assert (status, error["attr"], error["code"]) == (400, "destination", "required"), error
    _, unchanged = await project.request("GET", f"batch_exports/{export['id']}/")
    assert unchanged["name"] == "put"
    status, put = await project.request(
        "PUT",
        f"batch_exports/{export['id']}/",
        json={"name": "renamed", "interval": "day", "destination": NOOP, "start_at": "2022-07-19 00:00:00"},
    )
    assert status == 200, put
    assert (put["name"], put["offset_hour"], put["start_at"]) == ("renamed", 0, "2022-07-19T00:00:00Z")


async def test_pausing_twice_or_unpausing_a_live_export_changes_nothing(project: Project) -> None:
    export = await create_export(project, {"name": "idem", "interval": "hour", "destination": NOOP, "paused": False})
    status, _ = await project.request("POST", f"batch_exports/{export['id']}/pause/")
    _, paused = await project.request("GET", f"batch_exports/{export['id']}/")
    status, body = await project.request("POST", f"batch_exports/{export['id']}/pause/")
    assert (status, body) == (200, {"paused": True})
    _, again = await project.request("GET", f"batch_exports/{export['id']}/")
    assert (again["last_updated_at"], again["last_paused_at"]) == (paused["last_updated_at"], paused["last_paused_at"])
    status, _ = await project.request("POST", f"batch_exports/{export['id']}/unpause/")
    _, live = await project.request("GET", f"batch_exports/{export['id']}/")
    status, body = await project.request("POST", f"batch_exports/{export['id']}/unpause/")
    assert (status, body) == (200, {"paused": False})
    _, still = await project.request("GET", f"batch_exports/{export['id']}/")
    assert still["last_updated_at"] == live["last_updated_at"]


async def test_backfills_carry_their_team_and_list_in_the_ordering_asked(project: Project) -> None:
    export = await create_export(project, {"name": "order", "interval": "hour", "destination": NOOP})
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for hours_ago in (5, 9, 7):  # created in this order, their ranges in another
        start = now - timedelta(hours=hours_ago)
        status, body = await project.request(
            "POST",
            f"batch_exports/{export['id']}/backfills/",
            json={"start_at": start.isoformat(), "end_at": (start + timedelta(hours=1)).isoformat()},
        )
        assert status == 201, body
    for ordering, expected in (("start_at", [9, 7, 5]), ("-start_at", [5, 7, 9]), ("created_at", [5, 9, 7]),
                               ("-created_at", [7, 9, 5]), ("nonsense", [7, 9, 5])):  # fmt: skip
        _, page = await project.request(
            "GET", f"batch_exports/{export['id']}/backfills/", params={"ordering": ordering}
        )
        starts = [int((now - datetime.fromisoformat(b["start_at"])).total_seconds() // 3600) for b in page["results"]]
        assert starts == expected, (ordering, starts)
        assert {b["team"] for b in page["results"]} == {project.id}


async def test_a_cancelled_run_reads_cancelled_as_soon_as_the_cancel_answers(project: Project) -> None:
    export = await create_export(project, {"name": "cancel", "interval": "hour", "destination": NOOP})
    await start_run(project.stack, export, end=later_boundary())
    (run,) = await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Starting"])
    status, body = await project.request("POST", f"batch_exports/{export['id']}/runs/{run['id']}/cancel/")
    assert (status, body) == (200, {"cancelled": True})
    _, read = await project.request("GET", f"batch_exports/{export['id']}/runs/{run['id']}/")
    assert read["status"] == "Cancelled"
    status, error = await project.request("POST", f"batch_exports/{export['id']}/runs/{run['id']}/cancel/")
    assert (status, error["detail"]) == (400, "Cannot cancel a run that is in 'Cancelled' status")


async def test_runs_take_relative_times_and_interval_ordering_shows_the_last_seven_days(project: Project) -> None:
    export = await create_export(project, {"name": "relative", "interval": "hour", "destination": NOOP})
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for days_ago in (1, 10):  # an old interval and a recent one, both run now
        end = now - timedelta(days=days_ago)
        await start_run(project.stack, export, start=end - timedelta(hours=1), end=end)
    await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Completed"] * 2)

    async def interval_starts(**params: str) -> list[str]:
        status, page = await project.request("GET", f"batch_exports/{export['id']}/runs/", params=params)
        assert status == 200, page
        return [run["data_interval_start"][:10] for run in page["results"]]

    recent, old = (f"{now - timedelta(days=d, hours=1):%Y-%m-%d}" for d in (1, 10))
    assert await interval_starts(ordering="data_interval_start") == [recent]  # PostHog's default: 7 days
    assert await interval_starts(ordering="data_interval_start", start="-30d") == [old, recent]
    assert await interval_starts(ordering="-data_interval_start", start="-30d", end="-2d") == [old]
    assert sorted(await interval_starts(after="-1h")) == sorted([old, recent])  # created just now
    assert await interval_starts(before="-1h") == []
    status, page = await project.request("GET", f"batch_exports/{export['id']}/runs/", params={"after": "soon"})
    assert (status, page["attr"]) == (400, "after")


async def test_checks_logs_and_queries_answer_as_posthog_does(project: Project) -> None:
    status, _ = await project.request("GET", "batch_exports/test/", params={"destination": "Carrier pigeon"})
    assert status == 404
    body = {"name": "q", "interval": "hour", "destination": NOOP, "hogql_query": "SELECT event,, FROM events"}
    status, error = await project.request("POST", "batch_exports/", json=body)
    assert (status, error["detail"], error["attr"]) == (400, "Failed to parse query", "hogql_query"), error

    export = await create_export(project, {"name": "logs", "interval": "hour", "destination": NOOP})
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    await insert_events(project.stack, project.id, [end - timedelta(minutes=10)])
    for hours_ago in (0, 1):
        at = end - timedelta(hours=hours_ago)
        await start_run(project.stack, export, start=at - timedelta(hours=1), end=at)
    found = await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Completed"] * 2)
    instance = found[0]["workflow_run_id"]
    status, logs = await project.request("GET", f"batch_exports/{export['id']}/logs/", params={"instance_id": instance})
    assert status == 200 and logs["results"] and {e["instance_id"] for e in logs["results"]} == {instance}
    for limit in ("0", "501"):
        status, error = await project.request("GET", f"batch_exports/{export['id']}/logs/", params={"limit": limit})
        assert (status, error["attr"]) == (400, "limit")
    status, logs = await project.request("GET", f"batch_exports/{export['id']}/logs/", params={"limit": "500"})
    assert status == 200
    assert uuid.UUID(logs["results"][0]["log_source_id"]) == uuid.UUID(export["id"])


async def test_event_files_have_posthogs_columns_in_its_order_with_json_nested(project: Project) -> None:
    """S3's columns (`s3_default_fields`), which this service writes to every file destination: the person's
    and the event's properties as objects in JSON Lines, not as text holding JSON."""
    status, _ = await project.request(
        "POST", "/batch", key=None,
        json={"api_key": project.token, "batch": [{"event": "signup", "distinct_id": "ada",
                                                   "properties": {"plan": {"tier": "pro"}, "$set": {"a": 1}}}]},
    )  # fmt: skip
    assert status == 200
    (row,) = await export_now(project, f"columns-{project.id}")
    assert list(row) == ["uuid", "timestamp", "_inserted_at", "created_at", "event", "properties", "distinct_id",
                         "elements_chain", "person_properties", "person_id"]  # fmt: skip
    assert row["properties"]["plan"] == {"tier": "pro"} and row["person_properties"] == {"a": 1}
