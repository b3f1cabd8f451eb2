"""`backfills watch`: a backfill's progress until it closes, as a live bar on a terminal, else as plain lines.

Both show the intervals done and failed out of the total, the records its runs exported, the rate (records per
second since watching began) and the time left (from the pace of intervals so far). While intervals are under way
they say how many are exporting (`running`) and how many are not yet (`waiting`: for their run to start, for their
interval to settle, for a worker slot or their project's share of one, or for a retry), so "0/N" never hides whether
anything moves. A reading pages through the backfill's runs, so a long backfill's readings slow down as it grows;
`--every` spaces them.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from contracts.statuses import BackfillStatus, RunStatus
from entrypoints.cli.client import Api


@dataclass(frozen=True)
class Reading:
    status: str
    total: int
    done: int
    failed: int
    records: int
    rate: float
    """Records per second since watching began."""
    left_seconds: float | None
    running: int = 0
    """Intervals whose latest run is exporting."""
    waiting: int = 0
    """Intervals whose latest run is recorded but not exporting yet (`Starting`), or failed and will be retried."""

    def line(self) -> str:
        left = "?" if self.left_seconds is None else _duration(self.left_seconds)
        under_way = "".join(f", {n} {what}" for n, what in ((self.running, "running"), (self.waiting, "waiting")) if n)
        return (f"{self.done}/{self.total} intervals done{under_way}, {self.failed} failed, {self.records:,} records, "
                f"{self.rate:,.0f} records/s, {left} left, {self.status}")  # fmt: skip


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


@dataclass(frozen=True)
class Tally:
    """What the backfill's runs say: records exported, and intervals by the status of their latest run."""

    records: int
    failed: int
    running: int
    waiting: int


WAITING = (RunStatus.STARTING, RunStatus.FAILED_RETRYABLE)
"""A latest run in these is not exporting now, and will: it waits to start, settle or be retried."""


def tally(api: Api, export_id: str, backfill: dict[str, Any]) -> Tally:
    """The backfill's runs counted: every completed execution's records (a continued one's segments add up), and the
    intervals whose latest run `Failed`, is `Running`, or is waiting (`WAITING`)."""
    statuses = [RunStatus.COMPLETED, RunStatus.CONTINUED_AS_NEW, RunStatus.FAILED, RunStatus.RUNNING, *WAITING]
    params = {"status": [s.value for s in statuses], "start": backfill["start_at"], "end": backfill["end_at"]}
    records, latest = 0, dict[str, dict[str, Any]]()
    for run in api.pages(f"{export_id}/runs/", params):
        if run["backfill"] != backfill["id"]:
            continue
        if run["status"] in (RunStatus.COMPLETED, RunStatus.CONTINUED_AS_NEW):
            records += run["records_completed"] or 0
        end = run["data_interval_end"]
        if end not in latest or run["created_at"] > latest[end]["created_at"]:
            latest[end] = run
    now = [RunStatus(run["status"]) for run in latest.values()]
    return Tally(records, now.count(RunStatus.FAILED), now.count(RunStatus.RUNNING), sum(s in WAITING for s in now))


def readings(api: Api, export_id: str, backfill_id: str) -> Callable[[], Reading]:
    began = time.monotonic()
    first: list[tuple[int, int]] = []

    def read() -> Reading:
        backfill = api("GET", f"{export_id}/backfills/{backfill_id}/")
        progress = backfill["progress"] or {}
        done, total = progress.get("finished_runs") or 0, progress.get("total_runs") or 0
        runs = tally(api, export_id, backfill)
        if not first:
            first.append((done, runs.records))
        elapsed = max(time.monotonic() - began, 1e-6)
        pace = (done - first[0][0]) / elapsed
        left = (total - done) / pace if pace > 0 else (0.0 if done >= total else None)
        rate = (runs.records - first[0][1]) / elapsed
        return Reading(backfill["status"], total, done, runs.failed, runs.records, rate, left,
                       running=runs.running, waiting=runs.waiting)  # fmt: skip

    return read


def watch(api: Api, export_id: str, backfill_id: str, console: Console, every: float = 1.0) -> Reading:
    """Follow the backfill until it closes; the last reading."""
    read = readings(api, export_id, backfill_id)
    if not console.is_terminal:
        said = None
        while True:
            reading = read()
            if reading.line() != said:
                print(reading.line(), flush=True)
                said = reading.line()
            if not BackfillStatus(reading.status).is_open:
                return reading
            time.sleep(every)
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[line]}"))
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"backfill {backfill_id[:8]}", total=None, line="")
        while True:
            reading = read()
            bar.update(task, total=reading.total or None, completed=reading.done, line=reading.line())
            if not BackfillStatus(reading.status).is_open:
                return reading
            time.sleep(every)
