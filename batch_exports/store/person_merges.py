"""A batch's persons as PostHog's ingestion leaves them: merges, `$set_once`/`$set`/`$unset`, personless events.

`plan` replays the batch's events in order over the persons its distinct ids had (read, locked, by the caller)
and returns what one statement then writes. As PostHog (`nodejs/src/worker/ingestion/persons/`):

- A merge (`CapturedEvent.merge`, already legal and of two different ids) with no person yet makes one person
  of both ids; when one id has a person, the other joins it; when both have different persons, the person of
  the event's `distinct_id` survives: properties merged (the survivor's win), `created_at` the earlier,
  `version` the larger plus one; the other person's links move to it (each link's version bumped) and it is
  deleted (its version plus 100, as PostHog's deletion row). A merge that would take away a person already
  identified is refused unless the event is `$merge_dangerously`. Every merge marks the event's person
  identified.
- Then the event's `$set_once` (where absent), `$set` (overwrites) and `$unset`. A person read that changes
  gets its version plus one (once per batch, or the merge's). An id joining a person does not change it (PostHog's
  `addDistinctId` leaves the person as it is; marking it identified, when it was not, does): the person is only
  `joined`, which the write guards so that a concurrent batch cannot merge it away meanwhile (`event_store`).
- An event with `$process_person_profile: false` changes nothing: it carries its distinct id's person, or
  PostHog's deterministic person id when there is none.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from batch_exports.services.person_ids import person_id

if TYPE_CHECKING:
    from batch_exports.store.event_store import CapturedEvent

DELETED_VERSION_STEP = 100
"""PostHog's deletion row has the person's version plus 100 (`version is incremented by 100 for deletions`)."""


@dataclass
class Person:
    id: str
    properties: dict[str, Any]
    version: int
    is_identified: bool
    created_at: datetime | None
    """None for a person this batch makes (the statement's `now()`)."""
    read_version: int | None = None
    """The version read (None: a new person)."""
    read_xmin: str | None = None
    """The row version read (PostgreSQL's `xmin`): a person merged away is written only if no other batch wrote
    its row since, not even to guard an id joining it."""
    changed: bool = False
    bumped: bool = False
    joined: bool = False
    """An id of this batch joined the person (read, not otherwise changed by the join)."""
    is_deleted: bool = False
    deleted_distinct_id: str | None = None
    deleted_distinct_id_version: int | None = None

    def row(self) -> dict[str, Any]:
        return {"id": self.id, "properties": self.properties, "version": self.version,
                "read_version": self.read_version, "read_xmin": self.read_xmin, "is_identified": self.is_identified,
                "created_at": self.created_at, "is_deleted": self.is_deleted,
                "deleted_distinct_id": self.deleted_distinct_id,
                "deleted_distinct_id_version": self.deleted_distinct_id_version}  # fmt: skip


@dataclass
class Plan:
    persons: list[dict[str, Any]]
    """Every person made or changed, in id order (`read_version` None for a new one)."""
    moves: tuple[list[str], list[str]]
    """(merged-away person, survivor) pairs: every link of the first now points at the second."""
    links: tuple[list[str], list[str], list[int]]
    """New links (distinct id, person, version), in distinct-id order."""
    events: list[tuple[Any, ...]]
    """Each event's row: (uuid, event, distinct id, properties, person id, person properties, timestamp, chain)."""
    joined: list[str] = field(default_factory=list)
    """Persons read that new links join and the batch does not otherwise change, in id order."""
    refused: list[str] = field(default_factory=list)
    """Merges refused (an identified person would be merged away), as warnings."""

    @property
    def updates(self) -> int:
        return sum(1 for person in self.persons if person.get("read_version") is not None)


class _Batch:
    def __init__(self, team_id: int, rows: list[Any]) -> None:
        self.team_id = team_id
        self.links: dict[str, str] = {}
        self.link_versions: dict[str, int] = {}
        self.new_links: set[str] = set()
        self.moved: set[str] = set()
        self.persons: dict[str, Person] = {}
        self.merged_into: dict[str, str] = {}
        for distinct_id, link_version, pid, properties, version, is_identified, created_at, _, xmin in rows:
            self.links[distinct_id] = pid
            self.link_versions[distinct_id] = link_version
            if pid not in self.persons:  # a person of several ids is read once per id: decoded once
                self.persons[pid] = Person(pid, orjson.loads(properties), version, is_identified, created_at,
                                           read_version=version, read_xmin=xmin)  # fmt: skip

    def person_of(self, distinct_id: str) -> Person | None:
        pid = self.links.get(distinct_id)
        return None if pid is None else self.persons[pid]

    def create(self, distinct_id: str) -> Person:
        person = Person(str(person_id(self.team_id, distinct_id)), {}, 0, False, None)
        self.persons[person.id] = person
        self.link(distinct_id, person)
        return person

    def link(self, distinct_id: str, person: Person) -> None:
        self.links[distinct_id] = person.id
        self.new_links.add(distinct_id)
        self.link_versions[distinct_id] = 0

    def change(self, person: Person) -> None:
        person.changed = True
        if person.read_version is not None and not person.bumped:
            person.version, person.bumped = person.version + 1, True

    def identify(self, person: Person) -> None:
        if not person.is_identified:
            person.is_identified = True
            self.change(person)

    def merge(self, event: "CapturedEvent", refused: list[str]) -> None:
        other_id, into_id = event.merge, event.distinct_id
        assert other_id is not None
        other, into = self.person_of(other_id), self.person_of(into_id)
        if other is None and into is None:
            into = self.create(into_id)
            self.link(other_id, into)
        elif other is None or into is None:
            existing = other or into
            assert existing is not None
            self.link(into_id if into is None else other_id, existing)
            existing.joined = True  # guarded by the write: a concurrent merge cannot take it away meanwhile
            into = existing
        elif other is not into:
            if other.is_identified and not event.dangerous:
                refused.append(f"cannot_merge_already_identified: {event.event} {event.uuid} would merge away "
                               f"the person of {other_id!r}")  # fmt: skip
            else:
                self._merge_people(other, other_id, into)
        self.identify(into)

    def _merge_people(self, other: Person, other_id: str, into: Person) -> None:
        into.properties = {**other.properties, **into.properties}
        if other.created_at is not None and (into.created_at is None or other.created_at < into.created_at):
            into.created_at = other.created_at
        into.version, into.bumped, into.changed = max(into.version, other.version) + 1, True, True
        other.is_deleted, other.changed = True, True
        other.version += DELETED_VERSION_STEP
        other.deleted_distinct_id = other_id
        other.deleted_distinct_id_version = self.link_versions.get(other_id, 0)
        self.merged_into[other.id] = into.id
        for survivor_of, survivor in list(self.merged_into.items()):
            if survivor == other.id:
                self.merged_into[survivor_of] = into.id
        for distinct_id, pid in self.links.items():
            if pid == other.id:
                self.links[distinct_id] = into.id
                if distinct_id not in self.new_links and distinct_id not in self.moved:
                    self.moved.add(distinct_id)
                    self.link_versions[distinct_id] += 1
                elif distinct_id in self.new_links:
                    self.link_versions[distinct_id] = 1


def _update(person: Person, event: "CapturedEvent") -> None:
    if not (event.set or event.set_once or event.unset):
        return
    properties = {**event.set_once, **person.properties, **event.set}
    for key in event.unset:
        properties.pop(key, None)
    if properties != person.properties:
        person.properties = properties
        person.changed = True
        if person.read_version is not None and not person.bumped:
            person.version, person.bumped = person.version + 1, True


def plan(team_id: int, events: list["CapturedEvent"], rows: list[Any]) -> Plan:
    """What the batch writes, from `rows` (distinct_id, link_version, id, properties (JSON text), version,
    is_identified, created_at, is_deleted, xmin, in that order, as `event_store` reads them) of its distinct ids
    that had persons."""
    batch = _Batch(team_id, rows)
    refused: list[str] = []
    documents = []
    for event in events:
        d = event.distinct_id
        chain = event.properties.get("$elements_chain")
        chain = chain if isinstance(chain, str) else ""
        if not event.person_profile:
            person = batch.person_of(d)
            pid = person.id if person else str(person_id(team_id, d))
            documents.append((event.uuid, event.event, d, event.properties, pid,
                              person.properties if person else {}, event.timestamp, chain))  # fmt: skip
            continue
        if event.merge is not None:
            batch.merge(event, refused)
        person = batch.person_of(d) or batch.create(d)
        _update(person, event)
        documents.append((event.uuid, event.event, d, event.properties, person.id, person.properties,
                          event.timestamp, chain))  # fmt: skip
    persons = sorted((p for p in batch.persons.values() if p.changed or p.read_version is None), key=lambda p: p.id)
    moves = sorted((merged, survivor) for merged, survivor in batch.merged_into.items()
                   if batch.persons[merged].read_version is not None)  # fmt: skip
    new_links = sorted(batch.new_links)
    joined = sorted(p.id for p in batch.persons.values() if p.joined and not p.changed and p.read_version is not None)
    return Plan(
        persons=[p.row() for p in persons],
        moves=([merged for merged, _ in moves], [survivor for _, survivor in moves]),
        links=(new_links, [batch.links[d] for d in new_links], [batch.link_versions[d] for d in new_links]),
        events=documents,
        joined=joined,
        refused=refused,
    )


def lookup_ids(events: list["CapturedEvent"]) -> list[str]:
    """Every distinct id the batch reads: its events' and the ids its merges name, in order."""
    ids = {event.distinct_id for event in events}
    ids.update(event.merge for event in events if event.merge is not None)
    return sorted(ids)
