"""What one read request costs PostgreSQL: the statements the gateway sends for a page of runs (counted on a
gateway of its own whose pool logs every statement), and a key whose use is noted without a write per request."""

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web

from api.app import create_app
from batch_exports.store import api_keys, db
from entrypoints.embedded import LOOPBACK, free_port
from tests.support.counting import CountingConnection
from tests.support.stack import API_KEY, Project


@pytest.fixture
async def counted_gateway(project: Project) -> AsyncIterator[tuple[str, list[str]]]:
    """The base URL of a gateway on the stack's database whose pool (one connection) records its statements."""
    stack = project.stack
    dsn = stack.settings.database_url
    pool = await db.create_pool(dsn, min_size=1, max_size=1, connection_class=CountingConnection)
    rt = dataclasses.replace(stack.runtime, pool=pool)
    runner = web.AppRunner(create_app(stack.settings, rt), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    sent: list[str] = []
    CountingConnection.sent = sent
    try:
        yield f"http://{LOOPBACK}:{port}/api/environments/{project.id}/", sent
    finally:
        await runner.cleanup()
        await pool.close()


async def test_a_page_of_runs_is_three_statements_with_no_reset_between_them(
    project: Project, counted_gateway: tuple[str, list[str]]
) -> None:
    body = {"name": "costs", "interval": "hour", "paused": True, "destination": {"type": "NoOp", "config": {}}}
    status, export = await project.request("POST", "batch_exports/", json=body)
    assert status == 201, export
    base, sent = counted_gateway
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        async with http.get(f"{base}batch_exports/{export['id']}/runs/") as response:  # the key is noted
            assert response.status == 200
        sent.clear()
        async with http.get(f"{base}batch_exports/{export['id']}/runs/") as response:
            assert response.status == 200
            assert (await response.json())["results"] == []
    # the key and the project in one statement, the export (not its config), the page; asyncpg's reset
    # (`RESET ALL`...) at each release is gone
    assert len(sent) == 3, sent
    assert "personal_api_keys" in sent[0] and "projects" in sent[0]
    assert "FROM batch_exports" in sent[1] and "config_encrypted" not in sent[1]
    assert "FROM batch_export_runs" in sent[2]
    assert not [statement for statement in sent if "RESET ALL" in statement]


async def test_a_key_in_use_is_noted_once_a_minute_not_at_every_request(project: Project) -> None:
    pool = project.stack.pool
    key = api_keys.secure_value(API_KEY)
    noted = "SELECT last_used_at FROM personal_api_keys WHERE secure_value = $1"
    moved = """UPDATE personal_api_keys SET last_used_at = now() - $2::interval WHERE secure_value = $1
               RETURNING last_used_at"""
    lately = await pool.fetchval(moved, key, timedelta(seconds=30))
    for _ in range(3):
        status, _ = await project.request("GET", "batch_exports/")
        assert status == 200
    assert await pool.fetchval(noted, key) == lately  # noted 30 s ago: no write
    long_ago = await pool.fetchval(moved, key, timedelta(minutes=2))
    status, _ = await project.request("GET", "batch_exports/")
    assert status == 200
    assert await pool.fetchval(noted, key) > long_ago
