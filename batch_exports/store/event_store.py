"""The embedded event store's tables as capture writes them: `events`, `persons`, `person_distinct_ids`.

(The sources in `connectors/sources` read them.) A batch is stored in one transaction, resolving (or
creating) each distinct id's person and applying `$set`/`$set_once`.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg


@dataclass
class CapturedEvent:
    uuid: uuid.UUID
    event: str
    distinct_id: str
    properties: dict[str, Any]
    timestamp: datetime
    set: dict[str, Any] = field(default_factory=dict)
    set_once: dict[str, Any] = field(default_factory=dict)


async def write(pool: asyncpg.Pool, team_id: int, events: list[CapturedEvent]) -> None:
    """Store every event of a payload, or none of them."""
    async with pool.acquire() as conn, conn.transaction():
        for event in events:
            person_id, person_properties = await _person(conn, team_id, event)
            await conn.execute(
                """
                INSERT INTO events (uuid, team_id, event, distinct_id, properties, person_id, person_properties,
                                    timestamp, created_at, elements_chain)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), $9)
                ON CONFLICT (team_id, uuid) DO NOTHING
                """,
                event.uuid,
                team_id,
                event.event,
                event.distinct_id,
                event.properties,
                person_id,
                person_properties,
                event.timestamp,
                _elements_chain(event.properties),
            )


def _elements_chain(properties: dict[str, Any]) -> str:
    chain = properties.get("$elements_chain")
    return chain if isinstance(chain, str) else ""


async def _person(conn: asyncpg.Connection, team_id: int, event: CapturedEvent) -> tuple[uuid.UUID, dict[str, Any]]:
    """The person of the event's distinct id (created if new), after its `$set`/`$set_once`."""
    # Serialise ingestion of one distinct id so two batches never create two persons for it.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($2, $1))", team_id, event.distinct_id)
    row = await conn.fetchrow(
        """
        SELECT p.id, p.properties FROM person_distinct_ids d JOIN persons p ON p.id = d.person_id
        WHERE d.team_id = $1 AND d.distinct_id = $2
        """,
        team_id,
        event.distinct_id,
    )
    if row is None:
        person_id = uuid.uuid4()
        properties = {**event.set_once, **event.set}
        await conn.execute(
            "INSERT INTO persons (id, team_id, properties) VALUES ($1, $2, $3)", person_id, team_id, properties
        )
        await conn.execute(
            "INSERT INTO person_distinct_ids (team_id, distinct_id, person_id) VALUES ($1, $2, $3)",
            team_id,
            event.distinct_id,
            person_id,
        )
        return person_id, properties
    person_id, properties = row["id"], row["properties"]
    updated = {**event.set_once, **properties, **event.set}
    if updated != properties:
        await conn.execute(
            "UPDATE persons SET properties = $2, version = version + 1, updated_at = clock_timestamp() WHERE id = $1",
            person_id,
            updated,
        )
    return person_id, updated
