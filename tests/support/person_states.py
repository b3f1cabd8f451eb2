"""Persons and their distinct ids written straight into a project's source, as each source's ingestion leaves
them, so that one test body checks the persons model on either source.

A `PersonHistory` is what happened to a team's persons, in order, each change at a time the test names (whole
seconds: ClickHouse's `_timestamp` holds no more). Persons change as PostHog's ingestion changes them: created at
version 0 with PostHog's person id of their first distinct id, a new version per change, and a merge leaves the
survivor with both persons' properties (its own win), the earlier `created_at` and the larger version plus one,
the other person deleted with its version plus 100, and every link of that person moved to the survivor, each
link's version plus one. `write` puts the history into the project's source:

- PostgreSQL (the tables capture writes): the latest state, a row per person (`persons`; one merged away is kept,
  deleted, with the distinct id whose merge deleted it and that link's version then) and per distinct id
  (`person_distinct_ids`), each stamped with the time of its last change;
- PostHog's ClickHouse: a row per version, as PostHog's ingestion writes them: `person` (the deletion row too),
  `person_distinct_id2`, and `person_distinct_id_overrides` (the link versions above 0: PostHog's materialized
  view copies only those, the links a merge moved), `_timestamp` the time of the change.
"""

import asyncio
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from batch_exports.services.person_ids import person_id
from batch_exports.store.person_merges import DELETED_VERSION_STEP
from tests.support.posthog_tables import PostHogClickHouse
from tests.support.stack import Project


@dataclass(frozen=True)
class PersonVersion:
    id: UUID
    properties: dict[str, Any]
    version: int
    created_at: datetime
    changed_at: datetime
    is_identified: bool = False
    is_deleted: bool = False
    deleted_distinct_id: str | None = None
    deleted_distinct_id_version: int | None = None


@dataclass(frozen=True)
class LinkVersion:
    distinct_id: str
    person: UUID
    version: int
    changed_at: datetime


@dataclass
class PersonHistory:
    team_id: int
    persons: list[PersonVersion] = field(default_factory=list)
    """Every version of every person, in the order they were made."""
    links: list[LinkVersion] = field(default_factory=list)
    """Every version of every distinct id's link to its person, in order."""
    _written: tuple[int, int] = field(default=(0, 0), init=False, repr=False)
    """How many of each were written already (a test may write, export, change more and write again)."""

    def person_of(self, distinct_id: str) -> str:
        """The current person of a distinct id."""
        return str(self._link(distinct_id).person)

    def create(self, distinct_id: str, at: datetime, *others: str, **properties: Any) -> None:
        """A new person of `distinct_id` (and of `others`) with `properties`, at version 0."""
        at = _second(at)
        person = PersonVersion(person_id(self.team_id, distinct_id), properties, 0, at, at)
        self.persons.append(person)
        self.links.extend(LinkVersion(d, person.id, 0, at) for d in (distinct_id, *others))

    def update(self, distinct_id: str, at: datetime, **properties: Any) -> None:
        """`properties` set on the person of `distinct_id`: its next version."""
        person = self._person(self._link(distinct_id).person)
        self.persons.append(replace(person, properties={**person.properties, **properties},
                                    version=person.version + 1, changed_at=_second(at)))  # fmt: skip

    def merge(self, other: str, into: str, at: datetime) -> None:
        """The person of `other` merged into the person of `into` (an `$identify` of `into` naming `other`)."""
        at = _second(at)
        merged, survivor = self._person(self._link(other).person), self._person(self._link(into).person)
        assert merged.id != survivor.id, "the two ids already have one person"
        self.persons.append(replace(
            survivor, properties={**merged.properties, **survivor.properties},
            created_at=min(merged.created_at, survivor.created_at),
            version=max(merged.version, survivor.version) + 1, changed_at=at, is_identified=True,
        ))  # fmt: skip
        self.persons.append(replace(
            merged, version=merged.version + DELETED_VERSION_STEP, changed_at=at, is_deleted=True,
            deleted_distinct_id=other, deleted_distinct_id_version=self._link(other).version,
        ))  # fmt: skip
        moved = [link for link in self._latest_links() if link.person == merged.id]
        self.links.extend(LinkVersion(link.distinct_id, survivor.id, link.version + 1, at) for link in moved)

    async def write(self, project: Project) -> None:
        """What happened since the last write, into the project's source."""
        persons, links = self.persons[self._written[0] :], self.links[self._written[1] :]
        self._written = (len(self.persons), len(self.links))
        if project.stack.settings.source == "clickhouse":
            await asyncio.to_thread(self._into_clickhouse, PostHogClickHouse.of(project.stack.settings), persons, links)
            return
        latest_persons = {person.id: person for person in persons}.values()
        await project.stack.pool.executemany(
            """
            INSERT INTO persons (id, team_id, properties, version, is_identified, is_deleted, created_at, updated_at,
                                 deleted_distinct_id, deleted_distinct_id_version)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (id) DO UPDATE SET properties = excluded.properties, version = excluded.version,
                is_identified = excluded.is_identified, is_deleted = excluded.is_deleted,
                created_at = excluded.created_at, updated_at = excluded.updated_at,
                deleted_distinct_id = excluded.deleted_distinct_id,
                deleted_distinct_id_version = excluded.deleted_distinct_id_version
            """,
            [(p.id, self.team_id, p.properties, p.version, p.is_identified, p.is_deleted, p.created_at, p.changed_at,
              p.deleted_distinct_id, p.deleted_distinct_id_version) for p in latest_persons],
        )  # fmt: skip
        latest_links = {link.distinct_id: link for link in links}.values()
        await project.stack.pool.executemany(
            """
            INSERT INTO person_distinct_ids (team_id, distinct_id, person_id, version, updated_at)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (team_id, distinct_id) DO UPDATE SET person_id = excluded.person_id,
                version = excluded.version, updated_at = excluded.updated_at
            """,
            [(self.team_id, link.distinct_id, link.person, link.version, link.changed_at) for link in latest_links],
        )

    def _into_clickhouse(self, posthog: PostHogClickHouse, persons: list[PersonVersion],
                         links: list[LinkVersion]) -> None:  # fmt: skip
        posthog.insert("person", [
            {"id": str(p.id), "created_at": _text(p.created_at), "team_id": self.team_id,
             "properties": json.dumps(p.properties), "is_identified": int(p.is_identified),
             "is_deleted": int(p.is_deleted), "version": p.version, "_timestamp": _text(p.changed_at), "_offset": 0}
            for p in persons
        ])  # fmt: skip
        rows = [{"team_id": self.team_id, "distinct_id": link.distinct_id, "person_id": str(link.person),
                 "is_deleted": 0, "version": link.version, "_timestamp": _text(link.changed_at), "_offset": 0,
                 "_partition": 0} for link in links]  # fmt: skip
        posthog.insert("person_distinct_id2", rows)
        moved = [row for row, link in zip(rows, links, strict=True) if link.version > 0]
        posthog.insert("person_distinct_id_overrides", moved)

    def _person(self, id: UUID) -> PersonVersion:
        return next(person for person in reversed(self.persons) if person.id == id)

    def _link(self, distinct_id: str) -> LinkVersion:
        return next(link for link in reversed(self.links) if link.distinct_id == distinct_id)

    def _latest_links(self) -> list[LinkVersion]:
        return list({link.distinct_id: link for link in self.links}.values())


def _second(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(microsecond=0)


def _text(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")
