"""The events, persons and sessions models, and event-name selection, exported for real."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.helpers import capture, create_export, event, export_now, runs_until, start_run
from tests.support.stack import Project


async def test_include_and_exclude_events(project: Project) -> None:
    await capture(project, [event("signup", "a"), event("$pageview", "a"), event("$pageview", "b"), event("x", "c")])
    included = await export_now(project, f"include-{project.id}", config={"include_events": ["signup", "x"]})
    assert sorted(row["event"] for row in included) == ["signup", "x"]
    excluded = await export_now(project, f"exclude-{project.id}", config={"exclude_events": ["$pageview"]})
    assert sorted(row["event"] for row in excluded) == ["signup", "x"]


async def test_persons_model_exports_changed_persons_with_latest_properties(project: Project) -> None:
    await capture(
        project,
        [
            {**event("signup", "ada"), "$set": {"plan": "free", "email": "ada@example.com"}},
            {**event("upgrade", "ada"), "$set": {"plan": "pro"}, "$set_once": {"email": "other@example.com"}},
            event("$pageview", "grace"),
        ],
    )
    rows = await export_now(project, f"persons-{project.id}", model="persons")
    by_id = {row["distinct_id"]: row for row in rows}
    assert set(by_id) == {"ada", "grace"}
    assert by_id["ada"]["properties"] == {"plan": "pro", "email": "ada@example.com"}
    assert by_id["ada"]["person_version"] == 1 and by_id["grace"]["properties"] == {}
    assert set(rows[0]) == {"team_id", "distinct_id", "person_id", "properties", "person_version",
                            "person_distinct_id_version", "created_at", "is_deleted", "_inserted_at"}  # fmt: skip


async def test_sessions_model_summarises_each_session(project: Project) -> None:
    def in_session(name: str, session: str, url: str | None, ts: str) -> dict[str, Any]:
        properties: dict[str, Any] = {"$session_id": session, **({"$current_url": url} if url else {})}
        return {**event(name, f"user-{session}", **properties), "timestamp": ts}

    await capture(
        project,
        [
            in_session("$pageview", "s1", "https://example.com/", "2026-01-01T10:00:00Z"),
            in_session("click", "s1", None, "2026-01-01T10:01:00Z"),
            in_session("$pageview", "s1", "https://example.com/pricing", "2026-01-01T10:05:00Z"),
            in_session("$pageview", "s2", "https://example.com/docs", "2026-01-01T11:00:00Z"),
            event("no session", "someone"),
        ],
    )
    rows = await export_now(project, f"sessions-{project.id}", model="sessions")
    by_id = {row["session_id"]: row for row in rows}
    assert set(by_id) == {"s1", "s2"}
    s1 = by_id["s1"]
    assert (s1["entry_url"], s1["exit_url"]) == ("https://example.com/", "https://example.com/pricing")
    assert (s1["pageview_count"], s1["event_count"], s1["duration_seconds"]) == (2, 3, 300.0)
    assert s1["distinct_id"] == "user-s1" and s1["start_timestamp"].startswith("2026-01-01T10:00:00")


async def test_persons_and_sessions_resume_from_their_cursor(project: Project) -> None:
    """Past the record limit (100 in tests) each model continues as new without skipping or repeating."""
    await capture(project, [event("$pageview", f"user-{i}", **{"$session_id": f"s-{i:03d}"}) for i in range(150)])
    for model, key in (("persons", "distinct_id"), ("sessions", "session_id")):
        path = f"{model}-cursor-{project.id}"
        body = {
            "name": path,
            "model": model,
            "interval": "hour",
            "destination": {"type": "File", "config": {"path": path}},
        }
        export = await create_export(project, body)
        end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        await start_run(project.stack, export, start=end - timedelta(hours=1), end=end)
        found = await runs_until(
            project, export["id"], lambda rs: [r["status"] for r in rs] == ["ContinuedAsNew", "Completed"]
        )
        assert [r["records_completed"] for r in found] == [100, 50]
        files = sorted((project.files / path).iterdir())
        keys = [json.loads(line)[key] for f in files for line in f.read_text().splitlines()]
        assert len(keys) == len(set(keys)) == 150, model
