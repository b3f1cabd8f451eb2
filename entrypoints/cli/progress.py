"""`backfills watch`: a backfill's progress until it closes, as a live bar on a terminal, else as plain lines.

Both show the intervals done and failed out of the total, the records its runs exported, the rate (records per
second since watching began) and the time left (from the pace of intervals so far). A reading pages through
the backfill's ended runs, so a long backfill's readings slow down as it grows; `--every` spaces them.
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

    def line(self) -> str:
        left = "?" if self.left_seconds is None else _duration(self.left_seconds)
        return (f"{self.done}/{self.total} intervals done, {self.failed} failed, {self.records:,} records, "
                f"{self.rate:,.0f} records/s, {left} left, {self.status}")  # fmt: skip


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def tally(api: Api, export_id: str, backfill: dict[str, Any]) -> tuple[int, int]:
    """(records exported, intervals failed) by the backfill's runs: every completed execution's records (a
    continued one's segments add up), and the intervals whose latest run `Failed`."""
    statuses = [RunStatus.COMPLETED, RunStatus.CONTINUED_AS_NEW, RunStatus.FAILED]
    params = {"status": [s.value for s in statuses], "start": backfill["start_at"], "end": backfill["end_at"]}
    records, latest = 0, dict[str, dict[str, Any]]()
    for run in api.pages(f"{export_id}/runs/", params):
        if run["backfill"] != backfill["id"]:
            continue
        if run["status"] != RunStatus.FAILED:
            records += run["records_completed"] or 0
        end = run["data_interval_end"]
        if end not in latest or run["created_at"] > latest[end]["created_at"]:
            latest[end] = run
    return records, sum(run["status"] == RunStatus.FAILED for run in latest.values())


def readings(api: Api, export_id: str, backfill_id: str) -> Callable[[], Reading]:
    began = time.monotonic()
    first: list[tuple[int, int]] = []

    def read() -> Reading:
        backfill = api("GET", f"{export_id}/backfills/{backfill_id}/")
        progress = backfill["progress"] or {}
        done, total = progress.get("finished_runs") or 0, progress.get("total_runs") or 0
        records, failed = tally(api, export_id, backfill)
        if not first:
            first.append((done, records))
        elapsed = max(time.monotonic() - began, 1e-6)
        pace = (done - first[0][0]) / elapsed
        left = (total - done) / pace if pace > 0 else (0.0 if done >= total else None)
        return Reading(backfill["status"], total, done, failed, records, (records - first[0][1]) / elapsed, left)

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
