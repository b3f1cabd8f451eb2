"""What a backfill would do, told before it starts: its intervals, how many hold data, the records and bytes it
would export (in all and per day) and about how long it would take. Nothing is started and no row is exported.

Records are counted by the source per interval (or per local day) in one grouped query over its index, never
by reading the rows. Bytes are records times the bytes per record the export's recent runs wrote (before its
first run: a sample of a few hundred records of the range, as the export would read them). Time comes from
the same runs: each interval costs what the fastest of them took, each record what the rest took per record,
and the backfill runs `BATCH_EXPORTS_BACKFILL_CONCURRENCY` intervals at once.
"""

import contextlib
import itertools
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from batch_exports.exports.export import BatchExport
from batch_exports.runtime import Runtime
from batch_exports.store import runs
from connectors.sources import Source, open_source
from connectors.sources.buckets import Buckets, intervals_of, per_day
from contracts.intervals import boundaries

SAMPLE_RECORDS = 500
"""Records read to learn their size when the export has no run to learn it from."""


@dataclass(frozen=True)
class Day:
    day: date
    records: int
    bytes: int


@dataclass(frozen=True)
class Estimate:
    start_at: datetime | None
    end_at: datetime | None
    intervals: int
    intervals_with_data: int
    records: int
    bytes: int
    estimated_seconds: float | None
    """None when the export has no completed run to time it by."""
    days: list[Day]

    def body(self) -> dict[str, Any]:
        return {
            "start_at": self.start_at.isoformat() if self.start_at else None,
            "end_at": self.end_at.isoformat() if self.end_at else None,
            "intervals": self.intervals,
            "intervals_with_data": self.intervals_with_data,
            "records": self.records,
            "bytes": self.bytes,
            "estimated_seconds": self.estimated_seconds,
            "days": [{"day": d.day.isoformat(), "records": d.records, "bytes": d.bytes} for d in self.days],
        }


NOTHING = Estimate(None, None, 0, 0, 0, 0, 0.0, [])
"""What a backfill that would run nothing (an unpause with nothing skipped) does."""


async def estimate(
    rt: Runtime, export: BatchExport, start_at: datetime, end_at: datetime, *, missing_only: bool = False
) -> Estimate:
    """The estimate of a backfill of `[start_at, end_at]`; with `missing_only` (an unpause's), of the intervals
    in it that have no run yet, the ones it would run."""
    spec = export.interval_spec
    edges = list(boundaries(spec, start_at, end_at))  # what the backfill runs: the whole intervals in the range
    first, last = edges[0], edges[-1]
    end_of = dict(itertools.pairwise(edges))
    done = await runs.interval_ends(rt.pool, export.id, first, last) if missing_only else set()
    intervals = sum(1 for end in edges[1:] if end not in done)
    source = open_source(rt.source, export.team_id, export.model, export.selection())
    buckets = Buckets(spec)
    counts = sorted(await source.counts(first, last, buckets), key=lambda c: buckets.start_of(c.bucket))
    owners = intervals_of(spec, [buckets.start_of(c.bucket) for c in counts], first, last)
    kept = [(owner, c) for owner, c in zip(owners, counts, strict=True) if end_of.get(owner) not in done]
    counts = [c for _, c in kept]
    starts = [buckets.start_of(c.bucket) for c in counts]
    with_data = len({owner for owner, _ in kept})
    records = sum(c.records for c in counts)
    recent = await runs.recent_throughput(rt.pool, export.id)
    if recent.records:
        per_record = recent.bytes / recent.records
    else:
        per_record = await _sampled_bytes_per_record(source, starts[0], end_at) if starts else 0.0
    days = [Day(day, n, round(n * per_record)) for day, n in per_day(buckets, counts).items()]
    return Estimate(
        start_at=start_at,
        end_at=end_at,
        intervals=intervals,
        intervals_with_data=with_data,
        records=records,
        bytes=sum(d.bytes for d in days),
        estimated_seconds=_seconds(recent, intervals, records, rt.settings.backfill_concurrency),
        days=days,
    )


def _seconds(recent: runs.Throughput, intervals: int, records: int, concurrency: int) -> float | None:
    if not recent.runs:
        return None
    per_interval = recent.fastest_seconds
    rest = max(recent.seconds - recent.runs * per_interval, 0.0)
    per_record = rest / recent.records if recent.records else 0.0
    at_once = max(min(concurrency, intervals), 1)
    return round((intervals * per_interval + records * per_record) / at_once, 1)


async def _sampled_bytes_per_record(source: Source, start: datetime, end: datetime) -> float:
    """The average size (as Arrow holds them, about what a file of them takes) of the first records from `start`."""
    size, rows = 0, 0
    async with contextlib.aclosing(source.read(start, end, limit=SAMPLE_RECORDS)) as batches:
        async for batch in batches:
            size, rows = size + batch.data.nbytes, rows + batch.data.num_rows
    return size / rows if rows else 0.0
