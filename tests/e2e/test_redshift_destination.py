"""The Redshift destination from the API, on PostgreSQL with Redshift's SUPER and JSON_PARSE: checked, run by the
schedule and by a backfill, read back row for row; a rerun changes nothing; a run whose apply landed applies
nothing again and a dead attempt's stage goes; PostHog's own table gets rows; a missing column is added and a
type conflict is named."""

import asyncio
import dataclasses
import functools
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp
import asyncpg
import pyarrow as pa
import pytest
from temporalio.testing import ActivityEnvironment

from activities.export import Exporter
from connectors.destinations import Context, WriteRequest, parse_config, run_step
from connectors.destinations.warehouses.redshift import MAX_PARAMETERS, RedshiftConfig, RedshiftWriter, column_types
from contracts.workflows import ExportInputs
from entrypoints.embedded import LOOPBACK
from entrypoints.redshift import RedshiftDatabase
from tests.support.destinations import person_batch
from tests.support.helpers import (
    another_gateway,
    capture,
    create_export,
    event,
    eventually,
    export_now,
    insert_events,
    run_hour,
    runs_until,
    started_run,
    trigger_for_last_hour,
)
from tests.support.listeners import listening, loopback_only, resolving
from tests.support.redshift import redshift_database, rows
from tests.support.stack import API_KEY, Project

ROOT = Path(__file__).resolve().parents[2]


def redshift(config: dict[str, Any], model: str = "events") -> dict[str, Any]:
    return {"name": f"redshift {model}", "model": model, "interval": "hour",
            "destination": {"type": "Redshift", "config": config}}  # fmt: skip


def finished(count: int) -> Any:
    return lambda rs: len(rs) == count and all(r["status"] not in ("Starting", "Running") for r in rs)


async def columns(database: RedshiftDatabase, table: str = "events") -> list[tuple[str, str]]:
    found = await rows(
        database,
        "SELECT column_name, COALESCE(domain_name, data_type) AS type, character_maximum_length AS length"
        " FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
        database.config["schema"], table,
    )  # fmt: skip
    return [(r["column_name"], r["type"] + (f"({r['length']})" if r["length"] else "")) for r in found]


async def leftovers(database: RedshiftDatabase) -> list[str]:
    """Stage tables still in the schema."""
    found = await rows(database, "SELECT tablename FROM pg_tables WHERE tablename LIKE 'bx_stage_%'")
    return [r["tablename"] for r in found]


POSTHOG_EVENTS_SUPER = [
    ("uuid", "character varying(200)"), ("event", "character varying(200)"), ("properties", "super"),
    ("elements", "character varying(65535)"), ("set", "super"), ("set_once", "super"),
    ("distinct_id", "character varying(200)"), ("team_id", "integer"), ("ip", "character varying(200)"),
    ("site_url", "character varying(200)"), ("timestamp", "timestamp with time zone"),
]  # fmt: skip
"""PostHog's Redshift events table (`redshift_batch_export.py`) with `properties_data_type: super`."""


async def source_events(project: Project) -> dict[str, dict[str, Any]]:
    """The project's events as PostHog's Redshift export writes them, by uuid (JSON parsed)."""
    found = await project.stack.pool.fetch(
        """SELECT uuid::text AS uuid, event, properties::text AS properties, to_jsonb(elements_chain)::text AS elements,
                  (properties -> '$set')::text AS set, (properties -> '$set_once')::text AS set_once, distinct_id,
                  team_id::int AS team_id, nullif(properties ->> '$ip', '') AS ip, '' AS site_url, timestamp
           FROM events WHERE team_id = $1""",
        project.id,
    )
    parsed = [{k: json.loads(v) if k in ("properties", "set", "set_once") and v else v for k, v in dict(r).items()}
              for r in found]  # fmt: skip
    return {row["uuid"]: row for row in parsed}


async def test_checked_run_by_its_schedule_and_a_backfill_then_read_back_row_for_row(project: Project) -> None:
    database = await redshift_database(project, properties_data_type="super")
    export = await create_export(project, redshift(database.config))
    shown = export["destination"]["config"]
    assert "password" not in shown and "user" not in shown and shown["port"] == database.config["port"]

    status, listed = await project.request("GET", "batch_exports/test/", params={"destination": "Redshift"})
    assert status == 200 and [s["name"] for s in listed["steps"]] == ["Connect", "Table is writable"]
    for step in range(2):
        status, check = await project.request(
            "POST", f"batch_exports/{export['id']}/run_test_step/", json={"step": step}
        )
        assert (status, check["result"]) == (200, {"status": "Passed", "message": None}), (step, check)

    await capture(project, [
        event("$autocapture", f"user-{i}", n=i, **{"$ip": "203.0.113.9", "$set": {"plan": "pro"}, "q": 'a "b"\n\\'})
        for i in range(20)
    ])  # fmt: skip
    hour = await trigger_for_last_hour(project, export)
    (scheduled,) = await runs_until(project, export["id"], finished(1), within=60)
    assert (scheduled["status"], scheduled["records_completed"]) == ("Completed", 20), scheduled

    await insert_events(project.stack, project.id, [hour - timedelta(hours=3, minutes=-i) for i in range(5)]
                        + [hour - timedelta(hours=2, minutes=-i) for i in range(5)])  # fmt: skip
    status, created = await project.request(
        "POST", f"batch_exports/{export['id']}/backfills/",
        json={"start_at": (hour - timedelta(hours=3)).isoformat(), "end_at": (hour - timedelta(hours=1)).isoformat()},
    )  # fmt: skip
    assert status == 201, created
    found = await runs_until(project, export["id"], finished(3), within=90)
    assert [r["status"] for r in found] == ["Completed"] * 3, found

    assert await columns(database) == POSTHOG_EVENTS_SUPER
    held = await rows(database, 'SELECT * FROM posthog_exports."events"')
    sent = await source_events(project)
    assert len(held) == len(sent) == 30
    assert {row["uuid"]: row for row in held} == sent  # every column, value and Python type
    marks = await rows(database, "SELECT run_id FROM posthog_exports.bx_run_marks")
    assert sorted(m["run_id"] for m in marks) == sorted(r["id"] for r in found)
    assert await leftovers(database) == []


async def test_a_rerun_of_the_interval_changes_nothing_with_varchar_json(project: Project) -> None:
    database = await redshift_database(project)
    export = await create_export(project, redshift(database.config))
    await capture(project, [event("signup", f"user-{i}", n=i, **{"$set_once": {"first": i}}) for i in range(250)])
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    found = await run_hour(project, export, end, 3)  # 250 > the tests' 100 records per execution: 3 segments
    assert [r["status"] for r in found] == ["ContinuedAsNew", "ContinuedAsNew", "Completed"], found
    first = await rows(database, 'SELECT * FROM posthog_exports."events" ORDER BY uuid')
    found = await run_hour(project, export, end, 6)
    assert found[-1]["status"] == "Completed", found
    assert await rows(database, 'SELECT * FROM posthog_exports."events" ORDER BY uuid') == first
    assert len(first) == 250 and isinstance(first[0]["properties"], str)  # VARCHAR(65535): the JSON's text
    assert json.loads(first[0]["set_once"]) == {"first": json.loads(first[0]["properties"])["n"]}
    assert dict(await columns(database))["properties"] == "character varying(65535)"


def from_file(row: dict[str, Any], held: dict[str, Any]) -> dict[str, Any]:
    """A File row with its timestamps parsed where Redshift holds a timestamp (the only type JSON lacks)."""
    return {k: datetime.fromisoformat(v) if isinstance(held.get(k), datetime) and v else v
            for k, v in row.items() if k != "_inserted_at"}  # fmt: skip


@pytest.mark.parametrize("model", ["persons", "sessions"])
async def test_persons_and_sessions_arrive_as_the_file_destination_writes_them(project: Project, model: str) -> None:
    database = await redshift_database(project, properties_data_type="super", table_name=model)
    export = await create_export(project, redshift(database.config, model))
    session = "0193a1b2-c3d4-7e5f-8a6b-00000000000a"
    await capture(project, [
        {**event("$pageview", "ada", **{"$session_id": session, "$current_url": "https://example.com/a"}),
         "$set": {"plan": "free", "email": "ada@example.com"}},
        {**event("$pageview", "ada", **{"$session_id": session, "$current_url": "https://example.com/b"}),
         "$set": {"plan": "pro"}},
        event("$pageview", "grace", **{"$session_id": session.replace("a", "b")}),
    ])  # fmt: skip
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    (run,) = await run_hour(project, export, end, 1)
    assert (run["status"], run["records_completed"]) == ("Completed", 2), run
    key = "distinct_id" if model == "persons" else "session_id"
    held = {r[key]: r for r in await rows(database, f"SELECT * FROM posthog_exports.{model}")}
    written = {r[key]: r for r in await export_now(project, f"{model}-{project.id}", model=model)}
    assert set(held) == set(written) and len(held) == 2
    for k, row in held.items():
        assert row == from_file(written[k], row), k
    types = dict(await columns(database, model))
    if model == "persons":
        assert held["ada"]["properties"] == {"plan": "pro", "email": "ada@example.com"}
        assert (types["properties"], types["person_version"], types["created_at"]) == (
            "super", "bigint", "timestamp with time zone")  # fmt: skip
    else:
        assert sorted(held[session]["urls"]) == ["https://example.com/a", "https://example.com/b"]
        assert (types["urls"], types["entry_current_url"], len(types)) == ("super", "character varying(65535)", 47)
    assert await leftovers(database) == []


async def test_a_retried_attempt_whose_apply_landed_applies_nothing_and_a_dead_stage_goes(project: Project) -> None:
    """The attempt Temporal retries after the first applied (and its worker was lost) finds the run's mark and
    applies nothing, though the persons changed meanwhile; a stage an earlier attempt left is dropped."""
    database = await redshift_database(project, table_name="persons")
    export = await create_export(project, redshift(database.config, "persons"))
    await capture(project, [{**event("signup", "ada"), "$set": {"plan": "free"}}])
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    start = end - timedelta(hours=1)
    run_id = await started_run(project.stack.pool, batch_export_id=uuid.UUID(export["id"]),
                              workflow_id=f"{export['id']}-landed", workflow_run_id=str(uuid.uuid4()),
                              data_interval_start=start, data_interval_end=end, backfill_id=None)  # fmt: skip
    exporter = Exporter(project.stack.runtime)

    async def attempt(number: int) -> None:
        environment = ActivityEnvironment()
        environment.info = dataclasses.replace(environment.info, attempt=number)
        await environment.run(exporter.export_interval, ExportInputs(str(run_id), export["id"], start, end))

    await attempt(1)
    (applied,) = await rows(database, "SELECT properties, person_version FROM posthog_exports.persons")
    dead = f"bx_stage_{run_id.hex}_dead"
    await rows(database, f"CREATE TABLE posthog_exports.{dead} (x int)")
    await rows(database, f"ALTER TABLE posthog_exports.{dead} OWNER TO {database.config['user']}")
    await capture(project, [{**event("upgrade", "ada"), "$set": {"plan": "pro"}}])  # a newer version, same run
    await attempt(2)
    assert await rows(database, "SELECT properties, person_version FROM posthog_exports.persons") == [applied]
    assert json.loads(applied["properties"]) == {"plan": "free"}
    assert await leftovers(database) == []

    run_id = await started_run(project.stack.pool, batch_export_id=uuid.UUID(export["id"]),
                              workflow_id=f"{export['id']}-again", workflow_run_id=str(uuid.uuid4()),
                              data_interval_start=start, data_interval_end=end, backfill_id=None)  # fmt: skip
    await attempt(1)  # a new run of the interval: the newer version replaces the row
    (newer,) = await rows(database, "SELECT properties, person_version FROM posthog_exports.persons")
    assert json.loads(newer["properties"]) == {"plan": "pro"} and newer["person_version"] > applied["person_version"]
    await rows(database, "UPDATE posthog_exports.persons SET person_version = 99")  # newer than the source's
    run_id = await started_run(project.stack.pool, batch_export_id=uuid.UUID(export["id"]),
                              workflow_id=f"{export['id']}-older", workflow_run_id=str(uuid.uuid4()),
                              data_interval_start=start, data_interval_end=end, backfill_id=None)  # fmt: skip
    await attempt(1)  # an older version than the table's replaces nothing
    assert await rows(database, "SELECT person_version FROM posthog_exports.persons") == [{"person_version": 99}]


POSTHOG_PERSONS_DDL = """CREATE TABLE posthog_exports.persons (
    "team_id" BIGINT, "distinct_id" VARCHAR(65535), "person_id" VARCHAR(65535), "properties" VARCHAR(65535),
    "person_version" BIGINT, "created_at" TIMESTAMPTZ, "is_deleted" BOOLEAN
)"""
"""A persons table PostHog created before `person_distinct_id_version` was exported."""


async def test_posthogs_table_gets_rows_and_the_column_it_lacks(project: Project) -> None:
    database = await redshift_database(project, properties_data_type="super", table_name="persons")
    await rows(database, POSTHOG_PERSONS_DDL)
    await rows(database, f"ALTER TABLE posthog_exports.persons OWNER TO {database.config['user']}")
    export = await create_export(project, redshift(database.config, "persons"))  # super, the table's varchar
    await capture(project, [{**event("signup", "ada"), "$set": {"plan": "free"}}])
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    (run,) = await run_hour(project, export, end, 1)
    assert run["status"] == "Completed", run
    (row,) = await rows(database, "SELECT * FROM posthog_exports.persons")
    assert json.loads(row["properties"]) == {"plan": "free"} and row["person_distinct_id_version"] == 0
    assert (await columns(database, "persons"))[-1] == ("person_distinct_id_version", "bigint")


async def test_a_type_conflict_is_named_by_the_check_and_the_run(project: Project) -> None:
    database = await redshift_database(project)
    await rows(database, 'CREATE TABLE posthog_exports.events (uuid VARCHAR(200), "timestamp" INTEGER)')
    await rows(database, f"ALTER TABLE posthog_exports.events OWNER TO {database.config['user']}")
    export = await create_export(project, redshift(database.config))
    status, check = await project.request("POST", f"batch_exports/{export['id']}/run_test_step/", json={"step": 1})
    assert status == 200 and check["result"]["status"] == "Failed", check
    assert "column timestamp is integer" in check["result"]["message"], check
    await capture(project, [event("signup", "ada")])
    (run,) = await run_hour(project, export, datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1), 1)
    assert run["status"] == "Failed" and "column timestamp is integer" in run["latest_error"], run


async def test_checks_fail_with_the_servers_words_and_no_secret(project: Project) -> None:
    database = await redshift_database(project)
    config = {**database.config, "password": "not-the-password"}
    status, check = await project.request(
        "POST",
        "batch_exports/run_test_step_new/",
        json={"step": 0, "destination": {"type": "Redshift", "config": config}},
    )
    assert status == 200 and check["result"]["status"] == "Failed", check
    message = check["result"]["message"]
    assert "password authentication failed" in message and "Redshift at" in message, message
    assert config["user"] not in message and config["password"] not in message


async def test_copy_mode_is_refused_naming_the_field(project: Project) -> None:
    database = await redshift_database(project)
    copy_inputs = {"s3_bucket": "b", "region_name": "us-east-1", "s3_key_prefix": "p",
                   "authorization": "arn:aws:iam::1:role/r"}  # fmt: skip
    config = {**database.config, "mode": "COPY", "copy_inputs": copy_inputs}
    status, answer = await project.request("POST", "batch_exports/", json=redshift(config))
    assert status == 400 and answer["attr"].endswith("mode") and "COPY ... MANIFEST" in answer["detail"], answer


async def test_make_redshift_prints_a_config_that_works(project: Project, tmp_path: Path) -> None:
    env = {**os.environ, "BATCH_EXPORTS_DATABASE_URL": project.stack.settings.database_url,
           "BATCH_EXPORTS_DATA_DIR": str(tmp_path)}  # fmt: skip
    command = [sys.executable, "-m", "entrypoints.redshift"]
    made = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=60,
                                   cwd=ROOT)  # fmt: skip
    assert made.returncode == 0, made.stderr
    config = json.loads(made.stdout.splitlines()[-1])
    assert config["password"] not in made.stdout.splitlines()[0]
    for step in range(2):
        status, check = await project.request(
            "POST",
            "batch_exports/run_test_step_new/",
            json={"step": step, "destination": {"type": "Redshift", "config": config}},
        )
        assert (status, check["result"]["status"]) == (200, "Passed"), check


POSTHOG_EVENTS_DDL = """CREATE TABLE posthog_exports.events (
    "uuid" VARCHAR(200), "event" VARCHAR(200), "properties" SUPER, "elements" VARCHAR(65535), "set" SUPER,
    "set_once" SUPER, "distinct_id" VARCHAR(200), "team_id" INTEGER, "ip" VARCHAR(200), "site_url" VARCHAR(200),
    "timestamp" TIMESTAMP WITH TIME ZONE
)"""
"""PostHog's events table with SUPER columns, as its export created it."""


async def test_posthogs_super_table_gets_json_whatever_the_config_says(project: Project) -> None:
    database = await redshift_database(project)  # properties_data_type: varchar, the default
    await rows(database, POSTHOG_EVENTS_DDL)
    await rows(database, f"ALTER TABLE posthog_exports.events OWNER TO {database.config['user']}")
    export = await create_export(project, redshift(database.config))
    await capture(project, [event("signup", "ada", plan="pro", **{"$set": {"email": "ada@example.com"}})])
    (run,) = await run_hour(project, export, datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1), 1)
    assert run["status"] == "Completed", run
    (row,) = await rows(database, "SELECT properties, set, set_once FROM posthog_exports.events")
    assert row["properties"]["plan"] == "pro" and row["set"] == {"email": "ada@example.com"}, row  # parsed SUPER
    assert row["set_once"] is None
    assert dict(await columns(database))["properties"] == "super"


async def test_an_internal_address_is_refused_before_anything_connects(project: Project) -> None:
    """Where private destinations are not allowed, a Redshift at an internal address (here a listener on loopback,
    by every spelling) is a 400 at save and a failed check, and nothing reaches it; the DNS-rebinding case: the
    address connected to is the one checked."""
    context = Context(files_root=project.stack.settings.exports_root / str(project.id), allow_private=False)
    async with listening() as internal:
        base = {"port": internal.port, "database": "dev", "table_name": "events", "user": "u", "password": "p"}
        async with (
            another_gateway(project.stack, allow_private_destinations=False) as gateway,
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http,
        ):
            for host in ("127.0.0.1", "localhost", "::1", "::ffff:127.0.0.1", "127.1", "2130706433", "/tmp"):
                body = redshift({**base, "host": host})
                async with http.post(f"{gateway}/api/projects/{project.id}/batch_exports/", json=body) as response:
                    error = await response.json()
                assert (response.status, error["attr"]) == (400, "destination__config__host"), (host, error)
        config = parse_config("Redshift", {**base, "host": "rebind.test"})
        with loopback_only() as tripwire, resolving("rebind.test", first="93.184.215.14", then=LOOPBACK) as dns:
            problem = await run_step("Redshift", config, context, 0)
        assert problem is not None and dns.lookups >= 2 and tripwire.blocked == [], (problem, tripwire.blocked)
        assert internal.connections == 0 and bytes(internal.received) == b""


async def test_the_services_own_database_is_never_a_redshift(project: Project) -> None:
    url = urlparse(project.stack.settings.database_url)
    own = {"host": url.hostname, "port": url.port, "database": url.path.lstrip("/"), "table_name": "t",
           "user": "postgres", "password": url.password}  # fmt: skip
    status, error = await project.request("POST", "batch_exports/", json=redshift(own))
    assert (status, error["attr"]) == (400, "destination__config__host") and "database of this service" in error[
        "detail"
    ]


async def test_two_applies_of_one_person_at_once_leave_one_row(project: Project) -> None:
    """Two runs (two intervals of a backfill) apply the same person at the same moment: one applies, the other is
    refused by the isolation Redshift gives and tries again, by version: one row, the newest."""
    database = await redshift_database(project, table_name="persons")
    config = parse_config("Redshift", database.config)
    assert isinstance(config, RedshiftConfig)
    context = Context(files_root=project.stack.settings.exports_root / str(project.id), allow_private=True)
    end = datetime.now(UTC)

    def writer() -> RedshiftWriter:
        request = WriteRequest(context, "persons", False, end - timedelta(hours=1), end, run_id=str(uuid.uuid4()),
                               attempt=1)  # fmt: skip
        return RedshiftWriter(config, request)

    first = writer()
    await first.write(person_batch(1))
    await first.commit()
    for versions in ((2, 3), (5, 4)):  # the newer one first, then second
        writers = [writer(), writer()]
        for each, version in zip(writers, versions, strict=True):
            await each.write(person_batch(version))
        admin = await asyncpg.connect(database.url)
        try:
            async with admin.transaction():  # both applies wait for this lock, then run side by side
                await admin.execute("LOCK TABLE posthog_exports.persons IN SHARE MODE")
                applies = [asyncio.create_task(each.commit()) for each in writers]
                await eventually(functools.partial(_both_waiting, admin), within=20, every=0.05)
            await asyncio.gather(*applies)
        finally:
            await admin.close()
        held = await rows(database, "SELECT person_version FROM posthog_exports.persons")
        assert held == [{"person_version": max(versions)}], versions


async def _both_waiting(conn: asyncpg.Connection) -> bool | None:
    sql = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'posthog_exports.persons'::regclass"
    return True if await conn.fetchval(sql) >= 2 else None


def events(count: int) -> pa.RecordBatch:
    """`count` events as the events source gives them to Redshift (PostHog's PostgreSQL columns)."""
    now = datetime.now(UTC)
    return pa.record_batch({
        "uuid": [str(uuid.uuid4()) for _ in range(count)], "event": ["$pageview"] * count,
        "properties": [json.dumps({"n": i}) for i in range(count)], "distinct_id": [f"user-{i}" for i in range(count)],
        "team_id": pa.array([1] * count, pa.int64()),
        "timestamp": pa.array([now] * count, pa.timestamp("us", tz="UTC")),
    })  # fmt: skip


async def test_every_insert_is_of_full_length_and_parsed_once(project: Project) -> None:
    """Batches of 1,000 events go into INSERTs of the most rows a statement takes (11 columns: 2,978 rows, 32,758
    parameters, some 250 KB of text), the rows left over waiting for the next batch: the server parses that INSERT
    once and runs it again. asyncpg's own cache keeps no statement longer than 15 KB: each INSERT used to be parsed
    (and its parameter types decoded) anew, one per batch and another for each batch's remainder."""
    database = await redshift_database(project)
    config = parse_config("Redshift", database.config)
    assert isinstance(config, RedshiftConfig)
    context = Context(files_root=project.stack.settings.exports_root / str(project.id), allow_private=True)
    end = datetime.now(UTC)
    request = WriteRequest(context, "events", False, end - timedelta(hours=1), end, run_id=str(uuid.uuid4()),
                           attempt=1)  # fmt: skip
    writer = RedshiftWriter(config, request)
    columns = len(column_types("events", "varchar"))
    rows_per_insert = MAX_PARAMETERS // columns
    for _ in range(7):
        await writer.write(events(1000))
    prepared = await writer._connection().fetch(
        "SELECT cardinality(parameter_types) AS parameters, generic_plans + custom_plans AS runs"
        " FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO %'"
    )
    assert [dict(row) for row in prepared] == [{"parameters": rows_per_insert * columns, "runs": 2}]
    await writer.commit()  # the last 1,044 rows too
    assert await rows(database, 'SELECT count(*) AS n FROM posthog_exports."events"') == [{"n": 7000}]
