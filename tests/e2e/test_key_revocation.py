"""A gateway keeps the keys it found valid, yet a revoked or narrowed key, or a deleted project, stops working on
the next requests: PostgreSQL tells every gateway (migration 0018's triggers, `api/key_cache.py`'s listener), and
a gateway that lost its listener keeps nothing until it listens again."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from api.key_cache import APPLICATION_NAME, CHANNEL
from batch_exports.store import api_keys
from entrypoints.embedded import LOOPBACK, free_port
from tests.support.counting import CountedGateway, counted_gateway
from tests.support.stack import API_KEY, Project

SOON = 2.0
"""How long a change may take to reach a gateway (the notification is asynchronous)."""


@pytest.fixture
async def counted(project: Project) -> AsyncIterator[CountedGateway]:
    async with counted_gateway(project) as gateway:
        yield gateway


async def kept(counted: CountedGateway, key: str) -> None:
    """Two requests: the first looks the key up, the second finds it kept (no statement for it)."""
    assert await counted.status_of(key) == 200
    looked_up = counted.key_lookups()
    assert await counted.status_of(key) == 200
    assert counted.key_lookups() == looked_up, "the key was not kept"


async def id_of(pool: asyncpg.Pool, key: str) -> uuid.UUID:
    key_id = await pool.fetchval("SELECT id FROM personal_api_keys WHERE secure_value = $1", api_keys.secure_value(key))
    assert isinstance(key_id, uuid.UUID)
    return key_id


async def soon(counted: CountedGateway, key: str, expected: int) -> None:
    deadline = asyncio.get_running_loop().time() + SOON
    while (status := await counted.status_of(key)) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"still {status} after {SOON} s, not {expected}"
        await asyncio.sleep(0.02)


Change = Callable[[asyncpg.Pool, uuid.UUID, Project], Awaitable[object]]
CHANGES: dict[str, tuple[Change, int]] = {
    "revoked by the store": (lambda pool, key_id, project: api_keys.revoke(pool, key_id), 401),
    "revoked by hand": (
        lambda pool, key_id, project: pool.execute(
            "UPDATE personal_api_keys SET revoked_at = now() WHERE id = $1", key_id
        ),
        401,
    ),
    "deleted": (lambda pool, key_id, project: pool.execute("DELETE FROM personal_api_keys WHERE id = $1", key_id), 401),
    "scopes narrowed": (
        lambda pool, key_id, project: pool.execute(
            "UPDATE personal_api_keys SET scopes = $2 WHERE id = $1", key_id, [api_keys.INTEGRATION_READ]
        ),
        403,
    ),
    "moved to another project": (
        lambda pool, key_id, project: pool.execute(
            "UPDATE personal_api_keys SET project_ids = $2 WHERE id = $1", key_id, [project.id + 10_000]
        ),
        404,
    ),
    "project deleted": (
        lambda pool, key_id, project: pool.execute("DELETE FROM projects WHERE id = $1", project.id),
        404,
    ),
}


@pytest.mark.parametrize("change", CHANGES)
async def test_a_change_to_a_kept_key_or_its_project_reaches_the_gateway_within_moments(
    project: Project, counted: CountedGateway, change: str
) -> None:
    pool = project.stack.pool
    key = await api_keys.create(pool, change, (api_keys.READ,), [project.id])
    key_id = await id_of(pool, key)
    await kept(counted, key)
    make, expected = CHANGES[change]
    await make(pool, key_id, project)
    await soon(counted, key, expected)


async def test_noting_a_use_tells_no_gateway_and_a_revocation_does(project: Project) -> None:
    pool = project.stack.pool
    key = await api_keys.create(pool, "heard", (api_keys.READ,), [project.id])
    heard: asyncio.Queue[str] = asyncio.Queue()
    conn = await asyncpg.connect(project.stack.settings.database_url)
    try:
        await conn.add_listener(CHANNEL, lambda *args: heard.put_nowait(args[2]))
        assert (await api_keys.find(pool, key, project.id))[0] is not None  # never used: noted
        noted = "SELECT last_used_at IS NOT NULL FROM personal_api_keys WHERE secure_value = $1"
        assert await pool.fetchval(noted, api_keys.secure_value(key))
        await asyncio.sleep(0.3)
        assert heard.empty()
        await api_keys.revoke(pool, await id_of(pool, key))
        assert await asyncio.wait_for(heard.get(), SOON) == CHANNEL
    finally:
        await conn.close()


async def test_a_gateway_that_lost_its_listener_keeps_nothing_until_it_listens_again(
    project: Project, counted: CountedGateway
) -> None:
    pool = project.stack.pool
    key = await api_keys.create(pool, "lost", (api_keys.READ,), [project.id])
    await kept(counted, key)
    assert counted.key_cache.listening
    terminated = await pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", APPLICATION_NAME
    )
    assert terminated >= 1
    deadline = asyncio.get_running_loop().time() + SOON
    while counted.key_cache.listening:
        assert asyncio.get_running_loop().time() < deadline, "the loss went unnoticed"
        await asyncio.sleep(0.01)
    looked_up = counted.key_lookups()
    assert await counted.status_of(key) == 200
    assert counted.key_lookups() == looked_up + 1  # not served from what it kept
    while not counted.key_cache.listening:
        assert asyncio.get_running_loop().time() < deadline + 5, "it did not listen again"
        await asyncio.sleep(0.05)
    assert await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", APPLICATION_NAME)
    await kept(counted, key)  # kept again
    await api_keys.revoke(pool, await id_of(pool, key))
    await soon(counted, key, 401)  # and told again


async def test_with_no_database_to_listen_to_the_gateway_serves_uncached(project: Project) -> None:
    nowhere = f"postgresql://postgres@{LOOPBACK}:{free_port()}/batch_exports"
    async with counted_gateway(project, database_url=nowhere) as counted:
        assert not counted.key_cache.listening
        for _ in range(2):
            assert await counted.status_of(API_KEY) == 200
        assert counted.key_lookups() == 2


async def test_a_gateway_told_to_keep_no_keys_listens_for_nothing_and_looks_each_up(project: Project) -> None:
    """`BATCH_EXPORTS_API_KEY_CACHE=false`, for a database behind a pooler in transaction mode, where
    notifications do not arrive."""
    async with counted_gateway(project, api_key_cache=False) as counted:
        for _ in range(3):
            assert await counted.status_of(API_KEY) == 200
        assert counted.key_lookups() == 3
        assert not counted.key_cache.listening
