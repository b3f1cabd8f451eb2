"""The gauges read from the database: the lag of each export that runs on schedule (not deleted, not paused),
whether each export is paused, how many intervals it owes that have no completed run (`store.coverage`), and
the runs each export's open backfills have left (0 without one, so a rule finds the series before the first
backfill).

Every worker refreshes them every `metrics_refresh_seconds` (two queries, and one per live export), so any
one worker's endpoint tells the whole truth; dashboards and rules take the `max` over workers. A failed refresh
is logged and tried again at the next tick: the gauges keep their last values in between.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from batch_exports.runtime import Runtime
from batch_exports.services.reconciliation import GAP_GRACE
from batch_exports.store import backfills, coverage, exports
from batch_exports.store.exports import Freshness

logger = logging.getLogger(__name__)


def lag_seconds(export: Freshness, now: datetime) -> float:
    """Now (or the export's `end_at`, once passed) minus the end of its latest completed interval.

    Before the first completed interval it counts from when the export was created (or its `start_at`).
    """
    reached = export.exported_until or max(export.created_at, export.start_at or export.created_at)
    until = min(now, export.end_at) if export.end_at else now
    return max((until - reached).total_seconds(), 0.0)


async def missing_intervals(rt: Runtime, export: Freshness, now: datetime) -> int:
    """The intervals ending after `owed_from` that have no completed run, up to the last one the schedule (or the
    gap-filling) has had its chance to start; while paused, only up to where the pause began to give them up."""
    if export.owed_from is None:
        return 0
    jitter = export.interval.jitter if rt.settings.jitter_enabled else timedelta(0)
    through = now - jitter - GAP_GRACE
    if export.end_at is not None:
        through = min(through, export.end_at)
    if export.paused:
        through = min(through, export.covered_until or export.owed_from)
    return await coverage.missing_intervals(rt.pool, export.id, export.interval_spec, export.owed_from, through)


async def refresh(rt: Runtime, now: datetime | None = None) -> None:
    now = now or datetime.now(UTC)
    live = await exports.freshness(rt.pool)
    rt.metrics.export_lags(
        {
            str(export.id): (lag_seconds(export, now), export.interval.nominal.total_seconds())
            for export in live
            if not export.paused
        }
    )
    rt.metrics.export_states(
        {str(export.id): (export.paused, await missing_intervals(rt, export, now)) for export in live}
    )
    left = await backfills.runs_left_by_export(rt.pool)
    rt.metrics.backfills_left({str(export.id): left.get(export.id, 0) for export in live})


@contextlib.asynccontextmanager
async def refreshing(rt: Runtime) -> AsyncIterator[None]:
    """Keep the gauges fresh in the background while the block runs."""

    async def loop() -> None:
        while True:
            try:
                await refresh(rt)
            except Exception as error:  # the database may be away for a moment; the worker goes on
                logger.warning("could not refresh the export gauges: %s", error)
            await asyncio.sleep(rt.settings.metrics_refresh_seconds)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
