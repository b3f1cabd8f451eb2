"""PostHog's ClickHouse tables, as PostHog creates them on one node, and rows written as its ingestion writes them.

The columns, types, engines and sort keys follow PostHog's `posthog/models/event/sql.py` and
`posthog/models/person/sql.py` (the sharded tables, without their Kafka and replication parts): `events` keeps
several copies of an event until a merge (`ReplacingMergeTree(_timestamp)`), `person` one row per version,
`person_distinct_id2` and `person_distinct_id_overrides` one row per version of a distinct id's link.
"""

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import requests

from batch_exports.settings import Settings
from connectors.sources.clickhouse.http import ClickHouse
from tests.support.clickhouse import ClickHouseAccount

TABLES = (
    """CREATE TABLE IF NOT EXISTS events (
        uuid UUID, event VARCHAR, properties VARCHAR CODEC(ZSTD(3)), timestamp DateTime64(6, 'UTC'), team_id Int64,
        distinct_id VARCHAR, elements_chain VARCHAR, created_at DateTime64(6, 'UTC'), person_id UUID,
        person_created_at DateTime64, person_properties VARCHAR CODEC(ZSTD(3)),
        person_mode Enum8('full' = 0, 'propertyless' = 1, 'force_upgrade' = 2),
        _timestamp DateTime, _offset UInt64, inserted_at Nullable(DateTime64(6, 'UTC')) DEFAULT NOW64()
    ) ENGINE = ReplacingMergeTree(_timestamp) PARTITION BY toYYYYMM(timestamp)
    ORDER BY (team_id, toDate(timestamp), event, cityHash64(distinct_id), cityHash64(uuid))""",
    """CREATE TABLE IF NOT EXISTS person (
        id UUID, created_at DateTime64, team_id Int64, properties VARCHAR, is_identified Int8,
        is_deleted Int8 DEFAULT 0, version UInt64, _timestamp DateTime, _offset UInt64
    ) ENGINE = ReplacingMergeTree(version) ORDER BY (team_id, id)""",
    """CREATE TABLE IF NOT EXISTS person_distinct_id2 (
        team_id Int64, distinct_id VARCHAR, person_id UUID, is_deleted Int8, version Int64 DEFAULT 1,
        _timestamp DateTime, _offset UInt64, _partition UInt64
    ) ENGINE = ReplacingMergeTree(version) ORDER BY (team_id, distinct_id)""",
    """CREATE TABLE IF NOT EXISTS person_distinct_id_overrides (
        team_id Int64, distinct_id VARCHAR, person_id UUID, is_deleted Int8, version Int64,
        _timestamp DateTime, _offset UInt64, _partition UInt64
    ) ENGINE = ReplacingMergeTree(version) ORDER BY (team_id, distinct_id)""",
)


@dataclass
class Event:
    """An event as PostHog's ingestion writes it (`person_id` is the person at ingestion time)."""

    team_id: int
    event: str
    distinct_id: str
    person_id: UUID
    timestamp: datetime
    inserted_at: datetime | None
    _timestamp: datetime
    properties: dict[str, Any] = field(default_factory=dict)
    person_properties: dict[str, Any] = field(default_factory=dict)
    elements_chain: str = ""
    uuid: UUID = field(default_factory=uuid.uuid4)
    created_at: datetime | None = None

    def row(self) -> dict[str, Any]:
        return {
            "uuid": str(self.uuid), "event": self.event, "properties": json.dumps(self.properties),
            "timestamp": _text(self.timestamp), "team_id": self.team_id, "distinct_id": self.distinct_id,
            "elements_chain": self.elements_chain, "created_at": _text(self.created_at or self.timestamp),
            "person_id": str(self.person_id), "person_created_at": _text(self.timestamp),
            "person_properties": json.dumps(self.person_properties), "person_mode": "full",
            "_timestamp": _text(self._timestamp, seconds=True), "_offset": 0,
            "inserted_at": None if self.inserted_at is None else _text(self.inserted_at),
        }  # fmt: skip


def _text(at: datetime, seconds: bool = False) -> str:
    at = at.astimezone(UTC).replace(tzinfo=None)
    return at.isoformat(sep=" ", timespec="seconds" if seconds else "microseconds")


def insert_sql(table: str, rows: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """An `INSERT ... FORMAT JSONEachRow` statement and its body."""
    return f"INSERT INTO {table} FORMAT JSONEachRow", "\n".join(json.dumps(row) for row in rows)


class PostHogClickHouse:
    """A database of PostHog's tables on a ClickHouse server, written to as PostHog's ingestion writes."""

    def __init__(self, account: ClickHouseAccount, database: str) -> None:
        self.account, self.database = account, database

    @classmethod
    def created(cls, account: ClickHouseAccount) -> "PostHogClickHouse":
        """A new database with PostHog's tables, empty."""
        database = f"posthog_{uuid.uuid4().hex[:8]}"
        cls(account, "default").run(f"CREATE DATABASE {database}")
        tables = cls(account, database)
        for table in TABLES:
            tables.run(table)
        return tables

    @classmethod
    def of(cls, settings: Settings) -> "PostHogClickHouse":
        """The tables a stack reading ClickHouse reads."""
        assert settings.clickhouse_url is not None
        account = ClickHouseAccount(settings.clickhouse_url, settings.clickhouse_user,
                                    settings.clickhouse_password.get_secret_value())  # fmt: skip
        return cls(account, settings.clickhouse_database)

    def run(self, sql: str, body: str = "") -> str:
        params = {"database": self.database, **({"query": sql} if body else {})}
        auth = (self.account.user, self.account.password)
        answer = requests.post(self.account.url, params=params, data=(body or sql).encode(), auth=auth, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.text

    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        if rows:  # ClickHouse refuses an INSERT of nothing
            self.run(*insert_sql(table, rows))

    def client(self) -> ClickHouse:
        return self.account.client(self.database)


def ingested(team_id: int, batch: Sequence[dict[str, Any]], at: datetime) -> list[dict[str, Any]]:
    """Events in PostHog's capture format as PostHog's ingestion writes them into `events` at `at`: the person's
    properties after the event's `$set`, its person by distinct id."""
    rows = []
    for sent in batch:
        properties = dict(sent.get("properties") or {})
        person_properties = {**(sent.get("$set_once") or {}), **(sent.get("$set") or properties.get("$set") or {})}
        person = uuid.uuid5(uuid.NAMESPACE_URL, f"{team_id}:{sent['distinct_id']}")
        rows.append(Event(team_id, sent["event"], sent["distinct_id"], person, at, at, at, properties=properties,
                          person_properties=person_properties).row())  # fmt: skip
    return rows
