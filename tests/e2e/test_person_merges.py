"""Persons merged as PostHog merges them, sent by the official `posthog` client, checked in the exports.

Each test sends events with the SDK, exports the persons model and the events to File and compares them row
by row with what PostHog's ingestion leaves: which person each distinct id has, the versions, `is_deleted`
(a person merged away is exported once more, deleted) and the `person_id` every event carries.
"""

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from posthog import Posthog

from batch_exports.services import capture as ingestion
from batch_exports.services.person_ids import person_id
from batch_exports.store import db, event_store
from tests.support.helpers import export_now
from tests.support.stack import Project

Row = tuple[str, str, int, int, bool]
"""A persons-export row as compared: (distinct id, person id, person version, link version, deleted)."""


def _client(project: Project, **options: Any) -> Posthog:
    return Posthog(project.token, host=project.stack.base_url, gzip=True, max_retries=0, **options)


async def send(project: Project, calls: Callable[[Posthog], list[str | None]]) -> list[str]:
    """Run `calls` with a client that sends each event as its own request, in order; the events' uuids."""

    def run() -> list[str]:
        client = _client(project, sync_mode=True)
        try:
            return [str(sent) for sent in calls(client) if sent]
        finally:
            client.shutdown()

    return await asyncio.to_thread(run)


def identify(client: Posthog, distinct_id: str, anonymous: str, **properties: Any) -> str | None:
    """What posthog-js sends on `posthog.identify()` (the Python SDK has no `identify` any more)."""
    return client.capture("$identify", distinct_id=distinct_id, properties={"$anon_distinct_id": anonymous,
                                                                            **properties})  # fmt: skip


def pid(project: Project, distinct_id: str) -> str:
    return str(person_id(project.id, distinct_id))


async def persons(project: Project, name: str) -> tuple[set[Row], dict[str, dict[str, Any]]]:
    """The persons export as rows, and each distinct id's row of its current person (the deleted rows under
    `"deleted:<distinct id>"`)."""
    rows = await export_now(project, f"persons-{name}-{project.id}", model="persons")
    compared = {(r["distinct_id"], r["person_id"], r["person_version"], r["person_distinct_id_version"],
                 r["is_deleted"]) for r in rows}  # fmt: skip
    assert len(compared) == len(rows)
    return compared, {("deleted:" if r["is_deleted"] else "") + r["distinct_id"]: r for r in rows}


async def event_persons(project: Project, name: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """The events export: uuid -> (distinct id, person id, person properties)."""
    rows = await export_now(project, f"events-{name}-{project.id}")
    return {r["uuid"]: (r["distinct_id"], r["person_id"], r["person_properties"]) for r in rows}


async def test_anonymous_then_identify(project: Project) -> None:
    p = lambda d: pid(project, d)  # noqa: E731
    sent = await send(project, lambda c: [
        # A visitor whose logged-in id has no person yet: that id joins the visitor's person.
        c.capture("$pageview", distinct_id="anon-1", properties={"$set": {"plan": "free"}}),
        identify(c, "user-1", "anon-1", **{"$set": {"email": "one@example.com"}}),
        c.capture("$pageview", distinct_id="user-1"),
        # A visitor and a user who both have persons: the user's survives, the visitor's is merged into it.
        c.capture("$pageview", distinct_id="anon-2", properties={"$set": {"plan": "free", "from": "ad"},
                                                                  "$set_once": {"first": "anon"}}),
        c.capture("$pageview", distinct_id="user-2", properties={"$set": {"plan": "pro"}}),
        identify(c, "user-2", "anon-2", **{"$set": {"email": "two@example.com"}, "$set_once": {"first": "x"}}),
        c.capture("$pageview", distinct_id="anon-2"),
    ])  # fmt: skip
    rows, current = await persons(project, "identify")
    assert rows == {
        ("anon-1", p("anon-1"), 2, 0, False),  # created with $set (1), identified (2)
        ("user-1", p("anon-1"), 2, 0, False),
        ("anon-2", p("user-2"), 2, 1, False),  # its link moved (1); the survivor: max(1, 1) + 1
        ("user-2", p("user-2"), 2, 0, False),
        ("anon-2", p("anon-2"), 101, 0, True),  # the person merged away, once, deleted (version + 100)
    }
    assert current["user-1"]["properties"] == {"plan": "free", "email": "one@example.com"}
    assert current["user-2"]["properties"] == {"plan": "pro", "from": "ad", "first": "anon",
                                               "email": "two@example.com"}  # fmt: skip
    assert current["user-2"]["created_at"] == current["deleted:anon-2"]["created_at"]  # the earlier of the two
    events = await event_persons(project, "identify")
    assert [events[u][:2] for u in sent] == [
        ("anon-1", p("anon-1")), ("user-1", p("anon-1")), ("user-1", p("anon-1")),
        ("anon-2", p("anon-2")), ("user-2", p("user-2")), ("user-2", p("user-2")), ("anon-2", p("user-2")),
    ]  # fmt: skip
    assert events[sent[5]][2] == current["user-2"]["properties"]


async def test_identify_into_an_identified_person_is_refused_unless_dangerously(project: Project) -> None:
    p = lambda d: pid(project, d)  # noqa: E731
    sent = await send(project, lambda c: [
        identify(c, "alice", "anon-a"),  # no person yet: one person holds both ids, identified
        identify(c, "bob", "anon-b"),
        identify(c, "alice", "bob", **{"$set": {"tried": True}}),  # bob's person is identified: refused
        c.capture("$pageview", distinct_id="bob"),
    ])  # fmt: skip
    rows, current = await persons(project, "refused")
    assert rows == {
        ("alice", p("alice"), 1, 0, False), ("anon-a", p("alice"), 1, 0, False),
        ("bob", p("bob"), 0, 0, False), ("anon-b", p("bob"), 0, 0, False),
    }  # fmt: skip
    assert current["alice"]["properties"] == {"tried": True}
    events = await event_persons(project, "refused")
    assert [events[u][1] for u in sent] == [p("alice"), p("bob"), p("alice"), p("bob")]

    later = await send(project, lambda c: [
        c.capture("$merge_dangerously", distinct_id="alice", properties={"alias": "bob"}),
        c.capture("$pageview", distinct_id="anon-b"),
    ])  # fmt: skip
    rows, _ = await persons(project, "dangerously")
    assert rows == {
        ("alice", p("alice"), 2, 0, False), ("anon-a", p("alice"), 2, 0, False),
        ("bob", p("alice"), 2, 1, False), ("anon-b", p("alice"), 2, 1, False),  # every link of bob's person moved
        ("bob", p("bob"), 100, 0, True),
    }  # fmt: skip
    events = await event_persons(project, "dangerously")
    assert [events[u][1] for u in sent + later] == [p("alice"), p("bob"), p("alice"), p("bob"), p("alice"),
                                                    p("alice")]  # fmt: skip


async def test_an_id_joining_an_identified_person_leaves_the_person_as_it_was(project: Project) -> None:
    """A new visitor id that identifies as a user already identified joins that user's person, and PostHog leaves
    the person as it is (`addDistinctId` writes the link alone): its version does not move."""
    p = lambda d: pid(project, d)  # noqa: E731
    sent = await send(project, lambda c: [
        identify(c, "carol", "anon-1", **{"$set": {"plan": "pro"}}),  # one person of both ids, identified
        identify(c, "carol", "anon-2"),  # a new device: its id joins carol's person
        c.capture("$pageview", distinct_id="anon-2"),
    ])  # fmt: skip
    rows, current = await persons(project, "joined")
    assert rows == {("carol", p("carol"), 0, 0, False), ("anon-1", p("carol"), 0, 0, False),
                    ("anon-2", p("carol"), 0, 0, False)}  # fmt: skip
    assert current["anon-2"]["properties"] == {"plan": "pro"}
    events = await event_persons(project, "joined")
    assert [events[u][:2] for u in sent] == [("carol", p("carol")), ("carol", p("carol")), ("anon-2", p("carol"))]


async def _waiting_on_a_row(pool: Any, marker: str) -> None:
    """Until a statement containing `marker` waits for a row lock (at most 20 s). `pg_stat_activity` shows the
    first 1,024 bytes of a statement: the marker is near its start."""
    query = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
             "AND position($1 in query) > 0")  # fmt: skip
    for _ in range(400):
        if await pool.fetchval(query, marker):
            return
        await asyncio.sleep(0.05)
    activity = await pool.fetch(
        "SELECT wait_event_type, left(query, 90) FROM pg_stat_activity WHERE datname = current_database()"
    )
    raise AssertionError(f"no statement with {marker!r} waited for the row: {activity}")


@pytest.mark.parametrize("first", ["join", "merge"])
async def test_an_id_joining_a_person_that_a_concurrent_batch_merges_away_follows_the_merge(
    project: Project, first: str
) -> None:
    """One batch adds a new id to bob's person while another merges that person into alice's, both statements
    waiting for bob's row, then let go in either order: the new id ends with alice's person. The join leaves
    bob's person as it is (no version), yet the merge cannot miss the new link: whichever comes second is
    refused and written again."""
    p = lambda d: pid(project, d)  # noqa: E731
    await send(project, lambda c: [identify(c, "alice", "alice-anon"), identify(c, "bob", "bob-anon")])
    batches = {
        "join": (ingestion.parse([{"event": "$identify", "distinct_id": "bob",
                                   "properties": {"$anon_distinct_id": "bob-phone"}}]).events, "linked AS"),
        "merge": (ingestion.parse([{"event": "$merge_dangerously", "distinct_id": "alice",
                                    "properties": {"alias": "bob"}}]).events, "jsonb_to_recordset"),
    }  # fmt: skip
    pool = await db.create_pool(project.stack.settings.database_url, min_size=1, max_size=4)
    try:
        async with pool.acquire() as holder, holder.transaction():
            await holder.execute("SELECT 1 FROM persons WHERE id = $1 FOR UPDATE", uuid.UUID(p("bob")))
            writes = []
            for name in (first, *(set(batches) - {first})):
                events, marker = batches[name]
                writes.append(asyncio.create_task(event_store.write(pool, project.id, events)))
                await _waiting_on_a_row(pool, marker)
        await asyncio.gather(*writes)
        links = await pool.fetch("SELECT distinct_id, person_id::text FROM person_distinct_ids WHERE team_id = $1",
                                 project.id)  # fmt: skip
    finally:
        await pool.close()
    assert dict(links) == {d: p("alice") for d in ("alice", "alice-anon", "bob", "bob-anon", "bob-phone")}


async def test_alias_chains_end_in_one_person(project: Project) -> None:
    p = lambda d: pid(project, d)  # noqa: E731
    sent = await send(project, lambda c: [
        c.alias(previous_id="a", distinct_id="b"),  # `$create_alias` of distinct id "a" with alias "b"
        c.alias(previous_id="b", distinct_id="c"),
        c.capture("$pageview", distinct_id="d", properties={"$set": {"d": 1}}),
        c.alias(previous_id="c", distinct_id="d"),  # d's person (not identified) merges into a's
        *[c.capture("$pageview", distinct_id=d) for d in "abcd"],
    ])  # fmt: skip
    rows, current = await persons(project, "alias")
    assert rows == {
        ("a", p("a"), 2, 0, False), ("b", p("a"), 2, 0, False), ("c", p("a"), 2, 0, False),
        ("d", p("a"), 2, 1, False), ("d", p("d"), 101, 0, True),
    }  # fmt: skip
    assert current["a"]["properties"] == {"d": 1}
    events = await event_persons(project, "alias")
    assert [events[u][1] for u in sent] == [p("a"), p("a"), p("d"), p("a"), p("a"), p("a"), p("a"), p("a")]


@pytest.mark.parametrize(
    "illegal", ["anonymous", "GUEST", '"undefined"', "'null'", "NaN", "None", "0", "  ", "[object Object]"]
)
async def test_a_merge_naming_an_illegal_id_does_nothing(
    project: Project, illegal: str, caplog: pytest.LogCaptureFixture
) -> None:
    p = lambda d: pid(project, d)  # noqa: E731
    caplog.set_level(logging.WARNING, logger="api.routes.capture")
    sent = await send(project, lambda c: [
        c.capture("$pageview", distinct_id="visitor"),
        identify(c, "user", illegal),
        c.capture("$create_alias", distinct_id="visitor", properties={"alias": illegal}),
    ])  # fmt: skip
    rows, _ = await persons(project, "illegal")
    assert rows == {("visitor", p("visitor"), 0, 0, False), ("user", p("user"), 0, 0, False)}
    events = await event_persons(project, "illegal")
    assert {events[u][1] for u in sent[:2]} == {p("visitor"), p("user")}
    warnings = [r.getMessage() for r in caplog.records if "cannot_merge_with_illegal_distinct_id" in r.getMessage()]
    assert len(warnings) == 2 and all(f"team {project.id}:" in w and repr(illegal) in w for w in warnings)


async def test_unset_comes_last(project: Project) -> None:
    sent = await send(project, lambda c: [
        c.capture("signed up", distinct_id="u", properties={"$set": {"a": 1, "b": 2, "c": 3}}),
        c.capture("changed", distinct_id="u", properties={"$unset": ["a"], "$set": {"c": 4, "b": 5}}),
        c.capture("changed", distinct_id="u", properties={"$set": {"b": 6}, "$unset": ["b"]}),
    ])  # fmt: skip
    rows, current = await persons(project, "unset")
    assert rows == {("u", pid(project, "u"), 3, 0, False)}
    assert current["u"]["properties"] == {"c": 4}
    events = await event_persons(project, "unset")
    assert [events[u][2] for u in sent] == [{"a": 1, "b": 2, "c": 3}, {"b": 5, "c": 4}, {"c": 4}]


async def test_an_event_without_a_person_profile_makes_no_person(project: Project) -> None:
    ghost = {"$process_person_profile": False, "$set": {"a": 1}}
    sent = await send(project, lambda c: [
        c.capture("$pageview", distinct_id="ghost", properties=ghost),
        c.capture("$pageview", distinct_id="someone"),
    ])  # fmt: skip
    stored = await project.stack.pool.fetchval(
        "SELECT count(*) FROM person_distinct_ids WHERE team_id = $1 AND distinct_id = 'ghost'", project.id
    )
    assert stored == 0
    rows, _ = await persons(project, "personless")
    assert rows == {("someone", pid(project, "someone"), 0, 0, False)}
    events = await event_persons(project, "personless")
    # PostHog's deterministic id: a UUIDv5 of "<team id>:<distinct id>" in its namespace
    expected = str(uuid.uuid5(uuid.UUID("932979b4-65c3-4424-8467-0b66ec27bc22"), f"{project.id}:ghost"))
    assert events[sent[0]] == ("ghost", expected, {})
    later = await send(project, lambda c: [c.capture("$pageview", distinct_id="ghost")])
    events = await event_persons(project, "personless-later")
    assert events[later[0]][1] == expected  # the person made later has that id: its events join


async def test_concurrent_batches_merging_the_same_persons(project: Project) -> None:
    """Two clients post at once a batch each that merges into the same persons, in opposite orders."""
    p = lambda d: pid(project, d)  # noqa: E731
    users = range(16)  # the rows of both exports stay within one run's record limit in tests (100)
    await send(project, lambda c: [c.capture("seen", distinct_id=f"{kind}-{i}") for i in users
                                   for kind in ("u", "a", "b")])  # fmt: skip

    def batch(kind: str, order: list[int]) -> list[str]:
        client = _client(project, flush_at=1000, flush_interval=0.5, sync_mode=False)
        try:
            made = [identify(client, f"u-{i}", f"{kind}-{i}", **{"$set": {kind: i}}) for i in order]
            client.flush()
            return [str(u) for u in made if u]
        finally:
            client.shutdown()

    sent_a, sent_b = await asyncio.gather(
        asyncio.to_thread(batch, "a", list(users)), asyncio.to_thread(batch, "b", list(reversed(users)))
    )
    rows, current = await persons(project, "concurrent")
    live = {(d, person) for d, person, _, _, deleted in rows if not deleted}
    assert live == {(f"{kind}-{i}", p(f"u-{i}")) for i in users for kind in ("u", "a", "b")}
    deleted = {(d, person) for d, person, _, _, gone in rows if gone}
    assert deleted == {(f"{kind}-{i}", p(f"{kind}-{i}")) for i in users for kind in ("a", "b")}
    assert all(current[f"u-{i}"]["properties"] == {"a": i, "b": i} for i in users)
    assert all(current[f"u-{i}"]["person_version"] == 2 for i in users)  # two merges: max(0, 0) + 1, then + 1
    events = await event_persons(project, "concurrent")
    for i, (ua, ub) in enumerate(zip(sent_a, reversed(sent_b), strict=True)):
        assert events[ua][:2] == (f"u-{i}", p(f"u-{i}")) and events[ub][:2] == (f"u-{i}", p(f"u-{i}"))


@pytest.mark.parametrize("kind", ["plain", "merging"])
async def test_a_batch_that_keeps_losing_races_is_a_503_and_nothing_is_written(project: Project, kind: str) -> None:
    """PostgreSQL reports a deadlock on every write of this project's persons (a trigger, as a crowd of
    concurrent batches would): capture gives up after its attempts with a 503 that says to send again, stores
    nothing of the payload, and the same payload sent again once the crowd is gone is stored whole."""
    batch: list[dict[str, Any]] = [{"event": "$pageview", "distinct_id": "visitor", "uuid": str(uuid.uuid4())}]
    if kind == "merging":
        batch.append({"event": "$identify", "distinct_id": "user", "uuid": str(uuid.uuid4()),
                      "properties": {"$anon_distinct_id": "visitor"}})  # fmt: skip
    body = {"api_key": project.token, "batch": batch}
    pool = project.stack.runtime.pool
    trigger = f"deadlocks_{project.id}"
    await pool.execute(f"""
        CREATE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'a crowd of batches' USING ERRCODE = 'deadlock_detected'; END $$;
        CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE ON persons FOR EACH ROW
        WHEN (NEW.team_id = {int(project.id)}) EXECUTE FUNCTION {trigger}();
    """)  # fmt: skip
    try:
        async with project.stack.http.post(project.url("/batch/"), json=body) as response:
            status, answer, retry_after = response.status, await response.json(), response.headers.get("Retry-After")
    finally:
        await pool.execute(f"DROP TRIGGER {trigger} ON persons; DROP FUNCTION {trigger}()")
    assert (status, answer["code"], answer["type"], retry_after) == (503, "capture_contended", "server_error", "1")
    assert "again" in answer["detail"]
    uuids = [event["uuid"] for event in batch]
    stored = "SELECT count(*) FROM events WHERE team_id = $1 AND uuid = ANY($2::uuid[])"
    assert await pool.fetchval(stored, project.id, uuids) == 0
    assert await pool.fetchval("SELECT count(*) FROM person_distinct_ids WHERE team_id = $1", project.id) == 0
    async with project.stack.http.post(project.url("/batch/"), json=body) as response:
        assert response.status == 200, await response.text()
    assert await pool.fetchval(stored, project.id, uuids) == len(batch)
