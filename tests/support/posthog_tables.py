"""PostHog's ClickHouse tables, as PostHog creates them on one node, and rows written as its ingestion writes them.

The columns, types, engines and sort keys follow PostHog's `posthog/models/event/sql.py`,
`posthog/models/person/sql.py` and `posthog/models/raw_sessions/sessions_v3.py` (the sharded tables, without
their Kafka, distributed and replication parts): `events` keeps several copies of an event until a merge
(`ReplacingMergeTree(_timestamp)`), `person` one row per version, `person_distinct_id2` and
`person_distinct_id_overrides` one row per version of a distinct id's link.

`raw_sessions_v3` is filled as PostHog fills it: by its materialized view on `events`, which turns each inserted
event of a UUIDv7 `$session_id` into a row of aggregate states (`argMin`/`argMax` by time, pageviews and screens
first for the entry and end values, `uniqExact` of uuids for the counts); the table merges rows of a session
when it likes, so a reader aggregates again (`-Merge`). `events` has the materialized columns that view reads
(`$session_id`, `$session_id_uuid`, the feature-flag property group).
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
        _timestamp DateTime, _offset UInt64, inserted_at Nullable(DateTime64(6, 'UTC')) DEFAULT NOW64(),
        `$session_id` VARCHAR MATERIALIZED replaceRegexpAll(JSONExtractRaw(properties, '$session_id'), '^"|"$', ''),
        `$session_id_uuid` Nullable(UInt128) MATERIALIZED
            toUInt128(JSONExtract(properties, '$session_id', 'Nullable(UUID)')),
        properties_group_feature_flags Map(String, String) MATERIALIZED mapSort(mapFilter(
            (key, _) -> key LIKE '$feature/%',
            CAST(JSONExtractKeysAndValues(properties, 'String'), 'Map(String, String)')))
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

AD_IDS = ("gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "twclid", "li_fat_id", "mc_cid", "igshid", "ttclid",
          "epik", "qclid", "sccid", "_kx", "irclid")  # fmt: skip
"""The click ids `raw_sessions_v3` keeps of a session's entry event in a map (PostHog's lower-tier ad ids)."""
_AT = "DateTime64(6, 'UTC')"
_TEXT = "Nullable(String)"
_BY_TIME = {"browser": "$browser", "browser_version": "$browser_version", "os": "$os", "os_version": "$os_version",
            "device_type": "$device_type", "viewport_width": "$viewport_width", "viewport_height": "$viewport_height",
            "geoip_country_code": "$geoip_country_code", "geoip_subdivision_1_code": "$geoip_subdivision_1_code",
            "geoip_subdivision_1_name": "$geoip_subdivision_1_name",
            "geoip_subdivision_city_name": "$geoip_subdivision_city_name",
            "geoip_time_zone": "$geoip_time_zone"}  # fmt: skip
"""Columns of the session's earliest value of an event property, by time alone."""
_ENTRY = {"entry_referring_domain": "$referring_domain", "entry_utm_source": "utm_source",
          "entry_utm_campaign": "utm_campaign", "entry_utm_medium": "utm_medium", "entry_utm_term": "utm_term",
          "entry_utm_content": "utm_content", "entry_gclid": "gclid", "entry_gad_source": "gad_source",
          "entry_fbclid": "fbclid"}  # fmt: skip
"""Columns of the session's earliest value of an event property, pageviews and screens first."""
_READ = {key: "Nullable(Int64)" if key.startswith("$viewport") else _TEXT
         for key in ("$current_url", "$external_click_url", *_BY_TIME.values(), *_ENTRY.values(), *AD_IDS)}  # fmt: skip
"""The event properties the view reads, each parsed once, with their types."""


def _raw_sessions_v3() -> str:
    def arg(function: str, kind: str) -> str:
        return f"AggregateFunction({function}, {kind}, {_AT})"

    channel = f"Tuple({_TEXT}, {_TEXT}, {_TEXT}, {_TEXT}, Boolean, Boolean, {_TEXT})"
    columns = [
        "team_id Int64", "session_id_v7 UInt128",
        "session_timestamp DateTime64 MATERIALIZED "
        "fromUnixTimestamp64Milli(toUInt64(bitShiftRight(session_id_v7, 80)))",
        f"distinct_id {arg('argMax', 'String')}", "distinct_ids AggregateFunction(groupUniqArray, String)",
        f"min_timestamp SimpleAggregateFunction(min, {_AT})", f"max_timestamp SimpleAggregateFunction(max, {_AT})",
        f"max_inserted_at SimpleAggregateFunction(max, {_AT})",
        "urls SimpleAggregateFunction(groupUniqArrayArray, Array(String))", f"entry_url {arg('argMin', _TEXT)}",
        f"end_url {arg('argMax', _TEXT)}", f"last_external_click_url {arg('argMax', _TEXT)}",
        *(f"{name} {arg('argMin', _READ[key])}" for name, key in (*_BY_TIME.items(), *_ENTRY.items())),
        f"entry_has_gclid {arg('argMin', 'Boolean')}", f"entry_has_fbclid {arg('argMin', 'Boolean')}",
        f"entry_ad_ids_map {arg('argMin', 'Map(String, String)')}",
        f"entry_ad_ids_set {arg('argMin', 'Array(String)')}",
        f"entry_channel_type_properties {arg('argMin', channel)}",
        *(f"{name}_uniq AggregateFunction(uniqExact, Nullable(UUID))" for name in ("pageview", "autocapture",
                                                                                    "screen")),
        "page_screen_autocapture_uniq_up_to AggregateFunction(uniqUpTo(1), Nullable(UUID))",
        "flag_values AggregateFunction(groupUniqArrayMap, Map(String, String))",
        "has_replay_events SimpleAggregateFunction(max, Boolean)",
    ]  # fmt: skip
    return (f"CREATE TABLE IF NOT EXISTS raw_sessions_v3 ({', '.join(columns)}) ENGINE = AggregatingMergeTree "
            "PARTITION BY toYYYYMM(session_timestamp) "
            "ORDER BY (team_id, session_timestamp, session_id_v7)")  # fmt: skip


def _raw_sessions_v3_view() -> str:
    """The view that writes an event of a UUIDv7 session into `raw_sessions_v3` as it is inserted: each column
    the state of one event, which the table's merges and its readers combine."""

    def state(function: str, *args: str) -> str:
        return f"initializeAggregation('{function}State', {', '.join(args)})"

    def prop(key: str) -> str:
        return f"tupleElement(p, '{key}')"

    page = "e.event IN ('$pageview', '$screen')"
    pairs = ", ".join(f"'{ad_id}', {prop(ad_id)}" for ad_id in AD_IDS)
    ad_ids = f"CAST(mapFilter((k, v) -> v IS NOT NULL, map({pairs})), 'Map(String, String)')"
    has = {key: f"toBool({prop(key)} IS NOT NULL)" for key in ("gclid", "fbclid")}
    channel = (f"tuple({prop('utm_source')}, {prop('utm_medium')}, {prop('utm_campaign')}, "
               f"{prop('$referring_domain')}, {has['gclid']}, {has['fbclid']}, {prop('gad_source')})")  # fmt: skip
    counted = {"pageview": "e.event = '$pageview'", "autocapture": "e.event = '$autocapture'",
               "screen": "e.event = '$screen'"}  # fmt: skip
    selected = [
        "e.team_id AS team_id", "e.`$session_id_uuid` AS session_id_v7",
        f"{state('argMax', 'e.distinct_id', 'e.timestamp')} AS distinct_id",
        f"{state('groupUniqArray', 'e.distinct_id')} AS distinct_ids",
        "e.timestamp AS min_timestamp", "e.timestamp AS max_timestamp", "e.inserted_at AS max_inserted_at",
        f"if({page} AND {prop('$current_url')} IS NOT NULL, [assumeNotNull({prop('$current_url')})], []) AS urls",
        f"{state('argMin', prop('$current_url'), 'entry_at')} AS entry_url",
        f"{state('argMax', prop('$current_url'), 'end_at')} AS end_url",
        f"{state('argMax', prop('$external_click_url'), 'e.timestamp')} AS last_external_click_url",
        *(f"{state('argMin', prop(key), 'e.timestamp')} AS {name}" for name, key in _BY_TIME.items()),
        *(f"{state('argMin', prop(key), 'entry_at')} AS {name}" for name, key in _ENTRY.items()),
        f"{state('argMin', has['gclid'], 'entry_at')} AS entry_has_gclid",
        f"{state('argMin', has['fbclid'], 'entry_at')} AS entry_has_fbclid",
        f"{state('argMin', 'ad_ids', 'entry_at')} AS entry_ad_ids_map",
        f"{state('argMin', 'mapKeys(ad_ids)', 'entry_at')} AS entry_ad_ids_set",
        f"{state('argMin', channel, 'entry_at')} AS entry_channel_type_properties",
        *(f"{state('uniqExact', f'if({when}, e.uuid, NULL)')} AS {name}_uniq" for name, when in counted.items()),
        f"initializeAggregation('uniqUpToState(1)', if({page} OR e.event = '$autocapture', e.uuid, NULL)) "
        "AS page_screen_autocapture_uniq_up_to",
        f"{state('groupUniqArrayMap', 'e.properties_group_feature_flags')} AS flag_values",
        "false AS has_replay_events",
    ]  # fmt: skip
    parsed = ", ".join(f"`{key}` {kind}" for key, kind in _READ.items())
    return f"""CREATE MATERIALIZED VIEW IF NOT EXISTS raw_sessions_v3_mv TO raw_sessions_v3 AS
        WITH JSONExtract(e.properties, 'Tuple({parsed})') AS p, {ad_ids} AS ad_ids,
             if({page}, e.timestamp, e.timestamp + toIntervalYear(1)) AS entry_at,
             if({page}, e.timestamp, e.timestamp - toIntervalYear(1)) AS end_at
        SELECT {", ".join(selected)}
        FROM events AS e
        WHERE bitAnd(bitShiftRight(toUInt128(accurateCastOrNull(e.`$session_id`, 'UUID')), 76), 15) = 7"""


SESSIONS = (_raw_sessions_v3(), _raw_sessions_v3_view())
"""`raw_sessions_v3` and the view that fills it from `events`."""


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
    def created(cls, account: ClickHouseAccount, *, sessions: bool = False) -> "PostHogClickHouse":
        """A new database with PostHog's tables, empty; with `sessions`, `raw_sessions_v3` too, filled from the
        events written as PostHog fills it. (Without: events whose `$session_id` only looks like a UUIDv7, as
        the benchmark's random ones do, would spread its rows over more partitions than an insert may write.)"""
        database = f"posthog_{uuid.uuid4().hex[:8]}"
        cls(account, "default").run(f"CREATE DATABASE {database}")
        tables = cls(account, database)
        for table in (*TABLES, *(SESSIONS if sessions else ())):
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
    properties after the event's `$set`, its person by distinct id, its time the event's `timestamp` (else `at`)."""
    rows = []
    for sent in batch:
        properties = dict(sent.get("properties") or {})
        person_properties = {**(sent.get("$set_once") or {}), **(sent.get("$set") or properties.get("$set") or {})}
        person = uuid.uuid5(uuid.NAMESPACE_URL, f"{team_id}:{sent['distinct_id']}")
        timestamp = datetime.fromisoformat(sent["timestamp"]) if sent.get("timestamp") else at
        rows.append(Event(team_id, sent["event"], sent["distinct_id"], person, timestamp, at, at,
                          properties=properties, person_properties=person_properties).row())  # fmt: skip
    return rows
