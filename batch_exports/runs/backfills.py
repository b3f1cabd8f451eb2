"""A backfill's transitions in the books: it starts `Starting`, moves to `Running` with its count of runs, and
ends as its workflow says (`statuses.backfill_ended`), counting the intervals whose run ended for good."""

import uuid

from batch_exports.runs.ports import RunBook
from batch_exports.runs.statuses import BackfillStatus


async def finish_backfill(book: RunBook, backfill_id: uuid.UUID, status: BackfillStatus) -> int:
    """Record how the backfill ended, with its finished intervals counted from their runs; returns that count."""
    finished = await book.finished_intervals(backfill_id)
    await book.finish_backfill(backfill_id, status, finished)
    return finished
