"""The Postgres destination: each record of an interval exactly once, however often it is written."""

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from tests.support.destinations import postgres_database
from tests.support.helpers import capture, create_export, event, run_hour
from tests.support.stack import Project


async def test_exactly_once_across_reruns_and_segments(project: Project) -> None:
    config, dsn = await postgres_database(project)
    export = await create_export(
        project, {"name": "pg", "interval": "hour", "destination": {"type": "Postgres", "config": config}}
    )
    shown = export["destination"]["config"]
    assert "password" not in shown and "user" not in shown and shown["table_name"] == "events"  # write-only

    await capture(project, [event("e", f"user-{i}", n=i) for i in range(250)])  # 250 > the limit of 100 in tests
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    found = await run_hour(project, export, end, 3)
    assert [r["status"] for r in found] == ["ContinuedAsNew", "ContinuedAsNew", "Completed"]
    found = await run_hour(project, export, end, 6)  # the same interval again: it replaces, never adds
    assert found[-1]["status"] == "Completed"

    conn = await asyncpg.connect(dsn)
    try:
        stored = await conn.fetch("SELECT uuid, properties::text AS properties FROM events")
    finally:
        await conn.close()
    sent = {r["uuid"] for r in await project.stack.pool.fetch("SELECT uuid FROM events WHERE team_id = $1", project.id)}
    assert len(stored) == 250 and {r["uuid"] for r in stored} == sent
    assert '"n":' in stored[0]["properties"].replace(" ", "")

    # PATCH merges: a new table name keeps the stored credentials.
    status, patched = await project.request(
        "PATCH", f"batch_exports/{export['id']}/", json={"destination": {"config": {"table_name": "events_v2"}}}
    )
    assert status == 200 and patched["destination"]["config"]["table_name"] == "events_v2"
    status, check = await project.request("POST", f"batch_exports/{export['id']}/run_test_step/", json={"step": 1})
    assert (status, check["result"]["status"]) == (200, "Passed"), check


async def test_a_missing_database_fails_at_once(project: Project) -> None:
    config, _ = await postgres_database(project)
    config = {**config, "database": f"missing_{uuid.uuid4().hex}"}
    export = await create_export(
        project, {"name": "pg", "interval": "hour", "destination": {"type": "Postgres", "config": config}}
    )
    status, check = await project.request("POST", f"batch_exports/{export['id']}/run_test_step/", json={"step": 0})
    assert status == 200 and check["result"]["status"] == "Failed" and "does not exist" in check["result"]["message"]
    (run,) = await run_hour(project, export, datetime.now(UTC).replace(minute=0, second=0, microsecond=0), 1)
    assert run["status"] == "Failed" and "cannot connect to PostgreSQL" in run["latest_error"]
    assert config["password"] not in run["latest_error"] and config["user"] not in run["latest_error"]


async def test_every_value_arrives_as_it_was(project: Project) -> None:
    """Quotes, commas, line breaks, backslashes, unicode, empty strings and nulls survive COPY as they were."""
    config, dsn = await postgres_database(project)
    export = await create_export(
        project, {"name": "pg", "interval": "hour", "destination": {"type": "Postgres", "config": config}}
    )
    awkward = 'say "hi", then\na new line, a \\ backslash,\ta tab, ünïcode ✓ 𝄞 and \\N'
    at = datetime.now(UTC) - timedelta(minutes=5)
    await project.stack.pool.executemany(
        "INSERT INTO events (uuid, team_id, event, distinct_id, properties, person_id, person_properties, timestamp,"
        " created_at, elements_chain, inserted_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $8)",
        [
            (uuid.uuid4(), project.id, awkward, awkward, {"q": awkward, "n": None, "f": 0.1 + 0.2, "deep": {"a": [1]}},
             None, {}, at, ""),
            (uuid.uuid4(), project.id, "", '"', {}, uuid.uuid4(), {"email": "a,b@example.com"}, at, '"'),
            (uuid.uuid4(), project.id, "NULL", "", {"": ""}, None, {"x": None}, at, "\\N"),
        ],
    )  # fmt: skip
    (run,) = await run_hour(project, export, datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1), 1)
    assert (run["status"], run["records_completed"]) == ("Completed", 3), run

    columns = (  # JSON as jsonb's own text on both sides
        "uuid, event, properties::text, distinct_id, person_id, person_properties::text, timestamp, created_at,"
        " elements_chain"
    )
    sent = await project.stack.pool.fetch(
        f"SELECT {columns}, inserted_at AS _inserted_at FROM events WHERE team_id = $1", project.id
    )
    conn = await asyncpg.connect(dsn)
    try:
        stored = await conn.fetch(f"SELECT {columns}, _inserted_at FROM events")
    finally:
        await conn.close()
    assert sorted(map(tuple, stored)) == sorted(map(tuple, sent))
