"""The events, persons and sessions models, and event-name selection, exported for real.

The sessions cases run on both sources (`source_project`): this service's PostgreSQL, and PostHog's ClickHouse,
whose `raw_sessions_v3` PostHog's materialized view fills from the events written into `events`.
"""

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.helpers import create_export, event, export_now, ingest, run_hour, runs_until, start_run
from tests.support.person_states import PersonHistory
from tests.support.posthog_tables import Event, PostHogClickHouse
from tests.support.stack import Project


async def test_include_and_exclude_events(source_project: Project) -> None:
    project = source_project
    await ingest(project, [event("signup", "a"), event("$pageview", "a"), event("$pageview", "b"), event("x", "c")])
    included = await export_now(project, f"include-{project.id}", config={"include_events": ["signup", "x"]})
    assert sorted(row["event"] for row in included) == ["signup", "x"]
    excluded = await export_now(project, f"exclude-{project.id}", config={"exclude_events": ["$pageview"]})
    assert sorted(row["event"] for row in excluded) == ["signup", "x"]


async def test_persons_model_exports_changed_persons_with_latest_properties(source_project: Project) -> None:
    project = source_project
    at = datetime.now(UTC) - timedelta(minutes=5)
    persons = PersonHistory(project.id)
    persons.create("ada", at, plan="free", email="ada@example.com")
    persons.update("ada", at + timedelta(seconds=1), plan="pro")
    persons.create("grace", at)
    await persons.write(project)
    rows = await export_now(project, f"persons-{project.id}", model="persons")
    by_id = {row["distinct_id"]: row for row in rows}
    assert set(by_id) == {"ada", "grace"}
    assert by_id["ada"]["properties"] == {"plan": "pro", "email": "ada@example.com"}
    assert by_id["ada"]["person_version"] == 1 and by_id["grace"]["properties"] == {}
    assert set(rows[0]) == {"team_id", "distinct_id", "person_id", "properties", "person_version",
                            "person_distinct_id_version", "created_at", "is_deleted", "_inserted_at"}  # fmt: skip


async def test_persons_model_exports_the_intervals_changes_at_their_latest_versions(source_project: Project) -> None:
    """A row per distinct id whose person or link changed in the interval, at the latest version of each; a
    person merged into another shows under each of its ids as the survivor; a person unchanged is not exported."""
    project = source_project
    now = datetime.now(UTC).replace(microsecond=0)
    before, during = now - timedelta(hours=2), now - timedelta(minutes=10)
    persons = PersonHistory(project.id)
    persons.create("unchanged", before, name="old")
    persons.create("renamed", before, name="old")
    persons.update("renamed", during, name="new")
    persons.create("kept", before - timedelta(days=1), "kept-too", k=1)
    persons.create("gone", before, g=1, k=0)
    persons.merge("gone", into="kept", at=during + timedelta(minutes=1))
    persons.create("fresh", during, n=1)
    persons.update("fresh", during + timedelta(minutes=2), n=2)
    persons.update("fresh", during + timedelta(minutes=3), n=3)
    await persons.write(project)

    rows = await export_now(project, f"persons-interval-{project.id}", model="persons")
    live = {r["distinct_id"]: (r["person_id"], r["person_version"], r["person_distinct_id_version"], r["properties"])
            for r in rows if not r["is_deleted"]}  # fmt: skip
    assert len(live) == len([r for r in rows if not r["is_deleted"]])
    kept, merged = persons.person_of("kept"), {"k": 1, "g": 1}
    assert live == {
        "renamed": (persons.person_of("renamed"), 1, 0, {"name": "new"}),
        "kept": (kept, 1, 0, merged), "kept-too": (kept, 1, 0, merged),
        "gone": (kept, 1, 1, merged),  # its link moved: version 1
        "fresh": (persons.person_of("fresh"), 2, 0, {"n": 3}),
    }  # fmt: skip
    created = {r["distinct_id"]: datetime.fromisoformat(r["created_at"]) for r in rows if not r["is_deleted"]}
    assert created["gone"] == created["kept"] == before - timedelta(days=1)  # the earlier of the two persons'
    assert created["fresh"] == during
    end = now + timedelta(seconds=1)
    assert all(end - timedelta(hours=1) <= datetime.fromisoformat(r["_inserted_at"]) < end for r in rows)
    # PostHog's: the change in the interval, of the person or the link; when both changed in it, the earlier
    inserted = {r["distinct_id"]: datetime.fromisoformat(r["_inserted_at"]) for r in rows if not r["is_deleted"]}
    assert inserted["renamed"] == during  # its person changed, not its link
    assert inserted["fresh"] == during  # its link made then, its person changed last at during + 3 minutes
    assert {r["team_id"] for r in rows} == {project.id}


async def test_a_person_merged_away_is_exported_once_deleted(source_project: Project) -> None:
    project = source_project
    if project.stack.settings.source == "clickhouse":
        pytest.skip(
            "PostHog's persons query reaches a person only through the latest links of its distinct ids "
            "(person_distinct_id2); a person merged away has no link left, so PostHog's export, which the "
            "ClickHouse source follows, never shows it: its ids' rows name the survivor"
        )
    now = datetime.now(UTC).replace(microsecond=0)
    persons = PersonHistory(project.id)
    persons.create("kept", now - timedelta(hours=2), k=1)
    persons.create("gone", now - timedelta(hours=2), g=1)
    gone = persons.person_of("gone")
    persons.merge("gone", into="kept", at=now - timedelta(minutes=10))
    await persons.write(project)
    rows = await export_now(project, f"persons-deleted-{project.id}", model="persons")
    deleted = [(r["distinct_id"], r["person_id"], r["person_version"], r["person_distinct_id_version"],
                r["properties"]) for r in rows if r["is_deleted"]]  # fmt: skip
    assert deleted == [("gone", gone, 100, 0, {"g": 1})]  # the link's version before it moved


_NOW_MS = f"{int(time.time() * 1000):012x}"


def v7(n: int) -> str:
    """A UUIDv7 session id as posthog-js makes them: the time it began (now), version 7, RFC variant."""
    return f"{_NOW_MS[:8]}-{_NOW_MS[8:]}-7e5f-8a6b-{n:012x}"


def reads_clickhouse(project: Project) -> bool:
    return project.stack.settings.source == "clickhouse"


async def test_sessions_model_has_posthogs_48_columns_computed_as_posthog_does(source_project: Project) -> None:
    """Each column of three sessions against the value worked out by hand from PostHog's definitions."""
    project = source_project
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)

    def at(session: str, name: str, seconds: float, distinct_id: str = "user-1", **properties: Any) -> dict[str, Any]:
        ts = (base + timedelta(seconds=seconds)).isoformat()
        return {**event(name, distinct_id, **{"$session_id": session, **properties}), "timestamp": ts}

    s1, s2, s3 = v7(1), v7(2), v7(3)
    pricing, signup = "https://www.example.com/pricing?plan=pro#top", "https://www.example.com/signup"
    await ingest(
        project,
        [
            # s1: paid search; an autocapture before the first pageview, whose values a pageview's outrank
            at(s1, "$autocapture", 0, **{"$current_url": "https://shop.example.com/landing", "utm_source": "other"}),
            at(s1, "$pageview", 5, **{"$current_url": pricing, "utm_source": "Google", "utm_medium": "cpc",
                                      "utm_campaign": "spring", "gclid": "g-1", "gclsrc": "aw.ds",
                                      "$referring_domain": "www.google.com"}),
            at(s1, "$pageview", 120, **{"$current_url": signup, "utm_term": "late term",
                                        "$external_click_url": "https://partner.example.org/a"}),
            at(s1, "$pageview", 125, **{"$current_url": signup}),
            at(s1, "$web_vitals", 150, "user-1-identified",
               **{"$current_url": "https://www.example.com/vitals", "$web_vitals_LCP_value": 1234.5}),
            # s2: a bounce from a facebook subdomain (its first significant subdomain is facebook.com)
            at(s2, "$pageview", 600.25, "user-2", **{"$current_url": "https://example.com/", "fbclid": "fb-1",
                                                     "$referring_domain": "de-de.facebook.com"}),
            at(s2, "$pageleave", 604.9, "user-2"),
            # s3: no pageview, screen or autocapture: is_bounce is null; a direct visit
            at(s3, "checkout", 900, "user-3", **{"$referring_domain": "$direct"}),
            # no session of PostHog's: not a UUIDv7, or too old for its lookback
            at("not-a-uuid", "$pageview", 10, **{"$current_url": "https://example.com/"}),
            at(str(uuid.uuid4()), "$pageview", 10, **{"$current_url": "https://example.com/"}),
            {**at(v7(4), "$pageview", 0, **{"$current_url": "https://example.com/"}),
             "timestamp": (base - timedelta(days=4)).isoformat()},
        ],
    )  # fmt: skip
    rows = await export_now(project, f"sessions-{project.id}", model="sessions")
    assert list(rows[0]) == SESSION_COLUMNS and len(SESSION_COLUMNS) == 48
    by_id = {row["session_id"]: row for row in rows}
    assert set(by_id) == {s1, s2, s3}
    inserted = {row["session_id"]: row.pop("_inserted_at") for row in rows}
    nothing = dict.fromkeys(SESSION_COLUMNS)  # null unless said otherwise
    expected = {
        s1: {**nothing, "session_id": s1, "session_id_v7": str(int(s1.replace("-", ""), 16)),
             "team_id": project.id, "distinct_id": "user-1-identified",
             "urls": sorted([pricing, signup]), "num_uniq_urls": 2,
             "entry_current_url": pricing, "entry_pathname": "/pricing", "entry_hostname": "www.example.com",
             "end_current_url": signup, "end_pathname": "/signup", "end_hostname": "www.example.com",
             "exit_current_url": signup, "exit_pathname": "/signup",
             "entry_utm_source": "Google", "entry_utm_campaign": "spring", "entry_utm_medium": "cpc",
             "entry_utm_term": "late term", "entry_referring_domain": "www.google.com", "entry_gclid": "g-1",
             "entry_gclsrc": "aw.ds", "pageview_count": 3, "autocapture_count": 1, "screen_count": 0,
             "page_screen_autocapture_count_up_to": 2, "channel_type": "Paid Search", "session_duration": 150,
             "duration": 150, "is_bounce": False, "last_external_click_url": "https://partner.example.org/a",
             # PostHog's raw_sessions_v3 keeps no web vitals (its v2 table did)
             "vitals_lcp": None if reads_clickhouse(project) else 1234.5},
        s2: {**nothing, "session_id": s2, "session_id_v7": str(int(s2.replace("-", ""), 16)),
             "team_id": project.id, "distinct_id": "user-2", "urls": ["https://example.com/"], "num_uniq_urls": 1,
             "entry_current_url": "https://example.com/", "entry_pathname": "/", "entry_hostname": "example.com",
             "end_current_url": "https://example.com/", "end_pathname": "/", "end_hostname": "example.com",
             "exit_current_url": "https://example.com/", "exit_pathname": "/",
             "entry_referring_domain": "de-de.facebook.com", "entry_fbclid": "fb-1", "pageview_count": 1,
             "autocapture_count": 0, "screen_count": 0, "page_screen_autocapture_count_up_to": 1,
             "channel_type": "Organic Social", "session_duration": 4, "duration": 4, "is_bounce": True},
        s3: {**nothing, "session_id": s3, "session_id_v7": str(int(s3.replace("-", ""), 16)),
             "team_id": project.id, "distinct_id": "user-3", "urls": [], "num_uniq_urls": 0,
             "entry_referring_domain": "$direct", "pageview_count": 0, "autocapture_count": 0, "screen_count": 0,
             "page_screen_autocapture_count_up_to": 0, "channel_type": "Direct", "session_duration": 0,
             "duration": 0, "is_bounce": None},
    }  # fmt: skip
    times = {s1: (0, 150), s2: (600.25, 604.9), s3: (900, 900)}
    for session, want in expected.items():
        got = by_id[session]
        first, last = times[session]
        assert datetime.fromisoformat(got.pop("start_timestamp")) == base + timedelta(seconds=first)
        assert datetime.fromisoformat(got.pop("end_timestamp")) == base + timedelta(seconds=last)
        assert base <= datetime.fromisoformat(inserted[session]) <= datetime.now(UTC)  # its last ingestion
        got["urls"] = sorted(got["urls"])
        want = {k: v for k, v in want.items() if k not in ("start_timestamp", "end_timestamp", "_inserted_at")}
        assert set(got) == set(want)
        assert got == want, {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}


CHANNELS = [  # the entry pageview's properties, and the channel PostHog's default rules give them
    ({"utm_campaign": "Cross-Network-Q1", "utm_medium": "cpc"}, "Cross Network"),
    ({"utm_medium": "cpc", "utm_source": "Facebook"}, "Paid Social"),
    ({"gclid": "g", "utm_source": "google"}, "Paid Search"),
    ({"gad_source": "1"}, "Paid Search"),
    ({"utm_medium": "cpc", "utm_campaign": "summer-shopping"}, "Paid Shopping"),
    ({"utm_medium": "paidsocial"}, "Paid Unknown"),
    ({"utm_medium": "Email"}, "Email"),
    ({"utm_medium": "web-push"}, "Push"),
    ({"$referring_domain": "www.bing.com"}, "Organic Search"),
    ({"$referring_domain": "blog.example.net"}, "Referral"),
    ({"$referring_domain": "news.example.org", "utm_campaign": "launch-video"}, "Organic Video"),
    ({"$referring_domain": "$direct", "utm_source": "direct"}, "Direct"),
    ({"$referring_domain": "$direct", "fbclid": "f"}, "Organic Social"),
    ({}, "Unknown"),
]


async def test_channel_type_follows_posthogs_default_rules(source_project: Project) -> None:
    project = source_project
    sessions = [v7(100 + i) for i in range(len(CHANNELS))]
    await ingest(
        project,
        [
            event("$pageview", "u", **{"$session_id": s, **props})
            for s, (props, _) in zip(sessions, CHANNELS, strict=True)
        ],
    )
    rows = await export_now(project, f"channels-{project.id}", model="sessions")
    got = {row["session_id"]: row["channel_type"] for row in rows}
    assert [got[s] for s in sessions] == [channel for _, channel in CHANNELS]


SESSION_COLUMNS = [
    "session_id", "session_id_v7", "team_id", "distinct_id", "start_timestamp", "end_timestamp", "urls",
    "num_uniq_urls", "entry_current_url", "entry_pathname", "entry_hostname", "end_current_url", "end_pathname",
    "end_hostname", "entry_utm_source", "entry_utm_campaign", "entry_utm_medium", "entry_utm_term",
    "entry_utm_content", "entry_referring_domain", "entry_gclid", "entry_fbclid", "entry_gad_source",
    "pageview_count", "autocapture_count", "screen_count", "channel_type", "session_duration", "duration",
    "is_bounce", "last_external_click_url", "page_screen_autocapture_count_up_to", "exit_current_url",
    "exit_pathname", "vitals_lcp", "_inserted_at", "entry_gclsrc", "entry_dclid", "entry_gbraid", "entry_wbraid",
    "entry_msclkid", "entry_twclid", "entry_li_fat_id", "entry_mc_cid", "entry_igshid", "entry_ttclid",
    "entry__kx", "entry_irclid",
]  # fmt: skip
"""PostHog's sessions export columns, in its order (`sql/sessions.py`)."""


async def resumes_from_its_cursor(project: Project, model: str, key: str) -> None:
    """Past the record limit (100 in tests) the model continues as new without skipping or repeating a record of
    the 150 the project has."""
    path = f"{model}-cursor-{project.id}"
    body = {"name": path, "model": model, "interval": "hour", "destination": {"type": "File", "config": {"path": path}}}
    export = await create_export(project, body)
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    await start_run(project.stack, export, start=end - timedelta(hours=1), end=end)
    found = await runs_until(
        project, export["id"], lambda rs: [r["status"] for r in rs] == ["ContinuedAsNew", "Completed"]
    )
    assert [r["records_completed"] for r in found] == [100, 50]
    files = sorted((project.files / path).iterdir())
    keys = [json.loads(line)[key] for f in files for line in f.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 150, model


async def test_persons_resume_from_their_cursor(source_project: Project) -> None:
    persons, at = PersonHistory(source_project.id), datetime.now(UTC) - timedelta(minutes=5)
    for i in range(150):
        persons.create(f"user-{i}", at)
    await persons.write(source_project)
    await resumes_from_its_cursor(source_project, "persons", "distinct_id")


async def test_sessions_resume_from_their_cursor(source_project: Project) -> None:
    await ingest(source_project, [event("$pageview", f"user-{i}", **{"$session_id": v7(i)}) for i in range(150)])
    await resumes_from_its_cursor(source_project, "sessions", "session_id")


async def pageviews_written(project: Project, rows: list[tuple[str, datetime, datetime]]) -> None:
    """`$pageview`s of these (session, timestamp, ingested at) written straight into the project's source."""
    if reads_clickhouse(project):
        events = [Event(project.id, "$pageview", "u", uuid.uuid4(), at, inserted, inserted,
                        properties={"$session_id": session}).row() for session, at, inserted in rows]  # fmt: skip
        await asyncio.to_thread(PostHogClickHouse.of(project.stack.settings).insert, "events", events)
        return
    await project.stack.pool.executemany(
        """
        INSERT INTO events (uuid, team_id, event, distinct_id, properties, timestamp, created_at, inserted_at)
        VALUES ($1, $2, '$pageview', 'u', jsonb_build_object('$session_id', $3::text), $4, $4, $5)
        """,
        [(uuid.uuid4(), project.id, session, at, inserted) for session, at, inserted in rows],
    )


async def test_a_session_is_exported_where_posthog_puts_it_typed_in_parquet(source_project: Project) -> None:
    """A session's `_inserted_at` is the later of its last ingestion and its `end_timestamp`: one whose events
    were ingested before the interval but happen in it is exported there. Of one with events ingested after the
    interval's end, the PostgreSQL source exports its state as of the interval's end; PostHog's ClickHouse keeps
    only its state now, in which the session's last ingestion and end are the next interval's (PostHog's rule:
    it waits for that one). Parquet files type each column."""
    project = source_project
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hour = end - timedelta(hours=1)
    early, late = v7(10), v7(11)
    await pageviews_written(project, [  # (session, timestamp, inserted_at)
        (early, hour + timedelta(minutes=10), hour - timedelta(hours=2)),  # dated ahead when it was ingested
        (late, hour + timedelta(minutes=5), hour + timedelta(minutes=5)),
        (late, hour + timedelta(minutes=20), end + timedelta(minutes=1)),  # ingested after the interval
    ])  # fmt: skip
    path = f"sessions-parquet-{project.id}"
    body = {"name": path, "model": "sessions", "interval": "hour",
            "destination": {"type": "File", "config": {"path": path, "file_format": "Parquet"}}}  # fmt: skip
    export = await create_export(project, body)
    (run,) = await run_hour(project, export, end, 1)
    assert run["status"] == "Completed", run
    (file,) = (project.files / path).iterdir()
    table = pq.read_table(file)
    assert table.schema.names == SESSION_COLUMNS
    types = {name: table.schema.field(name).type for name in table.schema.names}
    assert types["urls"] == pa.list_(pa.string()) and types["is_bounce"] == pa.bool_()
    assert types["vitals_lcp"] == pa.float64() and types["session_duration"] == types["team_id"] == pa.int64()
    assert types["_inserted_at"] == types["start_timestamp"] == pa.timestamp("us", tz="UTC")
    assert types["session_id_v7"] == types["channel_type"] == pa.string()
    by_id = {row["session_id"]: row for row in table.to_pylist()}
    assert by_id[early]["_inserted_at"] == by_id[early]["end_timestamp"] == hour + timedelta(minutes=10)
    if reads_clickhouse(project):
        assert set(by_id) == {early}
        return
    assert set(by_id) == {early, late}
    assert (by_id[late]["pageview_count"], by_id[late]["is_bounce"]) == (1, True)  # as of the interval's end
    assert by_id[late]["end_timestamp"] == by_id[late]["_inserted_at"] == hour + timedelta(minutes=5)
