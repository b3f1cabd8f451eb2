"""The `sessions` model from PostHog's ClickHouse `raw_sessions_v3`, read as PostHog's sessions export reads it.

PostHog's materialized view writes a row of aggregate states per event of a UUIDv7 session, and ClickHouse
merges a session's rows when it likes: a session is its rows aggregated again (`argMinMerge`, ...), and its 48
columns are lowered from them as PostHog's `sessions` table lowers them: `session_id` from the UInt128,
`session_id_v7` that number in decimal, the entry and end URLs' `path` and `domain`, `session_duration` in
whole seconds crossed, `is_bounce` from the pageviews, screens and autocaptures counted up to two, and
`channel_type` by PostHog's rules (`channel_type`) over the entry event's properties. The click ids the
table keeps in a map are null when the entry event had none, as the PostgreSQL source's are.

The interval rule is PostHog's: a session is exported in the interval that holds its `_inserted_at`, the later
of its last ingestion (`max_inserted_at`) and its `end_timestamp`; one that ended more than `LOOKBACK` before
the interval is not (events that arrive that late do not reopen it). A session whose end falls in the next
interval waits for it. The table holds each session as it is now, not as of an interval's end: a session
touched again after an interval is exported in the interval of its last ingestion, whole (the PostgreSQL
source exports it in both, as of each one's end). The read keeps to the table's sort key: the sessions whose
id's own time (`session_timestamp`) is within `SESSION_DAYS` of the sessions the interval can hold, as
PostHog's query narrows it.

The columns and types are the PostgreSQL source's, but for one value: `vitals_lcp` is null, since PostHog's
v3 table keeps no web vitals (its v2 table did).
"""

from datetime import datetime, timedelta

from connectors.sources.buckets import EARLIEST, Buckets, Count
from connectors.sources.channel_type import DEFINITIONS, SIGNIFICANT, ChannelLookups, channel_type_sql
from connectors.sources.clickhouse import querying
from connectors.sources.clickhouse.http import ClickHouse, Params, text_of
from connectors.sources.reading import AS_READ, BatchSize, RecordStream
from connectors.sources.sessions import AD_IDS, BOUNCE_SECONDS, COLUMNS, LOOKBACK

SESSION_DAYS = timedelta(days=3)
"""How far a session's events may be from the time in its id: PostHog's `SESSION_BUFFER_DAYS`."""

_ENTRY = ("utm_source", "utm_campaign", "utm_medium", "utm_term", "utm_content", "referring_domain", "gclid",
          "fbclid", "gad_source")  # fmt: skip
"""The entry values `raw_sessions_v3` keeps each in a column of its own (`entry_<name>`)."""


class ClickHouseChannels(ChannelLookups):
    """PostHog's channel lookups in arrays of `DEFINITIONS`: this code's own constants, written into the SQL as
    array literals (bound, they would make the URL longer than servers and proxies take)."""

    def __init__(self, p: Params) -> None:
        self.p = p

    @staticmethod
    def _array(kind: str, column: str) -> str:
        table = DEFINITIONS[kind]
        if column == "name":
            return text_of(list(table))
        # an entry with no channel of that column: '' (a lookup returns NULL for it)
        return text_of([(paid if column == "paid" else organic) or "" for paid, organic in table.values()])

    def matches(self, text: str, pattern: str) -> str:
        return f"match({text}, {self.p(pattern, 'String')})"

    def lookup(self, kind: str, value: str, column: str) -> str:
        found = f"indexOf({self._array(kind, 'name')}, ifNull({value}, ''))"
        return f"nullIf(arrayElement({self._array(kind, column)}, {found}), '')"

    def significant(self, host: str) -> str:
        return f"extract(ifNull({host}, ''), {self.p(SIGNIFICANT, 'String')})"


class ClickHouseSessionsSource:
    columns = COLUMNS

    def __init__(self, clickhouse: ClickHouse, team_id: int) -> None:
        self.clickhouse = clickhouse
        self.team_id = team_id

    def _sessions(self, p: Params, start: datetime, end: datetime, after: str | None = None) -> str:
        """The team's sessions of `[start, end)`, one row each (`v7` its id), aggregated from their rows."""
        oldest = max(start, EARLIEST + LOOKBACK + SESSION_DAYS) - LOOKBACK
        since, until, ended = p(start, querying.TIME), p(end, querying.TIME), p(oldest, querying.TIME)
        later = f" AND raw.session_id_v7 > toUInt128(toUUID({p(after, 'String')}))" if after else ""
        entry = ", ".join(f"argMinMerge(raw.entry_{name}) AS entry_{name}" for name in _ENTRY)
        counts = ", ".join(f"toInt64(uniqExactMerge(raw.{name}_uniq)) AS {name}_count"
                           for name in ("pageview", "autocapture", "screen"))  # fmt: skip
        return f"""
            SELECT raw.team_id AS team_id, raw.session_id_v7 AS v7, argMaxMerge(raw.distinct_id) AS distinct_id,
                   min(raw.min_timestamp) AS start_timestamp, max(raw.max_timestamp) AS end_timestamp,
                   greatest(max(raw.max_inserted_at), end_timestamp) AS _inserted_at,
                   CAST(arrayDistinct(arrayFlatten(groupArray(raw.urls))), 'Array(Nullable(String))') AS urls,
                   argMinMerge(raw.entry_url) AS entry_current_url, argMaxMerge(raw.end_url) AS end_current_url,
                   argMaxMerge(raw.last_external_click_url) AS last_external_click_url, {entry},
                   argMinMerge(raw.entry_ad_ids_map) AS ad_ids,
                   argMinMerge(raw.entry_channel_type_properties) AS channel, {counts},
                   toInt64(uniqUpToMerge(1)(raw.page_screen_autocapture_uniq_up_to))
                       AS page_screen_autocapture_count_up_to
            FROM raw_sessions_v3 AS raw
            WHERE raw.team_id = {p(self.team_id, "Int64")}
              AND raw.session_timestamp >= {p(oldest - SESSION_DAYS, querying.TIME)}
              AND raw.session_timestamp < {p(end + SESSION_DAYS, querying.TIME)}{later}
            GROUP BY raw.team_id, raw.session_id_v7
            HAVING _inserted_at >= {since} AND _inserted_at < {until} AND end_timestamp >= {ended}"""

    def query(self, start: datetime, end: datetime, after: str | None = None, limit: int = 0) -> tuple[str, Params]:
        """The SQL of the sessions exported in `[start, end)` after session `after` (at most `limit`)."""
        p = Params()
        sessions = self._sessions(p, start, end, after)
        # the entry event's utm_source, utm_medium, utm_campaign, $referring_domain, whether it has a gclid, an
        # fbclid, and its gad_source: the tuple `entry_channel_type_properties` holds
        channel = channel_type_sql(ClickHouseChannels(p), *(f"tupleElement(channel, {i})" for i in range(1, 8)))
        up_to = "page_screen_autocapture_count_up_to"
        ad_ids = ", ".join(f"if(mapContains(ad_ids, '{key}'), ad_ids['{key}'], NULL) AS entry_{key}" for key in AD_IDS)
        query = f"""
            SELECT toString(reinterpretAsUUID(bitOr(bitShiftLeft(v7, 64), bitShiftRight(v7, 64)))) AS session_id,
                   toString(v7) AS session_id_v7, team_id, distinct_id, start_timestamp, end_timestamp, urls,
                   toInt64(length(urls)) AS num_uniq_urls,
                   entry_current_url, path(entry_current_url) AS entry_pathname,
                   domain(entry_current_url) AS entry_hostname,
                   end_current_url, path(end_current_url) AS end_pathname, domain(end_current_url) AS end_hostname,
                   entry_utm_source, entry_utm_campaign, entry_utm_medium, entry_utm_term, entry_utm_content,
                   entry_referring_domain, entry_gclid, entry_fbclid, entry_gad_source,
                   pageview_count, autocapture_count, screen_count, {channel} AS channel_type,
                   toInt64(dateDiff('second', start_timestamp, end_timestamp)) AS session_duration,
                   session_duration AS duration,
                   CAST(if({up_to} = 0, NULL, NOT ({up_to} > 1 OR session_duration >= {BOUNCE_SECONDS})),
                        'Nullable(Bool)') AS is_bounce,
                   last_external_click_url, {up_to},
                   end_current_url AS exit_current_url, path(end_current_url) AS exit_pathname,
                   CAST(NULL, 'Nullable(Float64)') AS vitals_lcp, _inserted_at, {ad_ids}
            FROM ({sessions})
            ORDER BY v7"""
        if limit:
            query += f" LIMIT {p(limit, 'UInt64')}"
        return f"{query} SETTINGS {querying.GROUPING_SETTINGS}", p

    def read(
        self, start: datetime, end: datetime, *, after: str | None = None, limit: int = 0, size: BatchSize = AS_READ
    ) -> RecordStream:
        sql, p = self.query(start, end, after, limit)
        return querying.read(
            self.clickhouse, sql, p, position=lambda row: str(row["session_id"]), names=COLUMNS, json=(), size=size
        )

    async def count(self, start: datetime, end: datetime) -> int:
        p = Params()
        return await querying.count(self.clickhouse, self._sessions(p, start, end), p, querying.GROUPING_SETTINGS)

    async def counts(self, start: datetime, end: datetime, buckets: Buckets) -> list[Count]:
        p = Params()
        sessions = self._sessions(p, start, end)
        return await querying.counts(self.clickhouse, sessions, p, buckets, querying.GROUPING_SETTINGS)

    async def first_at(self, before: datetime) -> datetime | None:
        """When the first session before `before` is exported (its `_inserted_at`), or None."""
        p = Params()
        sessions = self._sessions(p, EARLIEST, before)
        return await querying.first_at(self.clickhouse, sessions, p, querying.GROUPING_SETTINGS)
