"""The run's life in the books, driven through the rules with in-memory ports: the start check, the hand-over,
the record of how a run ended, the notice it calls for and the auto-pause."""

import logging
import uuid
from datetime import timedelta

import pytest

from batch_exports.runs import lifecycle
from batch_exports.runs.lifecycle import ExportGone
from batch_exports.runs.statuses import BackfillStatus, RunStatus
from contracts.intervals import run_workflow_id
from contracts.workflows import FinishRunInputs, HandOverInputs, StartedRun, StartRunInputs
from tests.core.fakes import HOUR, NOW, FakeRunBook, FakeTemporal

LOGGER = logging.getLogger("tests.core")
SETTINGS = StartedRun(
    run_id="",
    settle_delay_seconds=30,
    export_max_attempts=5,
    export_retry_initial_seconds=1,
    max_records_per_execution=0,
)


def start_inputs(export_id: uuid.UUID, **changes: object) -> StartRunInputs:
    inputs = {
        "batch_export_id": str(export_id),
        "workflow_id": run_workflow_id(str(export_id), NOW),
        "workflow_run_id": "execution-2",
        "data_interval_start": NOW - HOUR,
        "data_interval_end": NOW,
        "fresh_fire": True,
    } | changes
    return StartRunInputs(**inputs)  # type: ignore[arg-type]


async def test_a_fresh_fire_for_an_interval_that_has_a_run_exports_nothing_and_says_so() -> None:
    book, temporal = FakeRunBook(), FakeTemporal()
    export_id = book.export()
    earlier = book.add_run(export_id, NOW, RunStatus.COMPLETED)
    started = await lifecycle.start_run(book, temporal, start_inputs(export_id), SETTINGS, LOGGER)
    assert started.run.already_run_by == str(earlier.id)
    assert len(book.runs) == 1  # no second row
    assert "already has a run" in book.said("INFO")[0]


async def test_a_retry_of_the_same_interval_records_its_own_execution() -> None:
    book, temporal = FakeRunBook(), FakeTemporal()
    export_id = book.export()
    book.add_run(export_id, NOW, RunStatus.FAILED_RETRYABLE)
    started = await lifecycle.start_run(
        book, temporal, start_inputs(export_id, fresh_fire=False, cursor="c-7"), SETTINGS, LOGGER
    )
    run = book.runs[uuid.UUID(started.run.run_id)]
    assert run.status is RunStatus.STARTING and run.workflow_run_id == "execution-2"
    assert started.run.settle_delay_seconds == 30  # the settings the run goes with
    assert started.said.endswith("resuming after c-7") and book.said() == [started.said]


async def test_starting_the_same_execution_twice_keeps_one_row() -> None:
    book, temporal = FakeRunBook(), FakeTemporal()
    export_id = book.export()
    inputs = start_inputs(export_id, fresh_fire=False)
    first = await lifecycle.start_run(book, temporal, inputs, SETTINGS, LOGGER)
    again = await lifecycle.start_run(book, temporal, inputs, SETTINGS, LOGGER)
    assert first.run.run_id == again.run.run_id and len(book.runs) == 1


async def test_a_run_of_a_deleted_export_does_not_start() -> None:
    book, temporal = FakeRunBook(), FakeTemporal()
    export_id = book.export()
    book.deleted.add(export_id)
    with pytest.raises(ExportGone):
        await lifecycle.start_run(book, temporal, start_inputs(export_id), SETTINGS, LOGGER)
    with pytest.raises(ExportGone):
        await lifecycle.hand_over(book, temporal, HandOverInputs(str(export_id), NOW - HOUR, NOW, NOW))
    assert not book.runs and not temporal.started


async def test_a_reset_names_the_run_it_replaces_and_starts_without_it_when_temporal_cannot_say(
    caplog: pytest.LogCaptureFixture,
) -> None:
    book, temporal = FakeRunBook(), FakeTemporal()
    export_id = book.export()
    base = book.add_run(export_id, NOW, RunStatus.FAILED, workflow_run_id="execution-1")
    base = book.runs[base.id] = base.model_copy(update={"workflow_id": run_workflow_id(str(export_id), NOW)})
    temporal.reset_bases["execution-2"] = "execution-1"
    inputs = start_inputs(export_id, fresh_fire=False, reset_from=True)
    started = await lifecycle.start_run(book, temporal, inputs, SETTINGS, LOGGER)
    assert book.runs[uuid.UUID(started.run.run_id)].replaced_run_id == base.id
    assert f"a reset of run {base.id}" in started.said

    temporal.unreachable = True
    inputs = start_inputs(export_id, fresh_fire=False, reset_from=True, workflow_run_id="execution-3")
    with caplog.at_level(logging.WARNING, "tests.core"):
        started = await lifecycle.start_run(book, temporal, inputs, SETTINGS, LOGGER)
    assert book.runs[uuid.UUID(started.run.run_id)].replaced_run_id is None
    assert "could not read the reset's base run" in caplog.text


async def test_a_fire_between_boundaries_hands_the_interval_to_its_own_execution_once() -> None:
    book, temporal = FakeRunBook(), FakeTemporal()
    export_id = book.export()
    fired = NOW + timedelta(minutes=20)
    hand = HandOverInputs(str(export_id), NOW - HOUR, NOW, fired)
    note = await lifecycle.hand_over(book, temporal, hand)
    assert temporal.started == [(export_id, NOW - HOUR, NOW)]
    assert note.startswith(f"Fired at {fired.isoformat()}, between boundaries") and "runs as" in note
    assert "is running already" in await lifecycle.hand_over(book, temporal, hand)
    book.add_run(export_id, NOW, RunStatus.COMPLETED)
    assert "already has a run" in await lifecycle.hand_over(book, temporal, hand)
    assert len(temporal.started) == 1 and book.said()[0] == note and len(book.said()) == 3


def finish_inputs(run_id: uuid.UUID, export_id: uuid.UUID, status: RunStatus, **more: object) -> FinishRunInputs:
    return FinishRunInputs(str(run_id), str(export_id), 1, status, **more)  # type: ignore[arg-type]


async def finish(
    book: FakeRunBook, temporal: FakeTemporal, inputs: FinishRunInputs, threshold: int = 3
) -> lifecycle.Finished:
    return await lifecycle.finish_run(
        book, temporal, inputs, workflow_run_id="execution-2", auto_pause_after=threshold, logger=LOGGER
    )


async def test_a_completed_run_is_recorded_with_its_counts_and_an_info_line() -> None:
    book, temporal = FakeRunBook(), FakeTemporal()
    export_id = book.export()
    run = book.add_run(export_id)
    done = await finish(book, temporal, finish_inputs(run.id, export_id, RunStatus.COMPLETED, records_completed=5))
    assert book.runs[run.id].status is RunStatus.COMPLETED and book.runs[run.id].records_completed == 5
    assert done.notice is None and done.run is not None and done.run.status is RunStatus.COMPLETED
    assert book.said("INFO") == ["Run Completed: 5 records exported"]


async def test_a_failed_run_is_an_error_and_calls_for_a_notice_only_where_someone_listens() -> None:
    book, temporal = FakeRunBook(), FakeTemporal()
    export_id = book.export()
    run = book.add_run(export_id)
    done = await finish(book, temporal, finish_inputs(run.id, export_id, RunStatus.FAILED, latest_error="boom"))
    assert done.notice is None  # no notification targets
    assert book.said("ERROR") == ["Run Failed: boom"]
    book.targets[1] = 2
    run = book.add_run(export_id)
    done = await finish(book, temporal, finish_inputs(run.id, export_id, RunStatus.FAILED, latest_error="boom"))
    assert done.notice == "run_failed" and not done.auto_paused


async def test_a_completion_after_a_failure_notice_says_the_export_recovered() -> None:
    book, temporal = FakeRunBook(), FakeTemporal()
    export_id = book.export()
    run = book.add_run(export_id)
    book.notices[export_id] = "auto_paused"
    done = await finish(book, temporal, finish_inputs(run.id, export_id, RunStatus.COMPLETED))
    assert done.notice == "recovered"
    book.notices[export_id] = "recovered"
    done = await finish(book, temporal, finish_inputs(book.add_run(export_id).id, export_id, RunStatus.COMPLETED))
    assert done.notice is None


async def test_the_third_failure_in_a_row_pauses_the_export_and_cancels_its_backfills() -> None:
    book, temporal = FakeRunBook(), FakeTemporal()
    export_id = book.export()
    book.targets[1] = 1
    running, ended = book.add_backfill(export_id), book.add_backfill(export_id, status=BackfillStatus.COMPLETED)
    book.add_run(export_id, NOW - 3 * HOUR, RunStatus.FAILED)
    book.add_run(export_id, NOW - 2 * HOUR, RunStatus.FAILED_RETRYABLE)  # not how its interval ended
    run = book.add_run(export_id, NOW - HOUR)
    done = await finish(book, temporal, finish_inputs(run.id, export_id, RunStatus.FAILED))
    assert not done.auto_paused and export_id not in book.paused  # two final failures so far
    run = book.add_run(export_id)
    done = await finish(book, temporal, finish_inputs(run.id, export_id, RunStatus.FAILED))
    assert done.auto_paused and done.notice == "auto_paused"
    assert export_id in book.paused and temporal.paused[export_id] == "auto-paused: the latest 3 runs failed"
    assert temporal.cancelled == [running.id] and ended.id not in temporal.cancelled
    assert book.said("WARNING")[-1].startswith("Paused automatically: the latest 3 runs failed")
    again = await finish(book, temporal, finish_inputs(book.add_run(export_id).id, export_id, RunStatus.FAILED))
    assert not again.auto_paused and again.notice == "run_failed"  # paused already


async def test_when_temporal_refuses_the_pause_the_run_is_still_recorded_and_the_export_stays_unpaused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    book, temporal = FakeRunBook(), FakeTemporal(unreachable=True)
    export_id = book.export()
    book.add_run(export_id, NOW - HOUR, RunStatus.FAILED)
    run = book.add_run(export_id)
    with caplog.at_level(logging.WARNING, "tests.core"):
        done = await finish(book, temporal, finish_inputs(run.id, export_id, RunStatus.FAILED), threshold=2)
    assert book.runs[run.id].status is RunStatus.FAILED and not done.auto_paused
    assert export_id not in book.paused and f"could not auto-pause export {export_id}" in caplog.text
    assert not book.said("WARNING")  # the pause's log line went with its rolled-back transaction


async def test_auto_pause_is_off_at_zero() -> None:
    book, temporal = FakeRunBook(), FakeTemporal()
    export_id = book.export()
    book.add_run(export_id, NOW, RunStatus.FAILED)
    assert not await lifecycle.auto_pause(book, temporal, export_id, 0)
    assert await lifecycle.auto_pause(book, temporal, export_id, 1)
