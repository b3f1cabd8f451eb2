"""The run workflow decides each execution's status: checked on Temporal's time-skipping test server, with stub
activities in place of the bookkeeping and the export (no database, no destination)."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from batch_exports.settings import Settings
from contracts.intervals import Interval, IntervalSpec
from contracts.statuses import RunStatus
from contracts.workflows import (
    ATTEMPTS_EXHAUSTED,
    PROJECT_AT_CAPACITY,
    ExportInputs,
    ExportResult,
    FinishRunInputs,
    HandOverInputs,
    RunInputs,
    StartedRun,
    StartRunInputs,
)
from tests.support.time_skipping import time_skipping_environment
from worker import workflow_runner
from workflows.run import RunBatchExportWorkflow

END = datetime(2026, 1, 1, 12, tzinfo=UTC)
TIMEOUT = timedelta(days=1)
"""Every run the service starts has an execution timeout."""


@dataclass
class Books:
    """What the stub activities saw, in order."""

    exporting: asyncio.Event = field(default_factory=asyncio.Event)
    already_run_by: str | None = None
    """What the stub bookkeeping says of the interval: it has a run already (a fresh fire exports nothing)."""
    handed: list[HandOverInputs] = field(default_factory=list)
    started: list[StartRunInputs] = field(default_factory=list)
    finished: list[FinishRunInputs] = field(default_factory=list)
    exports: list[ExportInputs] = field(default_factory=list)

    @property
    def statuses(self) -> list[RunStatus]:
        return [f.status for f in self.finished]


Export = Callable[[ExportInputs], Any]


def stubs(books: Books, export: Export) -> list[Callable[..., Any]]:
    @activity.defn(name="start-run")
    async def start_run(inputs: StartRunInputs) -> StartedRun:
        books.started.append(inputs)
        already = books.already_run_by if inputs.fresh_fire else None
        return StartedRun(
            run_id="" if already else str(uuid.uuid4()),
            settle_delay_seconds=30,
            export_max_attempts=1,
            export_retry_initial_seconds=1,
            max_records_per_execution=0,
            already_run_by=already,
        )

    @activity.defn(name="hand-over")
    async def hand_over(inputs: HandOverInputs) -> str:
        books.handed.append(inputs)
        return "handed over"

    @activity.defn(name="finish-run")
    async def finish_run(inputs: FinishRunInputs) -> None:
        books.finished.append(inputs)

    @activity.defn(name="export-interval")
    async def export_interval(inputs: ExportInputs) -> ExportResult:
        books.exports.append(inputs)
        books.exporting.set()
        result = export(inputs)
        return await result if asyncio.iscoroutine(result) else result  # type: ignore[no-any-return]

    return [start_run, finish_run, export_interval, hand_over]


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    async with time_skipping_environment() as environment:
        yield environment


async def run(
    client: Client,
    books: Books,
    export: Export,
    *,
    attempts: int = 1,
    end: datetime = END,
    sandboxed: bool = True,
) -> Any:
    """The run workflow to its end, in Temporal's sandbox unless told otherwise."""
    task_queue = f"run-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[RunBatchExportWorkflow],
        activities=stubs(books, export),
        workflow_runner=workflow_runner(sandboxed),
    ):
        return await client.execute_workflow(
            RunBatchExportWorkflow.run,
            RunInputs(batch_export_id="export", team_id=1, spec=IntervalSpec(Interval.HOUR), data_interval_end=end),
            id=f"export-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            execution_timeout=TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=attempts, initial_interval=timedelta(seconds=1)),
        )


async def test_a_scheduled_run_finds_its_interval_and_completes(env: WorkflowEnvironment) -> None:
    books = Books()
    result = await run(env.client, books, lambda inputs: ExportResult(records_completed=7, bytes_exported=70))
    assert result.records_completed == 7
    assert books.statuses == [RunStatus.COMPLETED]
    assert (books.started[0].data_interval_start, books.started[0].data_interval_end) == (END - timedelta(hours=1), END)
    assert books.finished[0].records_completed == 7


async def test_the_services_worker_runs_it_without_the_sandbox_by_default(env: WorkflowEnvironment) -> None:
    """The tests run the workflow in the sandbox (it catches non-deterministic code); the service's worker, by
    default, as plain Python (`BATCH_EXPORTS_WORKFLOW_SANDBOX`), where it does the same."""
    sandboxed = Settings().workflow_sandbox
    assert type(workflow_runner(sandboxed)).__name__ == "UnsandboxedWorkflowRunner"
    assert type(workflow_runner(True)).__name__ == "SandboxedWorkflowRunner"
    books = Books()
    result = await run(
        env.client, books, lambda i: ExportResult(records_completed=7, bytes_exported=70), sandboxed=sandboxed
    )
    assert (result.records_completed, books.statuses) == (7, [RunStatus.COMPLETED])


async def test_a_user_error_fails_at_once_with_the_destinations_message(env: WorkflowEnvironment) -> None:
    def export(inputs: ExportInputs) -> ExportResult:
        raise ApplicationError("bucket gone: NoSuchBucket", type="DestinationUserError", non_retryable=True)

    books = Books()
    with pytest.raises(WorkflowFailureError):
        await run(env.client, books, export, attempts=3)
    assert books.statuses == [RunStatus.FAILED]  # one execution only: the user must act
    assert "bucket gone: NoSuchBucket" in (books.finished[0].latest_error or "")


async def test_a_failing_execution_is_failed_retryable_until_the_last(env: WorkflowEnvironment) -> None:
    def export(inputs: ExportInputs) -> ExportResult:
        # The export counts its attempts: its last one (the only one here) says it was the last.
        raise ApplicationError("connection reset", type=ATTEMPTS_EXHAUSTED)

    books = Books()
    with pytest.raises(WorkflowFailureError):
        await run(env.client, books, export, attempts=2)
    assert books.statuses == [RunStatus.FAILED_RETRYABLE, RunStatus.FAILED]
    assert all("connection reset" in (f.latest_error or "") for f in books.finished)


async def test_attempts_that_gave_their_slot_back_use_up_no_attempt(env: WorkflowEnvironment) -> None:
    """The export's attempts are one (the stub bookkeeping's `export_max_attempts`), yet three attempts that found
    their project at capacity come before the one that runs: Temporal retries them, and the run completes."""

    def export(inputs: ExportInputs) -> ExportResult:
        assert inputs.max_attempts == 1  # the export counts the attempts that ran itself
        if len(books.exports) <= 3:
            raise ApplicationError(
                "project 1 is at capacity", type=PROJECT_AT_CAPACITY, next_retry_delay=timedelta(milliseconds=100)
            )
        return ExportResult(records_completed=3, bytes_exported=30)

    books = Books()
    result = await run(env.client, books, export)
    assert (result.records_completed, len(books.exports)) == (3, 4)
    assert books.statuses == [RunStatus.COMPLETED]


async def test_a_segment_continues_as_new_from_its_cursor(env: WorkflowEnvironment) -> None:
    def export(inputs: ExportInputs) -> ExportResult:
        if inputs.cursor is None:
            return ExportResult(records_completed=100, bytes_exported=1, cursor="after-100", files=2)
        return ExportResult(records_completed=5, bytes_exported=1)

    books = Books()
    await run(env.client, books, export)
    assert books.statuses == [RunStatus.CONTINUED_AS_NEW, RunStatus.COMPLETED]
    assert books.finished[0].cursor == "after-100"
    assert (books.exports[1].cursor, books.exports[1].first_file) == ("after-100", 2)


async def test_an_export_that_recorded_the_run_s_end_leaves_no_local_activity_for_it(env: WorkflowEnvironment) -> None:
    def export(inputs: ExportInputs) -> ExportResult:
        if inputs.cursor is None:
            return ExportResult(100, 1, cursor="after-100", files=2, ended=True)
        return ExportResult(5, 1, ended=True)

    books = Books()
    result = await run(env.client, books, export)
    assert all(inputs.record_end for inputs in books.exports) and len(books.exports) == 2
    assert books.finished == []  # each execution's end was the export's to record
    assert (result.records_completed, books.exports[1].cursor) == (5, "after-100")


async def cancelled_while_exporting(env: WorkflowEnvironment, books: Books, export: Export) -> WorkflowHandle[Any, Any]:
    """Start a run (its retry policy would run it three times), cancel it once it exports, and wait for its end."""
    task_queue = f"run-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[RunBatchExportWorkflow],
        activities=stubs(books, export),
        max_heartbeat_throttle_interval=timedelta(milliseconds=200),  # the cancel arrives with the next heartbeat
    ):
        handle = await env.client.start_workflow(
            RunBatchExportWorkflow.run,
            RunInputs(batch_export_id="export", team_id=1, spec=IntervalSpec(Interval.HOUR), data_interval_end=END),
            id=f"export-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            execution_timeout=TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1)),
        )
        async with asyncio.timeout(30):
            await books.exporting.wait()
            await handle.cancel()
            with pytest.raises(WorkflowFailureError):
                await handle.result()
    return handle


async def test_a_cancelled_run_is_cancelled_once_its_export_stopped(env: WorkflowEnvironment) -> None:
    stopped = asyncio.Event()

    async def export(inputs: ExportInputs) -> ExportResult:
        try:
            while True:
                activity.heartbeat()
                await asyncio.sleep(0.1)
        finally:
            stopped.set()

    books = Books()
    await cancelled_while_exporting(env, books, export)
    assert stopped.is_set()
    assert books.statuses == [RunStatus.CANCELLED]


async def test_a_fire_between_boundaries_hands_the_last_whole_interval_over(env: WorkflowEnvironment) -> None:
    books = Books()
    result = await run(env.client, books, lambda inputs: ExportResult(1, 1), end=END + timedelta(minutes=24))
    assert [(h.data_interval_start, h.data_interval_end) for h in books.handed] == [(END - timedelta(hours=1), END)]
    assert (books.started, books.exports, result.note) == ([], [], "handed over")


async def test_a_fresh_fire_exports_nothing_when_its_interval_has_a_run(env: WorkflowEnvironment) -> None:
    books = Books(already_run_by="an-earlier-run")
    result = await run(env.client, books, lambda inputs: ExportResult(1, 1))
    assert books.started[0].fresh_fire and books.exports == [] and books.finished == []
    assert "an-earlier-run" in (result.note or "")


async def test_a_cancel_wins_over_a_failure_racing_it(env: WorkflowEnvironment) -> None:
    async def export(inputs: ExportInputs) -> ExportResult:
        try:
            while True:
                activity.heartbeat()
                await asyncio.sleep(0.1)
        except asyncio.CancelledError:  # the attempt (the last the export has) fails on its way out, after the cancel
            raise ApplicationError("connection reset while stopping", type=ATTEMPTS_EXHAUSTED) from None

    books = Books()
    handle = await cancelled_while_exporting(env, books, export)
    assert books.statuses == [RunStatus.CANCELLED]  # not FailedRetryable: nothing runs it again
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED


async def test_an_execution_without_inputs_fails_at_once_naming_the_hand_edit(env: WorkflowEnvironment) -> None:
    # (An execution without an execution timeout is refused too: the e2e tier shows it, since this test server
    # gives every execution one.)
    books, task_queue = Books(), f"run-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client, task_queue=task_queue, workflows=[RunBatchExportWorkflow], activities=stubs(books, lambda i: None)
    ):
        handle = await env.client.start_workflow(  # a schedule edited by hand: `temporal schedule update` no --input
            "batch-export-run",
            id=f"export-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            retry_policy=RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=1)),
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable, cause
    assert "edited by hand" in cause.message and "no inputs" in cause.message
    history = await handle.fetch_history()
    assert not any(e.HasField("workflow_task_failed_event_attributes") for e in history.events)
    assert (await handle.describe()).run_id == handle.result_run_id  # no second execution
    assert books.started == []
