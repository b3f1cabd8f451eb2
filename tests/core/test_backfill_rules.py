"""A backfill ends as its workflow says, counting the intervals whose run ended for good."""

from batch_exports.runs.backfills import finish_backfill
from batch_exports.runs.statuses import BackfillStatus, RunStatus
from tests.core.fakes import HOUR, NOW, FakeRunBook


async def test_a_backfill_counts_each_interval_once_and_not_the_ones_still_retried() -> None:
    book = FakeRunBook()
    export_id = book.export()
    backfill_id = book.add_backfill(export_id, total=3).id
    book.add_run(export_id, NOW - 2 * HOUR, RunStatus.FAILED, backfill_id=backfill_id)
    book.add_run(export_id, NOW - 2 * HOUR, RunStatus.COMPLETED, backfill_id=backfill_id)  # its retry
    book.add_run(export_id, NOW - HOUR, RunStatus.CANCELLED, backfill_id=backfill_id)
    book.add_run(export_id, NOW, RunStatus.FAILED_RETRYABLE, backfill_id=backfill_id)  # another execution follows
    assert await finish_backfill(book, backfill_id, BackfillStatus.CANCELLED) == 2
    ended = book.backfills[backfill_id]
    assert ended.status is BackfillStatus.CANCELLED and ended.finished_runs == 2 and ended.finished_at is not None
