"""What a run's bookkeeping costs PostgreSQL: the statements it sends, counted on a pool of its own whose
connections log every statement (each one a round trip inside the run workflow's task)."""

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest

from batch_exports.runs import lifecycle
from batch_exports.runs.attempts import Checkpoint, Fence
from batch_exports.store import db, notifications, runs
from batch_exports.store.run_book import PostgresRunBook
from contracts.statuses import RunStatus
from contracts.workflows import FinishRunInputs, StartedRun, StartRunInputs
from tests.support.counting import CountingConnection
from tests.support.helpers import create_export, runs_until, start_run, started_run
from tests.support.stack import Project

LOGGER = logging.getLogger(__name__)
SETTINGS = StartedRun(
    run_id="",
    settle_delay_seconds=0,
    export_max_attempts=1,
    export_retry_initial_seconds=1,
    max_records_per_execution=0,
)


@pytest.fixture
async def counted_book(project: Project) -> AsyncIterator[tuple[PostgresRunBook, list[str]]]:
    """A run book on the stack's database whose pool records the statements it sends."""
    pool = await db.create_pool(
        project.stack.settings.database_url, min_size=1, max_size=2, connection_class=CountingConnection
    )
    sent: list[str] = []
    CountingConnection.sent = sent
    try:
        yield PostgresRunBook(pool), sent
    finally:
        await pool.close()


@pytest.mark.parametrize("notice", [None, "run_failed"])
async def test_a_completed_run_reads_the_export_s_latest_notice_with_its_end(
    project: Project, counted_book: tuple[PostgresRunBook, list[str]], notice: str | None
) -> None:
    export_id, run_id = await _a_run(project)
    pool = project.stack.pool
    if notice:
        await notifications.claim(pool, export_id, notice, date.today())
    book, sent = counted_book
    inputs = FinishRunInputs(str(run_id), str(export_id), project.id, RunStatus.COMPLETED, records_completed=3)
    finished = await lifecycle.finish_run(
        book,
        project.stack.runtime.run_temporal,
        inputs,
        workflow_run_id="costs-run",
        auto_pause_after=0,
        logger=logging.getLogger(__name__),
    )
    # a completed run after a failure notice says the export recovered; one with none says nothing
    assert finished.notice == ("recovered" if notice else None)
    assert finished.run is not None and finished.run.status is RunStatus.COMPLETED
    assert await pool.fetchval("SELECT records_completed FROM batch_export_runs WHERE id = $1", run_id) == 3
    # the run's end, with the latest notice and its log line: one statement
    assert len(sent) == 1, sent
    assert "UPDATE batch_export_runs" in sent[0] and "batch_export_notices" in sent[0], sent
    logged = await pool.fetch("SELECT level, message, workflow_run_id FROM batch_export_logs WHERE run_id = $1", run_id)
    assert [tuple(row) for row in logged] == [("INFO", "Run Completed: 3 records exported", "costs-run")]


async def test_a_run_starts_in_one_statement_with_its_log_line(
    project: Project, counted_book: tuple[PostgresRunBook, list[str]]
) -> None:
    export_id, _ = await _a_run(project)
    book, sent = counted_book
    end = datetime(2026, 1, 1, 2, tzinfo=UTC)
    inputs = StartRunInputs(str(export_id), f"costs-{export_id}", "costs-run-2", end - timedelta(hours=1), end)
    started = await lifecycle.start_run(book, project.stack.runtime.run_temporal, inputs, SETTINGS, LOGGER)
    assert len(sent) == 1, sent
    run_id = uuid.UUID(started.run.run_id)
    row = await project.stack.pool.fetchrow("SELECT * FROM batch_export_runs WHERE id = $1", run_id)
    assert (row["status"], row["workflow_run_id"], row["data_interval_end"]) == (RunStatus.STARTING, "costs-run-2", end)
    logged = await project.stack.pool.fetch(
        "SELECT team_id, level, message, workflow_run_id FROM batch_export_logs WHERE run_id = $1", run_id
    )
    assert [tuple(r) for r in logged] == [(project.id, "INFO", started.said, "costs-run-2")], logged
    # the same execution again: the same row, and its line again
    again = await lifecycle.start_run(book, project.stack.runtime.run_temporal, inputs, SETTINGS, LOGGER)
    assert again.run.run_id == started.run.run_id and len(sent) == 2


async def test_a_run_of_a_deleted_export_records_nothing(
    project: Project, counted_book: tuple[PostgresRunBook, list[str]]
) -> None:
    export_id, _ = await _a_run(project)
    await project.stack.pool.execute("UPDATE batch_exports SET deleted = true WHERE id = $1", export_id)
    book, sent = counted_book
    end = datetime(2026, 1, 1, 2, tzinfo=UTC)
    inputs = StartRunInputs(str(export_id), f"costs-{export_id}", "costs-run-3", end - timedelta(hours=1), end)
    with pytest.raises(lifecycle.ExportGone):
        await lifecycle.start_run(book, project.stack.runtime.run_temporal, inputs, SETTINGS, LOGGER)
    assert len(sent) == 1, sent
    pool = project.stack.pool
    assert await pool.fetchval("SELECT count(*) FROM batch_export_runs WHERE workflow_run_id = 'costs-run-3'") == 0
    assert await pool.fetchval("SELECT count(*) FROM batch_export_logs WHERE workflow_run_id = 'costs-run-3'") == 0


async def test_an_attempt_takes_the_run_over_and_shows_it_running_in_one_statement(
    project: Project, counted_book: tuple[PostgresRunBook, list[str]]
) -> None:
    export_id, run_id = await _a_run(project)
    book, sent = counted_book
    heartbeated = Checkpoint(position="p", files=1, records=5, bytes=50, attempt=1, ended=True)
    fence = Fence(book, run_id, export_id, number=2, scheduled=datetime.now(UTC), previous=heartbeated)
    fence.team_id = project.id
    sent.clear()
    start = await fence.begin(_no_word)
    assert (start.position, start.records, start.bytes) == ("p", 5, 50)
    row = await project.stack.pool.fetchrow("SELECT * FROM batch_export_runs WHERE id = $1", run_id)
    assert (row["status"], row["records_completed"], row["bytes_exported"]) == (RunStatus.RUNNING, 5, 50)
    # the claim moves the run to Running (no update of its own); then the log line of the resumed attempt
    assert len(sent) == 2, sent
    assert "UPDATE batch_export_runs" in sent[0] and "batch_export_logs" in sent[1], sent


async def test_an_attempt_leaves_a_run_that_has_ended_as_it_is(
    project: Project, counted_book: tuple[PostgresRunBook, list[str]]
) -> None:
    export_id, run_id = await _a_run(project)
    await runs.finish(project.stack.pool, run_id, status=RunStatus.CANCELLED, records_completed=1)
    book, _ = counted_book
    fence = Fence(book, run_id, export_id, number=1, scheduled=datetime.now(UTC), previous=Checkpoint(records=7))
    await fence.begin(_no_word)
    row = await project.stack.pool.fetchrow("SELECT * FROM batch_export_runs WHERE id = $1", run_id)
    assert (row["status"], row["records_completed"]) == (RunStatus.CANCELLED, 1)


async def _no_word() -> str:
    return "ended without a word"


async def _a_run(project: Project) -> tuple[uuid.UUID, uuid.UUID]:
    """A paused export of the project, and a run of it, `Starting`."""
    body = {"name": "costs", "interval": "hour", "paused": True, "destination": {"type": "NoOp", "config": {}}}
    status, export = await project.request("POST", "batch_exports/", json=body)
    assert status == 201, export
    export_id, end = uuid.UUID(export["id"]), datetime(2026, 1, 1, 1, tzinfo=UTC)
    run_id = await started_run(
        project.stack.pool,
        batch_export_id=export_id,
        workflow_id=f"costs-{export_id}",
        workflow_run_id="costs-run",
        data_interval_start=end - timedelta(hours=1),
        data_interval_end=end,
        backfill_id=None,
    )
    return export_id, run_id


async def test_a_completed_run_s_end_is_recorded_by_its_export_not_a_local_activity(project: Project) -> None:
    export = await create_export(
        project, {"name": "ends", "interval": "hour", "destination": {"type": "File", "config": {"path": "ends"}}}
    )
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    handle = await start_run(project.stack, export, start=end - timedelta(hours=1), end=end)
    await handle.result()
    (run,) = await runs_until(project, export["id"], lambda found: [r["status"] for r in found] == ["Completed"])
    logged = await project.stack.pool.fetch(
        "SELECT level, message FROM batch_export_logs WHERE run_id = $1 ORDER BY id", uuid.UUID(run["id"])
    )
    assert [tuple(row) for row in logged][-1] == ("INFO", "Run Completed: 0 records exported")
    assert run["finished_at"] is not None
    # one local activity (the run's start, its marker in the history), and two workflow tasks
    history = await handle.fetch_history()
    markers = [e for e in history.events if e.HasField("marker_recorded_event_attributes")]
    tasks = [e for e in history.events if e.HasField("workflow_task_completed_event_attributes")]
    assert (len(markers), len(tasks)) == (1, 2), history.to_json()
