"""The `sessions` model: PostHog's 48 session columns, one row per session, computed from its events.

As PostHog's sessions table (v3) does: only events whose `$session_id` is a UUIDv7 make sessions; entry
values (URL, UTM parameters, click ids, referring domain) come from the earliest event that has them,
`$pageview` and `$screen` events first; end values from the latest, pageviews and screens first; `urls` are
the pageviews' and screens' distinct `$current_url`; counts count distinct events; `is_bounce` is null
without a pageview, screen or autocapture, else true for a single one in under 10 seconds; `channel_type`
follows PostHog's channel rules (`channel_type`) on the entry event; `vitals_lcp` is the first
`$web_vitals_LCP_value`; `session_id_v7` is the UUID as PostHog's UInt128, in decimal.

Which interval exports a session is PostHog's rule: its `_inserted_at` is the later of its last ingestion and
its `end_timestamp`, and it is exported in the interval that holds that instant, summarised over the events
ingested before the interval's end (its state as of then). A session touched again later is exported again,
updated. PostHog's lookback applies: a session whose `end_timestamp` is more than `LOOKBACK` before the
interval's start is not exported (events that arrive that late do not reopen it).
"""

from datetime import datetime, timedelta

from connectors.sources.buckets import EARLIEST, Buckets, Count
from connectors.sources.channel_type import PostgresChannels, channel_type_sql, definitions_sql
from connectors.sources.params import Params
from connectors.sources.reading import AS_READ, BatchSize, RecordStream, SourceDatabase, stream
from connectors.sources.schemas import SCHEMAS

COLUMNS = tuple(SCHEMAS["sessions"])
LOOKBACK = timedelta(days=3)
"""PostHog's `SESSIONS_LOOKBACK_DAYS`."""
BOUNCE_SECONDS = 10
"""PostHog's `DEFAULT_BOUNCE_RATE_DURATION_SECONDS`."""

_UUID_V7 = "'^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$'"
AD_IDS = ("gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "twclid", "li_fat_id", "mc_cid", "igshid", "ttclid",
          "_kx", "irclid")  # fmt: skip
"""The click ids PostHog keeps of the entry event only (its `entry_ad_ids_map`)."""
_ENTRY = {"entry_utm_source": "utm_source", "entry_utm_campaign": "utm_campaign", "entry_utm_medium": "utm_medium",
          "entry_utm_term": "utm_term", "entry_utm_content": "utm_content",
          "entry_referring_domain": "$referring_domain", "entry_gclid": "gclid", "entry_fbclid": "fbclid",
          "entry_gad_source": "gad_source"}  # fmt: skip
"""Entry values PostHog keeps each on its own: the earliest event's that has it, pageviews and screens first."""
_PAGE = "event IN ('$pageview', '$screen')"
_LCP = """(CASE WHEN p ->> '$web_vitals_LCP_value' ~ '^ *[-+]?[0-9]+(\\.[0-9]*)?([eE][-+]?[0-9]+)? *$'
           THEN (p ->> '$web_vitals_LCP_value')::float8 END)"""
"""The LCP of a `$web_vitals` event: a number, or text that reads as one (as PostHog casts it), else null."""


def _first(expr: str, order: str) -> str:
    """The first non-null `expr` of the session's events in `order`."""
    return f"(array_agg({expr} ORDER BY {order}) FILTER (WHERE {expr} IS NOT NULL))[1]"


def _counted(condition: str) -> str:
    """PostHog's `uniqExact(uuid)`: a count, as an event's uuid is unique here."""
    return f"count(*) FILTER (WHERE {condition})"


def _path(url: str) -> str:
    """ClickHouse's `path`: the URL's path, without query or fragment."""
    return f"substring({url} FROM '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)')"


def _host(url: str) -> str:
    """ClickHouse's `domain`: the URL's host, without user or port."""
    return f"substring({url} FROM '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#:]*)')"


def _v7_decimal(session_id: str) -> str:
    """The UUID as the unsigned 128-bit integer PostHog keeps (`toUInt128(toUUID(...))`), in decimal."""
    hexed = f"replace({session_id}, '-', '')"
    words = [f"('x' || lpad(substr({hexed}, {1 + 8 * i}, 8), 16, '0'))::bit(64)::bigint::numeric" for i in range(4)]
    high, low = (f"({words[i]} * 4294967296 + {words[i + 1]})" for i in (0, 2))
    return f"({high} * 18446744073709551616 + {low})::text"


_SUMMARY = f"""
    sid,
    (array_agg(distinct_id ORDER BY timestamp DESC))[1] AS distinct_id,
    min(timestamp) AS start_timestamp,
    max(timestamp) AS end_timestamp,
    max(inserted_at) AS max_inserted_at,
    (array_agg(uuid ORDER BY prio, timestamp))[1] AS entry_uuid,
    coalesce(array_agg(DISTINCT p ->> '$current_url') FILTER (WHERE {_PAGE} AND p ->> '$current_url' IS NOT NULL),
             '{{}}') AS urls,
    {_first("p ->> '$current_url'", "prio, timestamp")} AS entry_current_url,
    {_first("p ->> '$current_url'", "prio, timestamp DESC")} AS end_current_url,
    {_first("p ->> '$external_click_url'", "timestamp DESC")} AS last_external_click_url,
    {", ".join(_first("p ->> '" + key + "'", "prio, timestamp") + " AS " + name for name, key in _ENTRY.items())},
    {_counted("event = '$pageview'")} AS pageview_count,
    {_counted("event = '$autocapture'")} AS autocapture_count,
    {_counted("event = '$screen'")} AS screen_count,
    least({_counted("event IN ('$pageview', '$screen', '$autocapture')")}, 2) AS page_screen_autocapture_count_up_to,
    {_first(_LCP, "timestamp")} AS vitals_lcp
"""


class SessionsSource:
    columns = COLUMNS

    def __init__(self, db: SourceDatabase, team_id: int) -> None:
        self.db = db
        self.team_id = team_id

    def _touched(self, p: Params, start: datetime, end: datetime, after: str | None) -> str:
        """The ids of the sessions that may be exported in `[start, end)`: those with an event ingested in it,
        and those with an event of a time in it (their `end_timestamp` may be), ingested before its end."""
        team, since, until = p(self.team_id), p(start), p(end)
        later = f" AND properties ->> '$session_id' > {p(after)}" if after else ""
        return f"""
            SELECT properties ->> '$session_id' AS session_id FROM events
            WHERE team_id = {team} AND inserted_at >= {since} AND inserted_at < {until}
              AND properties ? '$session_id'{later}
            UNION
            SELECT properties ->> '$session_id' FROM events
            WHERE team_id = {team} AND timestamp >= {since} AND timestamp < {until} AND inserted_at < {until}
              AND properties ? '$session_id'{later}
        """

    def query(self, start: datetime, end: datetime, after: str | None = None, limit: int = 0) -> tuple[str, Params]:
        """The SQL of the sessions exported in `[start, end)` after session `after` (at most `limit`)."""
        p = Params()
        touched = self._touched(p, start, end, after)
        team, since, until = p(self.team_id), p(start), p(end)
        entry = "entry.properties"
        keys = ("utm_source", "utm_medium", "utm_campaign", "$referring_domain", "gclid", "fbclid", "gad_source")
        source, medium, campaign, referring, gclid, fbclid, gad = (f"({entry} ->> '{key}')" for key in keys)
        has_gclid, has_fbclid = f"({gclid} IS NOT NULL)", f"({fbclid} IS NOT NULL)"
        channel = channel_type_sql(PostgresChannels(), source, medium, campaign, referring, has_gclid, has_fbclid, gad)
        duration = "(floor(extract(epoch FROM s.end_timestamp)) - floor(extract(epoch FROM s.start_timestamp)))::bigint"
        ad_ids = ", ".join(f"{entry} ->> '{key}' AS entry_{key}" for key in AD_IDS)
        query = f"""
            WITH channel_definitions AS ({definitions_sql(p)}),
            touched AS (
                SELECT session_id FROM ({touched}) t WHERE session_id ~* {_UUID_V7}
            ),
            ev AS (
                SELECT e.properties ->> '$session_id' AS sid, e.uuid, e.event, e.distinct_id, e.timestamp,
                       e.inserted_at, e.properties AS p,
                       CASE WHEN e.event IN ('$pageview', '$screen') THEN 0 ELSE 1 END AS prio
                FROM events e JOIN touched t ON e.properties ->> '$session_id' = t.session_id
                WHERE e.team_id = {team} AND e.properties ? '$session_id' AND e.inserted_at < {until}
            ),
            summary AS (SELECT {_SUMMARY} FROM ev GROUP BY sid),
            exported AS (
                SELECT * FROM summary
                WHERE greatest(max_inserted_at, end_timestamp) >= {since}
                  AND greatest(max_inserted_at, end_timestamp) < {until}
                  AND end_timestamp >= {p(start - LOOKBACK)}
                ORDER BY sid {f"LIMIT {p(limit)}" if limit else ""}
            )
            SELECT
                lower(s.sid) AS session_id, {_v7_decimal("s.sid")} AS session_id_v7, {team}::bigint AS team_id,
                s.distinct_id, s.start_timestamp, s.end_timestamp, s.urls, cardinality(s.urls)::bigint AS num_uniq_urls,
                s.entry_current_url, {_path("s.entry_current_url")} AS entry_pathname,
                {_host("s.entry_current_url")} AS entry_hostname,
                s.end_current_url, {_path("s.end_current_url")} AS end_pathname,
                {_host("s.end_current_url")} AS end_hostname,
                s.entry_utm_source, s.entry_utm_campaign, s.entry_utm_medium, s.entry_utm_term, s.entry_utm_content,
                s.entry_referring_domain, s.entry_gclid, s.entry_fbclid, s.entry_gad_source,
                s.pageview_count, s.autocapture_count, s.screen_count,
                {channel} AS channel_type,
                {duration} AS session_duration, {duration} AS duration,
                CASE WHEN s.page_screen_autocapture_count_up_to = 0 THEN NULL
                     ELSE NOT (s.page_screen_autocapture_count_up_to > 1 OR {duration} >= {BOUNCE_SECONDS}) END
                    AS is_bounce,
                s.last_external_click_url, s.page_screen_autocapture_count_up_to::bigint,
                s.end_current_url AS exit_current_url, {_path("s.end_current_url")} AS exit_pathname,
                s.vitals_lcp, greatest(s.max_inserted_at, s.end_timestamp) AS _inserted_at,
                {ad_ids},
                s.sid AS __cursor
            FROM exported s JOIN events entry ON entry.team_id = {team} AND entry.uuid = s.entry_uuid
            ORDER BY s.sid
        """
        return query, p

    def read(
        self, start: datetime, end: datetime, *, after: str | None = None, limit: int = 0, size: BatchSize = AS_READ
    ) -> RecordStream:
        query, p = self.query(start, end, after, limit)
        return stream(
            self.db,
            query,
            p.values,
            position=lambda row: str(row["__cursor"]),
            names=COLUMNS,
            size=size,
        )

    async def count(self, start: datetime, end: datetime) -> int:
        """The sessions that may be exported in `[start, end)` (an estimate: without summarising them)."""
        p = Params()
        touched = self._touched(p, start, end, None)
        query = f"SELECT count(*) FROM ({touched}) t WHERE session_id ~* {_UUID_V7}"
        return await self.db.pool.fetchval(query, *p.values)  # type: ignore[no-any-return]

    async def counts(self, start: datetime, end: datetime, buckets: Buckets) -> list[Count]:
        """Sessions with events ingested in `[start, end)`, per bucket (a session touched in two counts in each):
        an estimate, without summarising them."""
        p = Params()
        bucket = buckets.sql(p, "inserted_at")
        rows = await self.db.pool.fetch(
            f"""
            SELECT {bucket} AS bucket, count(DISTINCT properties ->> '$session_id') AS n FROM events
            WHERE team_id = {p(self.team_id)} AND inserted_at >= {p(start)} AND inserted_at < {p(end)}
              AND properties ? '$session_id'
            GROUP BY 1
            """,
            *p.values,
        )
        return [Count(row["bucket"], row["n"]) for row in rows]

    async def first_at(self, before: datetime) -> datetime | None:
        """When the first event of a session before `before` was ingested (None when there is none)."""
        return await self.db.pool.fetchval(  # type: ignore[no-any-return]
            "SELECT min(inserted_at) FROM events WHERE team_id = $1 AND inserted_at >= $2 AND inserted_at < $3 "
            "AND properties ? '$session_id'",
            self.team_id,
            EARLIEST,
            before,
        )
