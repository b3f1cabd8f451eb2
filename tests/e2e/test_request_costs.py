"""What one read request costs PostgreSQL: the statements the gateway sends for a page of runs (counted on a
gateway of its own whose pool logs every statement), and a key whose use is noted without a write per request."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest

from api.responses import dumps, run_body
from batch_exports.store import api_keys, runs
from contracts.statuses import RunStatus
from tests.support.counting import CountedGateway, counted_gateway
from tests.support.stack import API_KEY, Project


@pytest.fixture
async def counted(project: Project) -> AsyncIterator[CountedGateway]:
    async with counted_gateway(project) as gateway:
        yield gateway


async def test_a_page_of_runs_is_one_statement_once_the_key_is_kept_with_no_reset_between_them(
    project: Project, counted: CountedGateway
) -> None:
    body = {"name": "costs", "interval": "hour", "paused": True, "destination": {"type": "NoOp", "config": {}}}
    status, export = await project.request("POST", "batch_exports/", json=body)
    assert status == 201, export
    sent = counted.sent
    runs_url = f"{counted.base}batch_exports/{export['id']}/runs/"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        async with http.get(runs_url) as response:  # the key is noted; asyncpg learns the types it meets
            assert response.status == 200
        counted.key_cache.kept.forget()
        sent.clear()
        async with http.get(runs_url) as response:
            assert response.status == 200
            assert (await response.json())["results"] == []
        # no run: the key and the project in one statement, the page, then the export (not its config) that
        # tells an empty page from a 404; asyncpg's reset (`RESET ALL`...) at each release is gone
        assert len(sent) == 3, sent
        assert "personal_api_keys" in sent[0] and "projects" in sent[0]
        assert "FROM batch_export_runs" in sent[1]
        assert "SELECT *" not in sent[1] and "checkpoint" not in sent[1]  # the columns a run shows
        assert "FROM batch_exports" in sent[2] and "config_encrypted" not in sent[2]
        assert not [statement for statement in sent if "RESET ALL" in statement]
        sent.clear()
        async with http.get(runs_url) as response:  # the key is kept: no statement for it
            assert response.status == 200
        assert len(sent) == 2 and "FROM batch_export_runs" in sent[0], sent

        await project.stack.pool.execute(RUNS, export["id"], None)
        sent.clear()
        async with http.get(runs_url) as response:
            assert response.status == 200
            assert len((await response.json())["results"]) == 30
        assert len(sent) == 1, sent  # a page with runs: the page that checks the export, the key kept
        assert "FROM batch_export_runs" in sent[0]


async def test_runs_of_a_foreign_or_deleted_export_are_404_though_it_has_runs(project: Project) -> None:
    body = {"name": "guarded", "interval": "hour", "paused": True, "destination": {"type": "NoOp", "config": {}}}
    status, export = await project.request("POST", "batch_exports/", json=body)
    assert status == 201, export
    await project.stack.pool.execute(RUNS, export["id"], None)
    path = f"batch_exports/{export['id']}/runs/"
    status, page = await project.request("GET", path)
    assert status == 200 and len(page["results"]) == 30
    other = await project.stack.new_project()
    status, body = await other.request("GET", path)
    assert (status, body["code"]) == (404, "not_found")
    await project.stack.pool.execute("UPDATE batch_exports SET deleted = true WHERE id = $1", uuid.UUID(export["id"]))
    status, body = await project.request("GET", path)
    assert (status, body["code"]) == (404, "not_found")


RUNS = """
    INSERT INTO batch_export_runs (id, batch_export_id, workflow_id, workflow_run_id, status, records_completed,
        records_failed, records_total_count, bytes_exported, latest_error, data_interval_start, data_interval_end,
        cursor, created_at, finished_at, last_updated_at, checkpoint)
    SELECT gen_random_uuid(), $1::uuid, $1::uuid::text || '-' || i, 'r' || i,
           (ARRAY['Completed', 'Failed', 'Running', 'ContinuedAsNew'])[i % 4 + 1], i * 7, i % 3,
           CASE WHEN i % 2 = 0 THEN i * 10 END, i * 1000, CASE WHEN i % 4 = 1 THEN $2 END,
           t, t + interval '1 hour', CASE WHEN i % 4 = 3 THEN 'cursor-' || i END,
           t + interval '1 hour' + i * interval '1.234567 second', CASE WHEN i % 4 <> 2 THEN t + interval '2 hours' END,
           now() + interval '1 hour', '{"attempt": 1}'
    FROM generate_series(0, 29) AS i, LATERAL (SELECT timestamptz '2026-01-01' + i * interval '1 hour' AS t) AS at
"""
REPLACED = """
    UPDATE batch_export_runs SET replaced_run_id = (SELECT id FROM batch_export_runs WHERE workflow_id = $1 || '-0')
    WHERE batch_export_id = $1::uuid AND records_completed % 5 = 0
"""


async def test_a_page_of_runs_is_byte_for_byte_what_their_runs_show(project: Project) -> None:
    """Shown from its rows, a page is the bytes its `Run`s (read whole, through the model) render to."""
    body = {"name": "bytes", "interval": "hour", "paused": True, "destination": {"type": "NoOp", "config": {}}}
    status, export = await project.request("POST", "batch_exports/", json=body)
    assert status == 201, export
    pool = project.stack.pool
    await pool.execute(RUNS, export["id"], 'bad "x"\n\u00e9\u2028\t\\ \x01\x7f 💥')
    await pool.execute(REPLACED, export["id"])
    shown = await runs.latest(pool, uuid.UUID(export["id"]), limit=100)  # the page's order: newest first
    assert len(shown) == 30 and {run.status for run in shown} >= {RunStatus.RUNNING, RunStatus.FAILED}
    expected = dumps({"next": None, "previous": None, "results": [run_body(run) for run in shown]})
    async with project.stack.http.get(
        project.url(f"batch_exports/{export['id']}/runs/"), headers={"Authorization": f"Bearer {API_KEY}"}
    ) as response:
        assert response.status == 200
        assert await response.read() == expected


def a_minute_on(counted: CountedGateway) -> None:
    """The gateway's kept keys see a minute pass: what they keep lapses (as after `USE_NOTED_EVERY`)."""
    later = time.monotonic() + api_keys.USE_NOTED_EVERY_SECONDS
    counted.key_cache.kept.clock = lambda: later


async def test_a_key_in_use_is_noted_once_a_minute_not_at_every_request(
    project: Project, counted: CountedGateway
) -> None:
    pool = project.stack.pool
    key = await api_keys.create(pool, "noted", (api_keys.READ,), [project.id])
    hashed = api_keys.secure_value(key)
    noted = "SELECT last_used_at FROM personal_api_keys WHERE secure_value = $1"
    moved = """UPDATE personal_api_keys SET last_used_at = now() - $2::interval WHERE secure_value = $1
               RETURNING last_used_at"""
    lately = await pool.fetchval(moved, hashed, timedelta(seconds=30))
    for _ in range(3):
        assert await counted.status_of(key) == 200
    assert await pool.fetchval(noted, hashed) == lately  # noted 30 s ago: no write
    assert counted.key_lookups() == 1  # then kept: noting a use (`SET last_used_at`) tells no gateway to forget
    long_ago = await pool.fetchval(moved, hashed, timedelta(minutes=2))
    assert await counted.status_of(key) == 200
    assert await pool.fetchval(noted, hashed) == long_ago and counted.key_lookups() == 1  # kept for a minute
    a_minute_on(counted)
    assert await counted.status_of(key) == 200  # looked up again, and noted
    assert await pool.fetchval(noted, hashed) > long_ago and counted.key_lookups() == 2


async def test_a_request_does_not_wait_for_another_noting_the_key(project: Project, counted: CountedGateway) -> None:
    """A request noting the key holds its row's lock until its commit is flushed: the others do not queue on it."""
    pool = project.stack.pool
    key = await api_keys.create(pool, "locked", (api_keys.READ,), [project.id])
    hashed = api_keys.secure_value(key)
    await pool.execute(
        "UPDATE personal_api_keys SET last_used_at = now() - interval '2 minutes' WHERE secure_value = $1", hashed
    )
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT 1 FROM personal_api_keys WHERE secure_value = $1 FOR UPDATE", hashed
        )  # as a noting does
        assert await asyncio.wait_for(counted.status_of(key), 10) == 200
        assert counted.key_lookups() == 1
    a_minute_on(counted)
    assert await counted.status_of(key) == 200  # the lock gone, the use is noted by the next lookup
    assert counted.key_lookups() == 2
    assert await pool.fetchval(
        "SELECT last_used_at > now() - interval '1 minute' FROM personal_api_keys WHERE secure_value = $1", hashed
    )
