"""The embedded event store's tables as capture writes them: `events`, `persons`, `person_distinct_ids`.

(The sources in `connectors/sources` read them.) A batch is stored in a few statements whatever its size,
never one per event, and nothing holds a lock per event, so one large batch cannot exhaust PostgreSQL's lock
table for everyone. `$set`/`$set_once` are applied in event order in Python, from the persons as read.

A batch whose distinct ids all have persons takes two statements, optimistically: one reads the persons;
one (atomic, as any single statement) updates the changed persons and inserts the events, provided every
changed person still has the `version` read (else it refuses to apply, `_RACED`). A batch with new distinct
ids does the same in a transaction that first claims them (a person each, with no properties yet; another
batch claiming one meanwhile waits for this one, and the other way round). When batches keep meeting, the
transaction locks the batch's persons (row locks) before reading them, and nothing can overtake it. Either
way each distinct id has one person and no `$set` is lost. Rows are taken in one order (distinct ids, person
ids, event uuids) so that concurrent batches wait rather than deadlock (one that does anyway is written again).
Events are inserted as new (a client seldom sends one again): a batch that repeats a stored event fails on the
events' key and is written again at once, dropping the events already stored, so each uuid is stored once.

The events travel as one JSON document per statement (an array of positional rows, properties included),
which orjson encodes in native code and PostgreSQL parses once: per event, Python builds one small list and
nothing more. A statement takes at most `CHUNK_EVENTS` events; a larger batch is several, in one transaction.
"""

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import orjson

from batch_exports.services.person_ids import person_id
from batch_exports.store import person_merges

OPTIMISTIC_ATTEMPTS = 2
ATTEMPTS = 5
MERGE_ATTEMPTS = 10
"""A batch that merges persons is written again when another batch won a race to one of its new ids."""
INLINE_EVENTS = 2000
"""Batches up to this many events are prepared on the event loop; larger ones in a thread."""
CHUNK_EVENTS = 10_000
"""Events per statement: the document of a chunk stays far below PostgreSQL's limits for one value."""
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(slots=True)
class CapturedEvent:
    uuid: uuid.UUID
    event: str
    distinct_id: str
    properties: dict[str, Any]
    timestamp: datetime
    set: dict[str, Any] = field(default_factory=dict)
    set_once: dict[str, Any] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    merge: str | None = None
    """The distinct id this event merges into its own (`$identify`, `$create_alias`, `$merge_dangerously`), once
    capture found the merge legal."""
    dangerous: bool = False
    """A `$merge_dangerously`: it may merge away an identified person."""
    person_profile: bool = True
    """False for `$process_person_profile: false`: no person is made or changed for it."""


_PERSONS = """
    SELECT d.distinct_id, p.id::text AS id, p.properties::text AS properties, p.version
    FROM person_distinct_ids d
         CROSS JOIN LATERAL (SELECT id, properties, version FROM persons WHERE id = d.person_id LIMIT 1) p
    WHERE d.team_id = $1 AND d.distinct_id = ANY($2::text[])
"""
"""The batch's persons, each looked up by its key (`LIMIT 1` keeps the planner from joining instead, which for a
small persons table reads all of it for every batch)."""
_RACED = "capture raced another batch"


class Contended(Exception):
    """Every attempt lost to concurrent batches changing the same persons. Nothing of the payload was written:
    sent again a moment later, it is stored whole."""


class _Raced(Exception):
    """A merging batch read a person another batch merged away meanwhile: it is written again."""


_REPEATS = "/* repeats */"
_DROP_REPEATS = "ON CONFLICT (team_id, uuid) DO NOTHING"


def _insert_events(document: str, condition: str = "") -> str:
    """The insert of a chunk's events from its JSON document, in the document's order (by uuid: concurrent
    batches that share uuids wait for each other rather than deadlock). As written, every uuid must be new: a
    repeated one fails the statement on the events' key (`_EVENTS_KEY`), and the batch is written again with
    `_REPEATS` made `_DROP_REPEATS` (`_statement`), which drops the events already stored. Checking each uuid
    first costs PostgreSQL an index search per event; a client sends an event again rarely."""
    return f"""
        INSERT INTO events (uuid, team_id, event, distinct_id, properties, person_id, person_properties, timestamp,
                            created_at, elements_chain)
        SELECT (e ->> 0)::uuid, $1, e ->> 1, e ->> 2, e -> 3, (e ->> 4)::uuid, e -> 5, (e ->> 6)::timestamptz, now(),
               e ->> 7
        FROM jsonb_array_elements(convert_from({document}, 'UTF8')::jsonb) AS e
        {condition}
        {_REPEATS}
        RETURNING 1
    """


_EVENTS_KEY = "events_pkey"


def _statement(sql: str, repeats: bool) -> str:
    """`sql` for a batch whose events are all new, or (`repeats`) that drops the events already stored."""
    return sql.replace(_REPEATS, _DROP_REPEATS if repeats else "")


_WRITE = f"""
    WITH changed AS (
        UPDATE persons p SET properties = c.properties::jsonb, version = p.version + 1, updated_at = clock_timestamp()
        FROM unnest($2::uuid[], $3::text[], $4::bigint[]) AS c(id, properties, version)
        WHERE p.id = c.id AND p.version = c.version
        RETURNING 1
    ), inserted AS ({_insert_events("$5")})
    SELECT CASE WHEN (SELECT count(*) FROM changed) = cardinality($2::uuid[]) THEN (SELECT count(*) FROM inserted)
                ELSE ('{_RACED}: ' || (SELECT count(*) FROM changed) || ' of ' || cardinality($2::uuid[])
                      || ' persons changed')::bigint END
"""
"""Everything a chunk writes, or (when another batch changed one of its persons since they were read) nothing:
the failed cast aborts the whole statement. `$5` is the chunk's events, `[[uuid, event, distinct_id, properties,
person_id, person_properties, timestamp, elements_chain], ...]` as UTF-8 JSON (bytes: asyncpg sends them as
they are)."""
_CLAIM = """
    WITH claimed AS (
        INSERT INTO person_distinct_ids (team_id, distinct_id, person_id)
        SELECT $1, n.distinct_id, n.id FROM unnest($2::uuid[], $3::text[]) AS n(id, distinct_id) ORDER BY 2
        ON CONFLICT (team_id, distinct_id) DO NOTHING
        RETURNING person_id
    )
    INSERT INTO persons (id, team_id) SELECT person_id, $1 FROM claimed
"""
_LOCK_PERSONS = """
    SELECT d.distinct_id, p.id::text AS id, p.properties::text AS properties, p.version
    FROM person_distinct_ids d JOIN persons p ON p.id = d.person_id
    WHERE d.team_id = $1 AND d.distinct_id = ANY($2::text[])
    ORDER BY p.id FOR UPDATE OF p
"""

_READ_MERGING = """
    SELECT d.distinct_id, d.version AS link_version, p.id::text AS id, p.properties::text AS properties, p.version,
           p.is_identified, p.created_at, p.is_deleted, p.xmin::text AS xmin
    FROM person_distinct_ids d
         CROSS JOIN LATERAL (SELECT id, properties, version, is_identified, created_at, is_deleted, xmin FROM persons
                             WHERE id = d.person_id LIMIT 1) p
    WHERE d.team_id = $1 AND d.distinct_id = ANY($2::text[])
"""
"""The persons of a merging batch's ids (its events' and the ids they merge), as `_PERSONS` reads them."""
_LOCK_MERGING = """
    SELECT d.distinct_id, d.version AS link_version, p.id::text AS id, p.properties::text AS properties, p.version,
           p.is_identified, p.created_at, p.is_deleted, p.xmin::text AS xmin
    FROM person_distinct_ids d JOIN persons p ON p.id = d.person_id
    WHERE d.team_id = $1 AND d.distinct_id = ANY($2::text[])
    ORDER BY p.id FOR UPDATE OF p
"""
"""The same, locked in id order (when batches keep meeting). A person merged away meanwhile reads as deleted
(its link as read): the batch is then written again."""
_PERSONS_DOCUMENT = """
    c AS (
        SELECT * FROM jsonb_to_recordset(convert_from({persons}, 'UTF8')::jsonb) AS c(
            id uuid, properties jsonb, version bigint, read_version bigint, read_xmin xid, is_identified boolean,
            created_at timestamptz, is_deleted boolean, deleted_distinct_id text, deleted_distinct_id_version bigint)
    )"""
_MADE = """
    made AS (
        INSERT INTO persons (id, team_id, properties, version, is_identified, created_at, is_deleted,
                             deleted_distinct_id, deleted_distinct_id_version)
        SELECT id, $1, properties, version, is_identified, coalesce(created_at, now()), is_deleted,
               deleted_distinct_id, deleted_distinct_id_version
        FROM c WHERE read_version IS NULL ORDER BY id
        ON CONFLICT (id) DO NOTHING
        RETURNING 1
    )"""
_CHANGED = """
    changed AS (
        UPDATE persons p SET properties = c.properties, version = c.version, is_identified = c.is_identified,
                             created_at = c.created_at, is_deleted = c.is_deleted,
                             deleted_distinct_id = c.deleted_distinct_id,
                             deleted_distinct_id_version = c.deleted_distinct_id_version,
                             updated_at = clock_timestamp()
        FROM c WHERE c.read_version IS NOT NULL AND p.id = c.id AND p.version = c.read_version
                 AND (NOT c.is_deleted OR p.xmin = c.read_xmin)  -- merged away: no id joined it meanwhile
                 AND p.id = ANY(ARRAY(SELECT id FROM c))  -- by the key: a join would read all persons
        RETURNING 1
    )"""
_JOINED = """
    joined AS (
        UPDATE persons p SET version = p.version FROM unnest({joined}::uuid[]) AS j(id)
        WHERE p.id = j.id AND NOT p.is_deleted
        RETURNING 1
    )"""
"""The persons new ids join, written as they are (no version, no `updated_at`: PostHog leaves a person as it is
when it adds a distinct id): a batch that merges one of them away concurrently then finds its row written since
it read it (`_CHANGED`'s `xmin`) and refuses, or, when it came first, this statement finds the person deleted and
refuses. A row lock alone would not do: the merging statement, once the lock is released, would move the links
its snapshot holds, without the one this batch added."""
_MOVED = """
    moved AS (
        UPDATE person_distinct_ids d SET person_id = m.survivor, version = d.version + 1,
                                         updated_at = clock_timestamp()
        FROM unnest({merged}::uuid[], {survivors}::uuid[]) AS m(merged, survivor)
        WHERE d.person_id = m.merged AND d.team_id = $1
        RETURNING 1
    )"""
_LINKED = """
    linked AS (
        INSERT INTO person_distinct_ids (team_id, distinct_id, person_id, version)
        SELECT $1, l.distinct_id, l.person_id, l.version
        FROM unnest({ids}::text[], {persons}::uuid[], {versions}::bigint[]) AS l(distinct_id, person_id, version)
        ORDER BY 2
        ON CONFLICT (team_id, distinct_id) DO NOTHING
        RETURNING 1
    )"""


@dataclass(frozen=True, slots=True)
class _Shape:
    """Which parts a merging batch's statement has: persons made, persons changed, links moved, new links. Each
    part costs PostgreSQL planning and a scan even when it has no rows, so a chunk's statement holds only its own
    (at most 32 shapes, each prepared once per connection)."""

    made: bool = False
    changed: bool = False
    moves: bool = False
    links: bool = False
    joins: bool = False

    @classmethod
    def of(cls, plan: person_merges.Plan) -> "_Shape":
        made = sum(1 for person in plan.persons if person["read_version"] is None)
        return cls(made > 0, made < len(plan.persons), bool(plan.moves[0]), bool(plan.links[0]), bool(plan.joined))

    def arguments(self, plan: person_merges.Plan) -> list[Any]:
        """The statement's arguments after the team (`$1`), before the chunk's events (the last)."""
        return [
            *([orjson.dumps(plan.persons)] if self.made or self.changed else []),
            *(plan.moves if self.moves else ()),
            *(plan.links if self.links else ()),
            *([plan.joined] if self.joins else []),
        ]


@functools.cache
def _merge_statement(shape: _Shape, repeats: bool) -> str:
    """A merging batch's writes, all or none: the persons made and changed (a JSON array of
    `person_merges.Person.row()`), the links moved from persons merged away, the new links and the events
    (inserted only once the persons and links are: a statement that refuses wastes little). Another batch that
    took one of its new ids or persons first makes it refuse (`_RACED`)."""
    numbers = iter(range(2, 11))
    parts, written, counted = [], [], []
    if shape.made or shape.changed:
        parts.append(_PERSONS_DOCUMENT.format(persons=f"${next(numbers)}"))
        parts += [_MADE] if shape.made else []
        parts += [_CHANGED] if shape.changed else []
        persons = " + ".join(f"(SELECT count(*) FROM {part})" for part in ("made", "changed")
                             if getattr(shape, part))  # fmt: skip
        written.append(f"{persons} = (SELECT count(*) FROM c)")
        counted.append(f"({persons}) || ' of ' || (SELECT count(*) FROM c) || ' persons'")
    if shape.moves:
        parts.append(_MOVED.format(merged=f"${next(numbers)}", survivors=f"${next(numbers)}"))
    if shape.links:
        ids = f"${next(numbers)}"
        parts.append(_LINKED.format(ids=ids, persons=f"${next(numbers)}", versions=f"${next(numbers)}"))
        written.append(f"(SELECT count(*) FROM linked) = cardinality({ids}::text[])")
        counted.append(f"(SELECT count(*) FROM linked) || ' of ' || cardinality({ids}::text[]) || ' new ids'")
    if shape.joins:
        joined = f"${next(numbers)}"
        parts.append(_JOINED.format(joined=joined))
        written.append(f"(SELECT count(*) FROM joined) = cardinality({joined}::uuid[])")
        counted.append(f"(SELECT count(*) FROM joined) || ' of ' || cardinality({joined}::uuid[]) || ' joined'")
    events = f"${next(numbers)}"
    if not written:  # nothing but events (a later chunk)
        return _statement(f"WITH inserted AS ({_insert_events(events)}) SELECT count(*) FROM inserted", repeats)
    check = " AND ".join(written)
    parts.append(f"checked AS (SELECT {check} AS written)")
    parts.append(f"inserted AS ({_insert_events(events, 'WHERE (SELECT written FROM checked)')})")
    report = " || ', ' || ".join(counted)
    return _statement(
        f"""WITH {", ".join(parts)}
        SELECT CASE WHEN (SELECT written FROM checked) THEN (SELECT count(*) FROM inserted)
                    ELSE ('{_RACED}: ' || {report} || ' written')::bigint END""",
        repeats,
    )


async def _merge(
    conn: asyncpg.Connection, team_id: int, events: list[CapturedEvent], locking: bool, repeats: bool
) -> None:
    """A batch with merges: its persons read (or locked), replayed in Python (`person_merges.plan`), written by
    one statement per chunk of events (the persons and links with the first). Unlocked, the statement refuses
    when another batch changed one of the persons meanwhile (every person a merge changes has its version
    checked; one an id only joins is guarded, `_JOINED`)."""
    rows = await conn.fetch(_LOCK_MERGING if locking else _READ_MERGING, team_id, person_merges.lookup_ids(events))
    if any(row["is_deleted"] for row in rows):
        raise _Raced("a person read was merged away meanwhile")
    plan = await _off_loop(person_merges.plan, team_id, events, rows, size=len(events))
    for warning in plan.refused:
        log.warning("capture: team %s: %s", team_id, warning)
    shape = _Shape.of(plan)
    arguments = shape.arguments(plan)
    for start in range(0, len(plan.events), CHUNK_EVENTS):
        chunk = _document(sorted(plan.events[start : start + CHUNK_EVENTS], key=_by_uuid))
        await conn.fetchval(_merge_statement(shape, repeats), team_id, *arguments, chunk)
        shape, arguments = _Shape(), []


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


@dataclass
class _Person:
    id: str
    """As text (which sorts as the uuid does): orjson writes it as it is."""
    properties: dict[str, Any]
    version: int


def _fold(person: _Person | None, events: list[CapturedEvent]) -> list[dict[str, Any]]:
    """Apply the person's events' `$set_once`, `$set` and `$unset` in order; the properties after each event
    (an event without a person profile changes nothing)."""
    properties: dict[str, Any] = person.properties if person else {}
    after = []
    for event in events:
        if event.person_profile and (event.set or event.set_once or event.unset):
            properties = {**event.set_once, **properties, **event.set}
            for key in event.unset:
                properties.pop(key, None)
        after.append(properties)
    return after


async def write(pool: asyncpg.Pool, team_id: int, events: list[CapturedEvent]) -> None:
    """Store every event of a payload, or none of them."""
    if not events:
        return
    by_id: dict[str, list[CapturedEvent]] = {}
    for event in events:
        by_id.setdefault(event.distinct_id, []).append(event)
    distinct_ids = sorted(by_id)
    profiled = {event.distinct_id for event in events if event.person_profile}
    merging = any(event.merge is not None for event in events)
    attempts = MERGE_ATTEMPTS if merging else ATTEMPTS
    repeats = False  # whether the batch repeats events already stored (then it drops them)
    attempt = 0
    async with pool.acquire() as conn:
        while attempt < attempts:
            attempt += 1
            locking = attempt > OPTIMISTIC_ATTEMPTS
            try:
                if merging and not locking and len(events) <= CHUNK_EVENTS:
                    await _merge(conn, team_id, events, locking, repeats)  # one statement after the read: atomic
                    return
                if merging:
                    async with conn.transaction():
                        await _merge(conn, team_id, events, locking, repeats)
                    return
                rows = [] if locking else await conn.fetch(_PERSONS, team_id, distinct_ids)
                if not locking and profiled <= {r["distinct_id"] for r in rows} and len(events) <= CHUNK_EVENTS:
                    await _apply(conn, team_id, events, by_id, rows, repeats)
                    return
                async with conn.transaction():
                    known = {row["distinct_id"] for row in rows}
                    new = [d for d in distinct_ids if d not in known and d in profiled]
                    await conn.execute(_CLAIM, team_id, [person_id(team_id, d) for d in new], new)
                    rows = await conn.fetch(_LOCK_PERSONS if locking else _PERSONS, team_id, distinct_ids)
                    await _apply(conn, team_id, events, by_id, rows, repeats)
                return
            except (asyncpg.DeadlockDetectedError, asyncpg.UniqueViolationError) as error:
                if getattr(error, "constraint_name", None) == _EVENTS_KEY and not repeats:
                    repeats, attempt = True, attempt - 1  # no race lost: written again at once, dropping them
                    continue
                if attempt == attempts:
                    raise Contended(f"{attempt} attempts lost to concurrent batches") from error
            except _Raced as error:
                if attempt == attempts:
                    raise Contended(f"{attempt} attempts lost to concurrent batches") from error
            except asyncpg.InvalidTextRepresentationError as error:
                if _RACED not in str(error):
                    raise
                if attempt == attempts:
                    raise Contended(f"{attempt} attempts lost to concurrent batches") from error


async def _apply(
    conn: asyncpg.Connection, team_id: int, events: list[CapturedEvent], by_id: dict[str, list[CapturedEvent]],
    rows: list[asyncpg.Record], repeats: bool,
) -> None:  # fmt: skip
    """The batch's statements: the changed persons go with the first chunk (more than one only in a transaction)."""
    changed, chunks = await _off_loop(_arguments, team_id, events, by_id, rows, size=len(events))
    statement = _statement(_WRITE, repeats)
    for chunk in chunks:
        await conn.fetchval(statement, team_id, *changed, chunk)
        changed = ([], [], [])


async def _off_loop(function: Callable[..., T], *args: Any, size: int) -> T:
    """`function(*args)` in a thread for a large batch (the event loop goes on serving), else right here."""
    return await asyncio.to_thread(function, *args) if size > INLINE_EVENTS else function(*args)


def _arguments(
    team_id: int, events: list[CapturedEvent], by_id: dict[str, list[CapturedEvent]], rows: list[asyncpg.Record]
) -> tuple[tuple[list[str], list[str], list[int]], list[bytes]]:
    """The changed persons (ids, properties, the versions read) and the documents of the events, a chunk each,
    every event with its person and that person's properties after it. Every distinct id of an event with a
    person profile has its person in `rows`; one without (`$process_person_profile: false` only) carries
    PostHog's deterministic person id."""
    persons = {row["distinct_id"]: _Person(row["id"], orjson.loads(row["properties"]), row["version"])
               for row in rows}  # fmt: skip
    after = {d: _fold(persons.get(d), by_id[d]) for d in by_id}
    changed = sorted((d for d in persons if after[d][-1] != persons[d].properties), key=lambda d: persons[d].id)
    following = {d: iter(after[d]) for d in by_id}
    ids = {d: persons[d].id if d in persons else str(person_id(team_id, d)) for d in by_id}
    documents = []
    for start in range(0, len(events), CHUNK_EVENTS):
        chunk = []
        for event in events[start : start + CHUNK_EVENTS]:
            d = event.distinct_id
            chain = event.properties.get("$elements_chain")
            chunk.append((event.uuid, event.event, d, event.properties, ids[d], next(following[d]),
                          event.timestamp, chain if isinstance(chain, str) else ""))  # fmt: skip
        documents.append(_document(sorted(chunk, key=_by_uuid)))
    persons_changed = ([persons[d].id for d in changed], [_json(after[d][-1]) for d in changed],
                       [persons[d].version for d in changed])  # fmt: skip
    return persons_changed, documents


def _by_uuid(row: tuple[Any, ...]) -> int:
    """An event row's place in a document: by uuid, as PostgreSQL orders uuids (their bytes)."""
    return row[0].int  # type: ignore[no-any-return]


def _document(rows: list[tuple[Any, ...]]) -> bytes:
    try:
        return orjson.dumps(rows)
    except orjson.JSONEncodeError:  # properties nested near the body's limit: each encoded on its own first
        return orjson.dumps([(*row[:3], _fragment(row[3]), row[4], _fragment(row[5]), *row[6:]) for row in rows])


def _fragment(value: Any) -> orjson.Fragment:
    return orjson.Fragment(orjson.dumps(value))
