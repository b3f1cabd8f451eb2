"""`make demo`: data leaving, within two minutes, through a running `make dev` (found by `.data/env`).

It loads the last 15 minutes of a small site's events into project 1, as an earlier ingestion left them (an
event captured now belongs to an interval that has not ended yet, and a backfill exports ended intervals
only). Then, through the HTTP API, it makes three `every 5 minutes` exports, to JSONLines files, a Delta table
and an Iceberg table (all under `.data/exports/1/demo-*`), backfills those 15 minutes on each, and follows the
backfills until every interval is in. A second `make demo` replaces the exports of the first (by name).
"""

import asyncio
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson

from contracts.intervals import Interval, IntervalSpec, latest_boundary
from entrypoints import stack_env

PROJECT_ID = 1
EVENTS = 150
SPAN = timedelta(minutes=15)
PREFIX = "demo: "
EXPORTS = {
    "files": {"type": "File", "config": {"path": "demo-files", "file_format": "JSONLines"}},
    "delta": {"type": "DeltaLake", "config": {"storage": "File", "path": "demo-delta", "table_name": "events"}},
    "iceberg": {"type": "Iceberg", "config": {"storage": "File", "path": "demo-iceberg", "table_name": "events"}},
}
PAGES = ["/", "/pricing", "/docs", "/blog/launch", "/signup"]


class Api:
    def __init__(self, session: aiohttp.ClientSession, url: str, key: str) -> None:
        self.session, self.base = session, f"{url}/api/environments/{PROJECT_ID}/batch_exports/"
        self.headers = {"Authorization": f"Bearer {key}"}

    async def __call__(self, method: str, path: str = "", body: Any = None) -> Any:
        async with self.session.request(method, self.base + path, json=body, headers=self.headers) as response:
            answer = await response.json() if response.status != 204 else None
            if response.status >= 400:
                raise SystemExit(f"make demo: {method} {self.base + path} answered {response.status}: {answer}")
            return answer


async def seed(ends_at: datetime) -> int:
    """EVENTS pageviews and signups of a dozen visitors, ingested over the SPAN before `ends_at`."""
    rng = random.Random()
    rows = []
    for _ in range(EVENTS):
        at = ends_at - timedelta(seconds=rng.uniform(1, SPAN.total_seconds()))
        event = rng.choice(["$pageview"] * 5 + ["signup"])
        properties = {"$current_url": f"https://shop.example{rng.choice(PAGES)}", "demo": True}
        rows.append(
            (uuid.uuid4(), PROJECT_ID, event, f"visitor-{rng.randrange(12)}", orjson.dumps(properties).decode(), at)
        )
    conn = await stack_env.connect_database()
    try:
        await conn.executemany(
            """
            INSERT INTO events (uuid, team_id, event, distinct_id, properties, timestamp, created_at, inserted_at)
            VALUES ($1, $2, $3, $4, $5::jsonb, $6, $6, $6)
            """,
            rows,
        )
    finally:
        await conn.close()
    return len(rows)


async def follow(api: Api, backfills: dict[str, tuple[str, str]]) -> None:
    """A line per change until every backfill has closed; fails when one did not complete."""
    said: dict[str, str] = {}
    while True:
        open_ = 0
        for name, (export_id, backfill_id) in backfills.items():
            backfill = await api("GET", f"{export_id}/backfills/{backfill_id}/")
            progress = backfill["progress"] or {}
            done, total = progress.get("finished_runs", 0), progress.get("total_runs", "?")
            line = f"{name}: {done} of {total} intervals done, {backfill['status']}"
            if said.get(name) != line:
                print(f"  {line}", flush=True)
                said[name] = line
            if backfill["status"] in ("Failed", "Cancelled", "Terminated", "TimedOut"):
                raise SystemExit(f"make demo: the {name} backfill ended {backfill['status']}")
            open_ += backfill["status"] != "Completed"
        if not open_:
            return
        await asyncio.sleep(1)


async def demo() -> None:
    stack_env.load()
    url = os.environ.get(stack_env.API_URL)
    key = os.environ.get(stack_env.API_KEY)
    if not url or not key:
        raise SystemExit(f"make demo: {stack_env.no_stack('stack', str(stack_env.env_path()), stack_env.API_URL)}")
    started = time.monotonic()
    ends_at = latest_boundary(IntervalSpec(Interval.EVERY_5_MINUTES), datetime.now(UTC))
    starts_at = ends_at - SPAN
    async with aiohttp.ClientSession() as session:
        api = Api(session, url, key)
        try:
            listed = await api("GET", "?limit=100")
        except aiohttp.ClientConnectionError:
            raise SystemExit(f"make demo: {stack_env.no_stack('API', url, stack_env.API_URL)}") from None
        for old in listed["results"]:
            if old["name"].startswith(PREFIX):
                await api("DELETE", f"{old['id']}/")
        seeded = await seed(ends_at)
        print(f"Loaded {seeded} events ingested between {starts_at:%H:%M} and {ends_at:%H:%M} UTC into project 1.")
        backfills: dict[str, tuple[str, str]] = {}
        for name, destination in EXPORTS.items():
            export = await api("POST", body={"name": PREFIX + name, "interval": "every 5 minutes",
                                             "destination": destination})  # fmt: skip
            backfill = await api("POST", f"{export['id']}/backfills/",
                                 {"start_at": starts_at.isoformat(), "end_at": ends_at.isoformat()})  # fmt: skip
            print(f"Export '{export['name']}' ({destination['type']}, every 5 minutes): {export['id']}")
            backfills[name] = (export["id"], backfill["backfill_id"])
        print(f"Backfilling {starts_at:%H:%M}-{ends_at:%H:%M} UTC on each:", flush=True)
        await follow(api, backfills)
    print(f"Done in {time.monotonic() - started:.0f} s: every record is in .data/exports/1/demo-files, "
          "demo-delta/events and demo-iceberg/posthog/events.")  # fmt: skip


def main() -> None:
    try:
        asyncio.run(demo())
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
