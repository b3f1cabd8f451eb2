"""The Postgres destination: each record of an interval exactly once, however often it is written."""

import asyncio
import functools
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from connectors.destinations.base import WriteRequest
from connectors.destinations.warehouses.postgres import PostgresConfig, PostgresWriter
from tests.support.destinations import person_batch, postgres_database
from tests.support.helpers import capture, create_export, event, eventually, run_hour
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
        stored = await conn.fetch("SELECT uuid::uuid, properties::text AS properties FROM events")  # text, as PostHog's
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

    # PostHog's columns for PostgreSQL (the rest of an event is not in them); JSON as jsonb's own text on both sides
    columns = "uuid::text, event, properties::text, distinct_id, timestamp"
    sent = await project.stack.pool.fetch(
        f"SELECT {columns}, to_jsonb(elements_chain)::text AS elements FROM events WHERE team_id = $1", project.id
    )
    conn = await asyncpg.connect(dsn)
    try:
        stored = await conn.fetch(f"SELECT {columns}, elements::text FROM events")
    finally:
        await conn.close()
    assert sorted(map(tuple, stored)) == sorted(map(tuple, sent))


POSTHOG_POSTGRES_COLUMNS = [
    ("uuid", "text"), ("event", "text"), ("properties", "jsonb"), ("elements", "jsonb"), ("set", "jsonb"),
    ("set_once", "jsonb"), ("distinct_id", "text"), ("team_id", "bigint"), ("ip", "text"), ("site_url", "text"),
    ("timestamp", "timestamp with time zone"),
]  # fmt: skip
"""PostHog's PostgreSQL export table (`postgres_batch_export.py`): its columns, in its order."""


async def test_events_have_posthogs_postgres_columns(project: Project) -> None:
    """`ip` from `$ip`, `elements` the chain as a JSON string, `set`/`set_once` the person updates, `site_url`
    empty, `team_id` the project: the columns PostHog's PostgreSQL export writes, and no others."""
    config, dsn = await postgres_database(project)
    export = await create_export(
        project, {"name": "pg", "interval": "hour", "destination": {"type": "Postgres", "config": config}}
    )
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    clicked, plain = uuid.uuid4(), uuid.uuid4()
    await project.stack.pool.executemany(
        "INSERT INTO events (uuid, team_id, event, distinct_id, properties, timestamp, created_at, elements_chain,"
        " inserted_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $6)",
        [
            (clicked, project.id, "$autocapture", "ada",
             {"$ip": "203.0.113.9", "$set": {"plan": "pro"}, "$set_once": {"first": "x"}},
             at, 'button.cta:attr__class="cta"nth-child="1"nth-of-type="1"text="Buy"'),
            (plain, project.id, "signup", "grace", {"$ip": ""}, at, ""),
        ],
    )  # fmt: skip
    (run,) = await run_hour(project, export, datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1), 1)
    assert (run["status"], run["records_completed"]) == ("Completed", 2), run

    conn = await asyncpg.connect(dsn)
    try:
        table = await conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'events'"
            " ORDER BY ordinal_position"
        )
        rows = {r["uuid"]: dict(r) for r in await conn.fetch("SELECT * FROM events")}
    finally:
        await conn.close()
    assert [(r["column_name"], r["data_type"]) for r in table] == POSTHOG_POSTGRES_COLUMNS
    assert rows[str(clicked)] == {
        "uuid": str(clicked), "event": "$autocapture",
        "properties": '{"$ip": "203.0.113.9", "$set": {"plan": "pro"}, "$set_once": {"first": "x"}}',
        "elements": '"button.cta:attr__class=\\"cta\\"nth-child=\\"1\\"nth-of-type=\\"1\\"text=\\"Buy\\""',
        "set": '{"plan": "pro"}', "set_once": '{"first": "x"}', "distinct_id": "ada", "team_id": project.id,
        "ip": "203.0.113.9", "site_url": "", "timestamp": at,
    }  # fmt: skip
    assert rows[str(plain)] == {
        "uuid": str(plain), "event": "signup", "properties": '{"$ip": ""}', "elements": '""', "set": None,
        "set_once": None, "distinct_id": "grace", "team_id": project.id, "ip": None, "site_url": "", "timestamp": at,
    }  # fmt: skip


async def test_sessions_arrive_with_their_48_columns_and_urls_as_a_json_array(project: Project) -> None:
    config, dsn = await postgres_database(project)
    config = {**config, "table_name": "sessions"}
    export = await create_export(
        project,
        {"name": "pg", "model": "sessions", "interval": "hour", "destination": {"type": "Postgres", "config": config}},
    )
    session = "0193a1b2-c3d4-7e5f-8a6b-00000000000a"
    await capture(
        project,
        [
            event("$pageview", "ada", **{"$session_id": session, "$current_url": "https://example.com/a"}),
            event("$pageview", "ada", **{"$session_id": session, "$current_url": "https://example.com/b"}),
        ],
    )
    (run,) = await run_hour(project, export, datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1), 1)
    assert (run["status"], run["records_completed"]) == ("Completed", 1), run
    conn = await asyncpg.connect(dsn)
    try:
        (row,) = await conn.fetch("SELECT *, urls::text AS urls_text FROM sessions")
    finally:
        await conn.close()
    assert len(row) == 48 + 1 and row["session_id"] == session and row["pageview_count"] == 2
    assert sorted(json.loads(row["urls_text"])) == ["https://example.com/a", "https://example.com/b"]


async def test_two_projects_sessions_of_one_id_keep_a_row_each(project: Project) -> None:
    """A session id is a client's, unique within a team only: PostHog keys sessions by `(team_id, session_id)` in
    every warehouse, so two projects exporting a session of the same id into one table keep a row each."""
    other = await project.stack.new_project()
    config, dsn = await postgres_database(project)
    body = {"name": "pg", "model": "sessions", "interval": "hour",
            "destination": {"type": "Postgres", "config": {**config, "table_name": "sessions"}}}  # fmt: skip
    session = "0193a1b2-c3d4-7e5f-8a6b-00000000000c"
    for each in (project, other):
        await capture(each, [event("$pageview", "ada", **{"$session_id": session})])
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    for each in (project, other):
        (run,) = await run_hour(each, await create_export(each, body), end, 1)
        assert (run["status"], run["records_completed"]) == ("Completed", 1), run
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT team_id, session_id FROM sessions ORDER BY team_id")
    finally:
        await conn.close()
    assert [tuple(row) for row in rows] == [(project.id, session), (other.id, session)]


async def test_runs_that_create_the_table_at_once_all_go_on(project: Project) -> None:
    """Backfill runs of a new export start side by side, each creating the table if it is missing: PostgreSQL's
    `CREATE TABLE IF NOT EXISTS` raced (a unique violation in its catalog) and failed all but one attempt."""
    config, _ = await postgres_database(project)
    parsed = PostgresConfig.model_validate({**config, "table_name": "raced"})
    context = project.stack.runtime.destinations.for_project(project.id)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    writers = [PostgresWriter(parsed, WriteRequest(context, "events", False, start, start + timedelta(hours=1),
                                                   run_id=str(uuid.uuid4()), attempt=1)) for _ in range(8)]  # fmt: skip
    try:
        await asyncio.gather(*(writer.open() for writer in writers))
    finally:
        await asyncio.gather(*(writer.close() for writer in writers), return_exceptions=True)


def _persons_writer(project: Project, config: PostgresConfig) -> PostgresWriter:
    end = datetime.now(UTC)
    context = project.stack.runtime.destinations.for_project(project.id)
    request = WriteRequest(context, "persons", False, end - timedelta(hours=1), end, run_id=str(uuid.uuid4()),
                           attempt=1)  # fmt: skip
    return PostgresWriter(config, request)


async def _apply_person(project: Project, config: PostgresConfig, version: int) -> None:
    """One run's apply of Ada's person at `version`."""
    writer = _persons_writer(project, config)
    try:
        await writer.write(person_batch(version))
        await writer.commit()
    finally:
        await writer.close()


async def test_a_person_row_is_replaced_only_by_a_newer_version(project: Project) -> None:
    """As PostHog's PostgreSQL export: a persons row is updated only when the staged version is newer (a rerun
    of an old interval, or a backfill's intervals applied out of order, never takes a person back in time)."""
    config, dsn = await postgres_database(project)
    parsed = PostgresConfig.model_validate({**config, "table_name": "persons"})
    for version in (3, 2, 5):
        await _apply_person(project, parsed, version)
    conn = await asyncpg.connect(dsn)
    try:
        held = await conn.fetch("SELECT properties::text, person_version FROM persons")
        assert [(json.loads(row[0]), row[1]) for row in held] == [({"v": 5}, 5)]
        await conn.execute("UPDATE persons SET person_version = 99")  # newer than anything staged next
    finally:
        await conn.close()
    await _apply_person(project, parsed, 6)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetch("SELECT person_version FROM persons") == [(99,)]
    finally:
        await conn.close()


async def test_two_applies_of_one_person_at_once_leave_one_row_the_newer(project: Project) -> None:
    """Two runs (two intervals of a backfill) apply the same person at the same moment: in READ COMMITTED each
    apply's DELETE missed the row the other inserted, and the table kept two rows of one key. Applies of a table
    now take turns: one row, the newest."""
    config, dsn = await postgres_database(project)
    parsed = PostgresConfig.model_validate({**config, "table_name": "persons"})
    await _apply_person(project, parsed, 1)
    admin = await asyncpg.connect(dsn)
    try:
        for versions in ((2, 3), (5, 4)):  # the newer one first, then second
            writers = [_persons_writer(project, parsed), _persons_writer(project, parsed)]
            try:
                for each, version in zip(writers, versions, strict=True):
                    await each.write(person_batch(version))
                async with admin.transaction():  # both applies wait for this lock, then go on together
                    await admin.execute("LOCK TABLE persons IN SHARE MODE")
                    applies = [asyncio.create_task(each.commit()) for each in writers]
                    await eventually(functools.partial(_waiting, admin, 2), within=20, every=0.05)
                await asyncio.gather(*applies)
            finally:
                await asyncio.gather(*(each.close() for each in writers))
            held = await admin.fetch("SELECT person_version FROM persons")
            assert held == [(max(versions),)], (versions, held)
    finally:
        await admin.close()


async def _waiting(conn: asyncpg.Connection, count: int) -> bool | None:
    """Whether `count` sessions of this database wait for a lock (the table's, or a turn at applying)."""
    sql = """SELECT count(*) FROM pg_locks
             WHERE NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
    return True if await conn.fetchval(sql) >= count else None
