"""Reconciliation's rules, with in-memory ports: a run or backfill whose execution closed unseen gets the close
status Temporal reports, once; a schedule backfill closes on what its intervals' runs did."""

from datetime import timedelta

from batch_exports.runs import closing
from batch_exports.runs.closing import SCHEDULE_BACKFILL_QUIET
from batch_exports.runs.run import BackfillKind
from batch_exports.runs.statuses import BackfillStatus, Closed, RunStatus
from tests.core.fakes import HOUR, NOW, FakeRunBook, FakeTemporal


async def test_a_terminated_execution_closes_its_open_run_with_a_warning() -> None:
    book, temporal = FakeRunBook(), FakeTemporal()
    export_id = book.export()
    run = book.add_run(export_id)
    temporal.closed[f"{run.workflow_id}/{run.workflow_run_id}"] = Closed.TERMINATED
    closed = await closing.close_run(book, temporal, run)
    assert closed is not None and closed.status is RunStatus.TERMINATED and closed.finished is not None
    assert book.runs[run.id].status is RunStatus.TERMINATED
    said = "The execution ended as Terminated without recording it (recorded by reconciliation)"
    assert book.runs[run.id].latest_error == said and book.said("WARNING") == [said]


async def test_a_running_execution_leaves_its_run_alone() -> None:
    book, temporal = FakeRunBook(), FakeTemporal()
    run = book.add_run(book.export())
    temporal.closed[f"{run.workflow_id}/{run.workflow_run_id}"] = None
    assert await closing.close_run(book, temporal, run) is None
    assert book.runs[run.id].status is RunStatus.RUNNING and not book.logs


async def test_a_run_that_recorded_its_end_meanwhile_keeps_it() -> None:
    book, temporal = FakeRunBook(), FakeTemporal()
    run = book.add_run(book.export())
    book.runs[run.id] = book.runs[run.id].model_copy(update={"status": RunStatus.COMPLETED})
    closed = await closing.close_run(book, temporal, run)  # Temporal no longer knows it: FAILED
    assert closed is not None and closed.status is RunStatus.FAILED and closed.finished is None
    assert book.runs[run.id].status is RunStatus.COMPLETED and not book.logs


async def test_a_backfill_whose_workflow_timed_out_unseen_is_closed_so() -> None:
    book, temporal = FakeRunBook(), FakeTemporal()
    made = book.add_backfill(book.export(), workflow_id="b-1", total=3)
    temporal.closed["b-1"] = None
    assert not await closing.close_backfill(book, temporal, made, NOW)
    temporal.closed["b-1"] = Closed.TIMED_OUT
    assert await closing.close_backfill(book, temporal, made, NOW)
    assert book.backfills[made.id].status is BackfillStatus.TIMED_OUT
    assert not await closing.close_backfill(book, temporal, made, NOW)  # closed once


async def test_a_schedule_backfill_closes_when_its_runs_are_in() -> None:
    book, temporal = FakeRunBook(), FakeTemporal()
    export_id = book.export()
    made = book.add_backfill(export_id, workflow_id=None, total=2, kind=BackfillKind.SCHEDULE)
    book.add_run(export_id, NOW - HOUR, RunStatus.COMPLETED, updated=NOW)
    last = book.add_run(export_id, NOW, RunStatus.RUNNING, updated=NOW)
    assert not await closing.close_backfill(book, temporal, made, NOW)  # a run is still open
    book.runs[last.id] = book.runs[last.id].model_copy(update={"status": RunStatus.COMPLETED})
    assert await closing.close_backfill(book, temporal, made, NOW)
    assert book.backfills[made.id].status is BackfillStatus.COMPLETED and not book.logs


async def test_a_schedule_backfill_whose_runs_stopped_coming_fails_and_says_what_ran() -> None:
    book, temporal = FakeRunBook(), FakeTemporal()
    export_id = book.export()
    made = book.add_backfill(export_id, workflow_id=None, total=3, kind=BackfillKind.SCHEDULE)
    book.add_run(export_id, NOW, RunStatus.COMPLETED, updated=NOW)
    assert not await closing.close_backfill(book, temporal, made, NOW + timedelta(minutes=1))  # more may come
    quiet = NOW + SCHEDULE_BACKFILL_QUIET + timedelta(seconds=1)
    assert await closing.close_backfill(book, temporal, made, quiet)
    assert book.backfills[made.id].status is BackfillStatus.FAILED
    assert book.said("WARNING") == [
        f"The schedule backfill {made.id} ran 1 of its 3 intervals: the others were never started (the CLI's "
        "default overlap policy Skip drops a fire while a run is open; pass --overlap-policy AllowAll, or backfill "
        "through the API)"
    ]
