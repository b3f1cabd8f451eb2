"""A backfill ends as its workflow says, counting the intervals whose run ended for good."""

import uuid

import pytest

from batch_exports.runs.backfills import BackfillNotRecorded, finish_backfill, intervals_with_runs, start_backfill
from batch_exports.runs.run import Backfill
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


async def test_a_backfill_starts_running_with_its_counts_once_its_row_is_committed() -> None:
    book = FakeRunBook()
    export_id = book.export()
    counted: list[uuid.UUID] = []

    async def count(backfill: Backfill) -> int | None:
        counted.append(backfill.id)
        return 1234

    with pytest.raises(BackfillNotRecorded):  # the request has not committed it yet
        await start_backfill(book, uuid.uuid4(), 3, count)
    backfill = book.add_backfill(export_id, total=3, status=BackfillStatus.STARTING)
    await start_backfill(book, backfill.id, 3, count)
    started = book.backfills[backfill.id]
    assert started.status is BackfillStatus.RUNNING and started.total_records_count == 1234
    assert counted == [backfill.id]


async def test_a_backfill_of_what_is_missing_knows_the_intervals_that_have_a_run_oldest_first() -> None:
    book = FakeRunBook()
    export_id = book.export()
    for end, status in (
        (NOW, RunStatus.FAILED),
        (NOW - 2 * HOUR, RunStatus.RUNNING),
        (NOW - 5 * HOUR, RunStatus.COMPLETED),
    ):
        book.add_run(export_id, end, status)
    book.add_run(book.export(), NOW - HOUR, RunStatus.COMPLETED)  # another export's
    assert await intervals_with_runs(book, export_id, NOW - 5 * HOUR, NOW) == [NOW - 2 * HOUR, NOW]
