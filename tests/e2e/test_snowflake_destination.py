"""The Snowflake destination against fakesnow, from the API, read back with the official connector: created and
checked (password and key pair), run by its schedule and by a backfill, row for row as the source holds them; a
rerun changes nothing; a retried attempt whose apply landed applies nothing; persons and sessions by key; a table
PostHog created gets rows and the columns it lacks; a type conflict and what only the user can fix, named."""

import asyncio
import dataclasses
import io
import json
import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from temporalio.testing import ActivityEnvironment

from activities.export import Exporter
from connectors.destinations.network.hosts import HostRefused
from connectors.destinations.network.proxy import EgressProxy
from connectors.destinations.warehouses import snowflake_sql as sql
from connectors.destinations.warehouses.snowflake import Session, SnowflakeConfig
from connectors.destinations.warehouses.staging import STAGE_PREFIX
from contracts.workflows import ExportInputs
from entrypoints.snowflake import Fakesnow
from tests.support.helpers import (
    capture,
    create_export,
    event,
    insert_events,
    run_hour,
    runs_until,
    start_run,
    started_run,
    trigger_for_last_hour,
)
from tests.support.snowflake import new_config, query, table_rows
from tests.support.stack import Project, Stack


def finished(count: int) -> Any:
    return lambda rs: len(rs) == count and all(r["status"] not in ("Starting", "Running") for r in rs)


async def export_to(project: Project, config: dict[str, Any], model: str = "events") -> dict[str, Any]:
    return await create_export(project, {"name": "snowflake", "interval": "hour", "model": model,
                                         "destination": {"type": "Snowflake", "config": config}})  # fmt: skip


async def checks(project: Project, export: dict[str, Any]) -> list[dict[str, Any]]:
    status, listed = await project.request("GET", "batch_exports/test/", params={"destination": "Snowflake"})
    assert status == 200 and len(listed["steps"]) == 2, listed
    results = []
    for step in range(len(listed["steps"])):
        status, check = await project.request("POST", f"batch_exports/{export['id']}/run_test_step/",
                                              json={"step": step})  # fmt: skip
        assert status == 200, check
        results.append(check["result"])
    return results


async def source_events(project: Project) -> dict[str, dict[str, Any]]:
    rows = await project.stack.pool.fetch(
        """SELECT uuid::text, event, properties, elements_chain, properties -> '$set' AS set,
                  properties -> '$set_once' AS set_once, distinct_id, team_id, properties ->> '$ip' AS ip, timestamp
           FROM events WHERE team_id = $1""",
        project.id,
    )
    return {row["uuid"]: dict(row) for row in rows}


def as_json(value: Any) -> Any:
    """A JSON value as Python: VARIANTs come back as their JSON text (the source's jsonb may come decoded)."""
    return json.loads(value) if isinstance(value, str) else value


def assert_same_events(held: list[dict[str, Any]], source: dict[str, dict[str, Any]]) -> None:
    """Row for row, type for type, what PostHog's Snowflake export writes of each source event."""
    assert len(held) == len({row["uuid"] for row in held}) == len(source)
    for row in held:
        want = source[row["uuid"]]
        assert list(row) == list(sql.TABLES["events"])
        assert row["event"] == want["event"] and row["distinct_id"] == want["distinct_id"]
        assert as_json(row["properties"]) == as_json(want["properties"])
        assert as_json(row["elements"]) == want["elements_chain"]
        assert as_json(row["people_set"]) == as_json(want["set"])
        assert as_json(row["people_set_once"]) == as_json(want["set_once"])
        assert isinstance(row["team_id"], int) and row["team_id"] == want["team_id"]
        assert row["ip"] == (want["ip"] or None) and row["site_url"] == ""
        assert isinstance(row["timestamp"], datetime)
        assert row["timestamp"] == want["timestamp"].astimezone(UTC).replace(tzinfo=None)


async def test_created_checked_run_by_its_schedule_and_a_backfill_then_read_back_and_rerun(
    project: Project, snowflake_stack: Stack, fakesnow: Fakesnow
) -> None:
    config = new_config()
    export = await export_to(project, config)
    assert "password" not in export["destination"]["config"]
    assert await checks(project, export) == [{"status": "Passed", "message": None}] * 2

    await capture(project, [{**event("$pageview", f"user-{i}", n=i, **{"$ip": f"10.0.0.{i}"}),
                             "$set": {"plan": "free"}} for i in range(20)])  # fmt: skip
    hour = await trigger_for_last_hour(project, export)
    await runs_until(project, export["id"], finished(1), within=60)
    await insert_events(project.stack, project.id, [hour - timedelta(hours=2, minutes=-i) for i in range(5)])
    status, created = await project.request(
        "POST", f"batch_exports/{export['id']}/backfills/",
        json={"start_at": (hour - timedelta(hours=2)).isoformat(), "end_at": (hour - timedelta(hours=1)).isoformat()},
    )  # fmt: skip
    assert status == 201, created
    found = await runs_until(project, export["id"], finished(2), within=60)
    assert [(r["status"], r["records_completed"]) for r in found] == [("Completed", 20), ("Completed", 5)], found

    held = await table_rows(fakesnow, config)
    assert_same_events(held, await source_events(project))
    assert await query(fakesnow, config, "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES "
                       f"WHERE STARTSWITH(TABLE_NAME, '{STAGE_PREFIX.upper()}')") == []  # fmt: skip

    again = await run_hour(project, export, hour, 3)  # the scheduled hour once more
    assert again[-1]["status"] == "Completed", again
    assert sorted(await table_rows(fakesnow, config), key=str) == sorted(held, key=str)


def private_key(passphrase: bytes) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(passphrase)).decode()  # fmt: skip


async def test_key_pair_authentication_logs_in_and_loads(
    project: Project, snowflake_stack: Stack, fakesnow: Fakesnow
) -> None:
    config = new_config(authentication_type="keypair", private_key=private_key(b"phrase"),
                        private_key_passphrase="phrase", role="LOADER")  # fmt: skip
    del config["password"]
    export = await export_to(project, config)
    assert not {"private_key", "private_key_passphrase"} & set(export["destination"]["config"])
    assert await checks(project, export) == [{"status": "Passed", "message": None}] * 2
    await capture(project, [event("signup", f"user-{i}") for i in range(3)])
    (run,) = await run_hour(project, export, datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1), 1)
    assert (run["status"], run["records_completed"]) == ("Completed", 3), run
    assert sorted(row["distinct_id"] for row in await table_rows(fakesnow, config)) == ["user-0", "user-1", "user-2"]


async def test_a_retried_attempt_whose_apply_landed_applies_nothing_and_stale_stages_go(
    project: Project, snowflake_stack: Stack, fakesnow: Fakesnow
) -> None:
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    start = end - timedelta(hours=1)
    sent = await insert_events(project.stack, project.id, [start + timedelta(minutes=i) for i in range(30)])
    config = new_config()
    export = await export_to(project, config)
    exporter = Exporter(project.stack.runtime)

    async def attempt(run_id: uuid.UUID, number: int) -> None:
        environment = ActivityEnvironment()
        environment.info = dataclasses.replace(environment.info, attempt=number)
        result = await environment.run(exporter.export_interval, ExportInputs(str(run_id), export["id"], start, end))
        assert result.records_completed == 30

    run_id = await started_run(project.stack.pool, batch_export_id=uuid.UUID(export["id"]),
                              workflow_id=f"{export['id']}-landed", workflow_run_id=str(uuid.uuid4()),
                              data_interval_start=start, data_interval_end=end, backfill_id=None)  # fmt: skip
    stale = f"{STAGE_PREFIX}{run_id.hex}_9"  # what a lost worker's attempt of the run left
    await query(fakesnow, config, sql.create_stage_table(stale, sql.TABLES["events"]))
    await attempt(run_id, 1)
    marks = f'SELECT "run_id", "records" FROM "{sql.MARKS_TABLE}"'
    assert await query(fakesnow, config, marks) == [(str(run_id), 30)]
    await query(fakesnow, config, f'UPDATE "{config["table_name"]}" SET "event" = \'changed since\'')
    await attempt(run_id, 2)  # the retry: it stages the interval again, finds the mark, applies nothing
    held = await table_rows(fakesnow, config)
    assert {row["event"] for row in held} == {"changed since"} and {row["uuid"] for row in held} == sent
    assert await query(fakesnow, config, marks) == [(str(run_id), 30)]
    stages = f"SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE STARTSWITH(TABLE_NAME, '{STAGE_PREFIX.upper()}')"
    assert await query(fakesnow, config, stages) == []


async def test_persons_and_sessions_replace_their_row_by_key(
    project: Project, snowflake_stack: Stack, fakesnow: Fakesnow
) -> None:
    persons, sessions = new_config(table_name="persons"), new_config(table_name="sessions")
    person_export, session_export = (
        await export_to(project, persons, "persons"),
        await export_to(project, sessions, "sessions"),
    )
    session = "0193a1b2-c3d4-7e5f-8a6b-00000000000b"
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    await capture(
        project,
        [
            {
                **event("$pageview", "ada", **{"$session_id": session, "$current_url": "https://e.com/a"}),
                "$set": {"plan": "free"},
            },
            {**event("signup", "grace"), "$set": {"plan": "free"}},
        ],
    )
    await asyncio.sleep(1.1)
    middle = datetime.now(UTC).replace(microsecond=0)
    for export in (person_export, session_export):
        await start_run(project.stack, export, start=first, end=middle)
        await runs_until(project, export["id"], finished(1), within=60)
    await capture(project, [{**event("$pageview", "ada", **{"$session_id": session, "$current_url": "https://e.com/b"}),
                             "$set": {"plan": "pro"}}])  # fmt: skip
    await asyncio.sleep(1.1)
    last = datetime.now(UTC).replace(microsecond=0)
    for export in (person_export, session_export):
        await start_run(project.stack, export, start=middle, end=last)
        found = await runs_until(project, export["id"], finished(2), within=60)
        assert [r["status"] for r in found] == ["Completed", "Completed"], found

    rows = {row["distinct_id"]: row for row in await table_rows(fakesnow, persons)}
    assert set(rows) == {"ada", "grace"} and {row["team_id"] for row in rows.values()} == {project.id}
    assert json.loads(rows["ada"]["properties"])["plan"] == "pro" and rows["ada"]["person_version"] >= 1
    assert json.loads(rows["grace"]["properties"])["plan"] == "free"
    assert list(rows["ada"]) == list(sql.TABLES["persons"])
    source = {row["distinct_id"]: row for row in await project.stack.pool.fetch(
        """SELECT d.distinct_id, p.id::text AS person_id, p.version, d.version AS distinct_id_version, p.created_at,
                  p.is_deleted FROM person_distinct_ids d JOIN persons p ON p.id = d.person_id WHERE d.team_id = $1""",
        project.id)}  # fmt: skip
    for distinct_id, row in rows.items():
        want = source[distinct_id]
        assert (row["person_id"], row["person_version"], row["person_distinct_id_version"], row["is_deleted"]) == (
            want["person_id"], want["version"], want["distinct_id_version"], want["is_deleted"])  # fmt: skip
        assert row["created_at"] == want["created_at"].astimezone(UTC).replace(tzinfo=None)
    (row,) = await table_rows(fakesnow, sessions)
    assert list(row) == list(sql.TABLES["sessions"]) and row["session_id"] == session
    assert row["pageview_count"] == 2 and sorted(json.loads(row["urls"])) == ["https://e.com/a", "https://e.com/b"]
    assert isinstance(row["end_timestamp"], datetime) and row["end_timestamp"] > row["start_timestamp"]


async def test_a_table_posthog_created_gets_rows_and_the_columns_it_lacks_and_a_type_conflict_is_named(
    project: Project, snowflake_stack: Stack, fakesnow: Fakesnow
) -> None:
    config = new_config()
    older = {name: kind for name, kind in sql.TABLES["events"].items() if name not in ("ip", "site_url")}
    await query(fakesnow, config, sql.create_table("events", {**older, "their_own": "STRING"}))
    export = await export_to(project, config)
    await capture(project, [event("signup", f"user-{i}", **{"$ip": "10.1.1.1"}) for i in range(4)])
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    (run,) = await run_hour(project, export, end, 1)
    assert (run["status"], run["records_completed"]) == ("Completed", 4), run
    held = await table_rows(fakesnow, config)
    assert (
        len(held) == 4 and {row["ip"] for row in held} == {"10.1.1.1"} and {row["their_own"] for row in held} == {None}
    )

    conflicting = new_config()
    await query(fakesnow, conflicting, sql.create_table("events", {**sql.TABLES["events"], "team_id": "STRING"}))
    export = await export_to(project, conflicting)
    (run,) = await run_hour(project, export, end + timedelta(seconds=1), 1)
    assert run["status"] == "Failed" and "team_id is TEXT, not INTEGER" in run["latest_error"], run


async def test_what_only_the_user_can_fix_fails_the_check_and_the_run_in_snowflakes_words(
    project: Project, snowflake_stack: Stack, fakesnow: Fakesnow
) -> None:
    config = new_config(table_name="a_view", password=f"secret-{uuid.uuid4().hex}")
    await query(fakesnow, config, 'CREATE TABLE "base" ("a" STRING)')
    await query(fakesnow, config, 'CREATE VIEW "a_view" AS SELECT * FROM "base"')
    export = await export_to(project, config)
    connect, writable = await checks(project, export)
    assert connect == {"status": "Passed", "message": None}
    assert writable["status"] == "Failed" and "view" in writable["message"].lower(), writable
    await capture(project, [event("signup", "someone")])
    (run,) = await run_hour(project, export, datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1), 1)
    assert run["status"] == "Failed" and "view" in run["latest_error"].lower(), run
    _, logs = await project.request("GET", f"batch_exports/{export['id']}/logs/")
    assert config["password"] not in str(run) + str(writable) + str(logs)


async def test_bad_snowflake_configs_are_400s_that_name_the_field(project: Project) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"password": None}, "destination__config__password"),
        ({"authentication_type": "keypair", "private_key": "not a key"}, "destination__config__private_key"),
        ({"table_name": 'a"b'}, "destination__config__table_name"),
        ({"account": "evil.example.com:443/"}, "destination__config__account"),
    ]
    for change, attr in cases:
        config = {**new_config(), **change}
        body = {"name": "snowflake", "interval": "hour", "destination": {"type": "Snowflake", "config": config}}
        status, error = await project.request("POST", "batch_exports/", json=body)
        assert (status, error["attr"]) == (400, attr), (change, error)


async def test_every_connection_of_the_connector_goes_through_the_egress_and_a_refused_endpoint_gets_none(
    snowflake_stack: Stack, fakesnow: Fakesnow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Login, queries, a PUT's upload and the logout: each connection the connector opens (in its threads) is to
    the egress proxy, even with proxy variables in the environment; where the policy refuses the endpoint, the
    connector opens none."""
    context = snowflake_stack.runtime.destinations
    assert context.egress is not None
    loop_thread = threading.current_thread()
    opened: list[Any] = []
    connect = socket.socket.connect

    def recording(sock: socket.socket, address: Any) -> Any:
        if threading.current_thread() is not loop_thread:  # the proxy's own connections are on the loop's thread
            opened.append(address)
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", recording)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://10.255.255.1:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    config = SnowflakeConfig.model_validate(new_config())
    session = await Session(config, context).open()
    try:
        await session.execute(sql.create_stage_table("bx_stage_egress_1", {"a": "STRING"}))
        await session.execute(sql.put("bx_stage_egress_1", "f.csv"), stream=io.BytesIO(b"x\n"))
    finally:
        await session.close()
    assert isinstance(context.egress, EgressProxy)
    assert opened and set(opened) == {("127.0.0.1", context.egress.port)}, opened

    opened.clear()
    with pytest.raises(HostRefused) as refused:
        await Session(config, dataclasses.replace(context, allow_private=False)).open()
    assert refused.value.field == "account" and opened == []
