"""A backfill's transitions in the books: it starts `Starting`, moves to `Running` with its count of runs, and
ends as its workflow says (`statuses.backfill_ended`), counting the intervals whose run ended for good. A backfill
whose workflow closed unseen is closed by reconciliation (`closing`)."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from batch_exports.runs.ports import RunBook
from batch_exports.runs.run import Backfill
from batch_exports.runs.statuses import BackfillStatus


class BackfillNotRecorded(Exception):
    """The request that started the backfill has not committed its row yet (its workflow retries)."""

    def __init__(self, backfill_id: uuid.UUID) -> None:
        super().__init__(f"backfill {backfill_id} is not recorded yet")


async def start_backfill(
    book: RunBook,
    backfill_id: uuid.UUID,
    total_runs: int,
    count_records: Callable[[Backfill], Awaitable[int | None]],
) -> None:
    """Mark the backfill Running, with how many runs and (an estimate of, by `count_records`) how many records."""
    backfill = await book.backfill(backfill_id)
    if backfill is None:
        raise BackfillNotRecorded(backfill_id)
    await book.mark_backfill_running(backfill_id, total_runs, await count_records(backfill))


async def intervals_with_runs(
    book: RunBook, export_id: uuid.UUID, after: datetime, through: datetime
) -> list[datetime]:
    """The ends of the intervals in `(after, through]` that have a run (of any status), oldest first: a backfill
    of what is missing skips them."""
    return sorted(await book.interval_ends(export_id, after, through))


async def finish_backfill(book: RunBook, backfill_id: uuid.UUID, status: BackfillStatus) -> int:
    """Record how the backfill ended, with its finished intervals counted from their runs; returns that count."""
    finished = await book.finished_intervals(backfill_id)
    await book.finish_backfill(backfill_id, status, finished)
    return finished
