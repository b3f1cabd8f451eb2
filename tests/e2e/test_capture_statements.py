"""What a capture batch costs PostgreSQL, and that the cheaper path keeps each event once: a batch of new events
is inserted in uuid order without searching the events' key for each uuid first; a batch that repeats stored
events (or an event twice) is written again, dropping them, whether it merges persons or not, alone or sent by
several clients at once."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import asyncpg
import orjson
import pytest

from batch_exports.services import capture as ingestion
from batch_exports.store import db, event_store
from tests.support.helpers import event
from tests.support.stack import Project


class LoggingConnection(asyncpg.Connection):  # type: ignore[misc]
    """A connection that appends every statement it sends (with its arguments and error) to `sent`."""

    sent: ClassVar[list[Any]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_query_logger(lambda record: self.sent.append(record))


@pytest.fixture
async def logged_pool(project: Project) -> AsyncIterator[tuple[asyncpg.Pool, list[Any]]]:
    sent: list[Any] = []
    LoggingConnection.sent = sent
    pool = await db.create_pool(
        project.stack.settings.database_url, min_size=1, max_size=1, connection_class=LoggingConnection
    )
    try:
        yield pool, sent
    finally:
        await pool.close()


def events_of(batch: list[dict[str, Any]]) -> list[event_store.CapturedEvent]:
    return ingestion.parse({"batch": batch}).events


async def stored(project: Project) -> dict[str, int]:
    rows = await project.stack.pool.fetch(
        "SELECT uuid::text AS uuid, count(*) AS n FROM events WHERE team_id = $1 GROUP BY 1", project.id
    )
    return {row["uuid"]: row["n"] for row in rows}


async def counted(project: Project) -> int:
    """The events `event_counts` holds for the project (what a backfill's estimate reads)."""
    return await project.stack.pool.fetchval(  # type: ignore[no-any-return]
        "SELECT coalesce(sum(n), 0) FROM event_counts WHERE team_id = $1", project.id
    )


async def test_new_events_go_in_uuid_order_with_no_search_of_the_key_first(
    project: Project, logged_pool: tuple[asyncpg.Pool, list[Any]]
) -> None:
    pool, sent = logged_pool
    await event_store.write(pool, project.id, events_of([event("seen", f"user-{i}") for i in range(20)]))
    sent.clear()
    batch = [{**event("e", f"user-{i}"), "uuid": str(uuid.uuid4())} for i in range(20)]
    batch[3]["$set"] = {"plan": "pro"}
    await event_store.write(pool, project.id, events_of(batch))

    read, insert = sent  # the batch's persons, then one statement: the changed person and the events
    assert "FROM person_distinct_ids" in read.query and read.exception is None
    assert "INSERT INTO events" in insert.query and insert.exception is None
    assert "ON CONFLICT (team_id, uuid)" not in insert.query  # no index search per event before its insert
    assert "ORDER BY" not in insert.query.split("INSERT INTO events")[1]  # PostgreSQL sorts nothing
    document = orjson.loads(insert.args[-1])
    assert [row[0] for row in document] == sorted(row["uuid"] for row in batch)
    kept = await stored(project)
    assert len(kept) == 40 and set(kept.values()) == {1} and {row["uuid"] for row in batch} <= kept.keys()
    assert await counted(project) == 40


@pytest.mark.parametrize("kind", ["plain", "merging"])
async def test_a_batch_repeating_stored_events_stores_each_once(
    project: Project, logged_pool: tuple[asyncpg.Pool, list[Any]], kind: str
) -> None:
    pool, sent = logged_pool
    first = [{**event("first", f"user-{i}", n=i), "uuid": str(uuid.uuid4())} for i in range(3)]
    await event_store.write(pool, project.id, events_of(first))
    again = {**first[1], "event": "changed", "properties": {"n": 100}}  # the same uuid: the stored one stays
    new = [{**event("new", f"user-{i}", n=i), "uuid": str(uuid.uuid4())} for i in range(3)]
    batch = [new[0], again, new[1], new[2], new[1]]  # one stored before, one twice in the batch
    if kind == "merging":
        batch.append({**event("$identify", "user-0", **{"$anon_distinct_id": "visitor"}), "uuid": str(uuid.uuid4())})
    sent.clear()
    await event_store.write(pool, project.id, events_of(batch))

    inserts = [entry for entry in sent if "INSERT INTO events" in entry.query]
    assert [type(entry.exception) for entry in inserts] == [asyncpg.UniqueViolationError, type(None)]
    assert "ON CONFLICT (team_id, uuid) DO NOTHING" in inserts[1].query  # written again, dropping the repeats
    expected = {row["uuid"] for row in first + batch}
    assert await stored(project) == dict.fromkeys(expected, 1)
    kept = await project.stack.pool.fetchrow(
        "SELECT event, properties ->> 'n' AS n FROM events WHERE team_id = $1 AND uuid = $2",
        project.id, uuid.UUID(again["uuid"]),
    )  # fmt: skip
    assert (kept["event"], kept["n"]) == ("first", "1")
    assert await counted(project) == len(expected)
    if kind == "merging":
        person = await project.stack.pool.fetchval(
            "SELECT person_id FROM person_distinct_ids WHERE team_id = $1 AND distinct_id = 'visitor'", project.id
        )
        assert person == await project.stack.pool.fetchval(
            "SELECT person_id FROM person_distinct_ids WHERE team_id = $1 AND distinct_id = 'user-0'", project.id
        )


async def test_the_same_payload_from_several_clients_at_once_is_stored_once(project: Project) -> None:
    batch = [{**event("e", f"user-{i % 7}", n=i), "uuid": str(uuid.uuid4())} for i in range(200)]
    batch += [{**event("$identify", f"user-{i}", **{"$anon_distinct_id": f"visitor-{i}"}), "uuid": str(uuid.uuid4())}
              for i in range(3)]  # fmt: skip
    body = {"api_key": project.token, "batch": batch}
    for _ in range(3):
        answers = await asyncio.gather(*(project.request("POST", "/batch/", key=None, json=body) for _ in range(4)))
        assert [status for status, _ in answers] == [200] * 4, answers
    assert await stored(project) == dict.fromkeys((row["uuid"] for row in batch), 1)
    assert await counted(project) == len(batch)
