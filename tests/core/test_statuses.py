"""Every status decision of a run and a backfill, in the one module that makes them."""

import pytest

from batch_exports.runs.statuses import (
    BackfillStatus,
    Closed,
    RunStatus,
    backfill_closed_as,
    backfill_ended,
    backfill_stopped,
    export_ended,
    failure_status,
    is_failing,
    run_closed_as,
    schedule_backfill_ended,
)


def test_a_cancel_wins_over_a_failure_and_a_user_error_is_not_retried() -> None:
    assert failure_status(cancelled=True, non_retryable=True, attempt=1, maximum_attempts=3) is RunStatus.CANCELLED
    assert failure_status(cancelled=False, non_retryable=True, attempt=1, maximum_attempts=3) is RunStatus.FAILED


@pytest.mark.parametrize(
    ("attempt", "maximum", "status"),
    [
        (1, 3, RunStatus.FAILED_RETRYABLE),
        (3, 3, RunStatus.FAILED),
        (9, 0, RunStatus.FAILED_RETRYABLE),
        (1, 1, RunStatus.FAILED),
    ],
)
def test_a_failure_is_retryable_while_the_run_s_retry_policy_has_attempts_left(
    attempt: int, maximum: int, status: RunStatus
) -> None:
    assert failure_status(cancelled=False, non_retryable=False, attempt=attempt, maximum_attempts=maximum) is status


def test_an_export_that_stopped_at_its_record_limit_continues_as_new() -> None:
    assert export_ended(None) is RunStatus.COMPLETED
    assert export_ended("2026-01-01T00:00:00Z/42") is RunStatus.CONTINUED_AS_NEW


def test_every_close_temporal_reports_maps_to_a_run_status_that_is_not_open() -> None:
    for closed in Closed:
        assert not run_closed_as(closed).is_open
    assert run_closed_as(Closed.CANCELED) is RunStatus.CANCELLED
    assert run_closed_as(Closed.TIMED_OUT) is RunStatus.TIMED_OUT
    assert backfill_closed_as(Closed.TERMINATED) is BackfillStatus.TERMINATED
    assert backfill_closed_as(Closed.CONTINUED_AS_NEW) is BackfillStatus.FAILED  # a backfill never continues unseen


def test_an_export_is_failing_only_when_its_latest_final_runs_all_failed() -> None:
    failed, completed = RunStatus.FAILED, RunStatus.COMPLETED
    assert is_failing([failed, failed, failed], 3)
    assert not is_failing([failed, failed], 3)  # not enough runs yet
    assert not is_failing([failed, completed, failed], 3)
    assert not is_failing([failed], 0)  # auto-pause off


def test_a_backfill_fails_on_a_failed_run_but_not_on_a_cancelled_one() -> None:
    assert backfill_ended(failed_runs=0) is BackfillStatus.COMPLETED
    assert backfill_ended(failed_runs=2) is BackfillStatus.FAILED


def test_a_backfill_stopped_by_a_cancel_is_cancelled_and_one_that_broke_failed() -> None:
    assert backfill_stopped(cancelled=True) is BackfillStatus.CANCELLED
    assert backfill_stopped(cancelled=False) is BackfillStatus.FAILED


def test_a_schedule_backfill_waits_for_its_runs_then_ends_on_what_they_did() -> None:
    ended = schedule_backfill_ended
    assert ended(finished=2, failed=0, running=1, total=3, quiet=True) is None  # a run is still open
    assert ended(finished=2, failed=0, running=0, total=3, quiet=False) is None  # runs still come
    assert ended(finished=3, failed=0, running=0, total=3, quiet=False) is BackfillStatus.COMPLETED
    assert ended(finished=3, failed=1, running=0, total=3, quiet=False) is BackfillStatus.FAILED
    assert ended(finished=2, failed=0, running=0, total=3, quiet=True) is BackfillStatus.FAILED  # one never ran
