"""The coverage strip: one cell per interval, its status decided by the interval's runs and the pause."""

from datetime import UTC, datetime, timedelta

import click
import pytest

from entrypoints.cli import coverage, since_arg

EXPORT = {"interval": "every 5 minutes", "timezone": "UTC", "offset_day": None, "offset_hour": None}
T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def run(end: int, status: str, run_id: str) -> dict[str, str]:
    return {"id": run_id, "status": status, "data_interval_end": (T0 + timedelta(minutes=5 * end)).isoformat()}


def test_each_interval_reads_as_its_runs_and_the_pause_say() -> None:
    spans = coverage.intervals(EXPORT, T0, T0 + timedelta(minutes=35))
    assert spans[0] == (T0, T0 + timedelta(minutes=5)) and spans[-1][1] == T0 + timedelta(minutes=35)
    assert len(spans) == 7
    runs = [
        run(1, "FailedRetryable", "a"), run(1, "Completed", "b"),  # a retry that completed: exported
        run(2, "Failed", "c"),
        run(3, "ContinuedAsNew", "d"), run(3, "Running", "e"),  # a continued run still going
    ]  # fmt: skip
    paused = {**EXPORT, "paused": True, "last_paused_at": (T0 + timedelta(minutes=27)).isoformat()}
    strip = coverage.cells(paused, spans, runs)
    assert [(c.status, c.run_id) for c in strip] == [
        ("exported", "b"), ("failed", "c"), ("running", "e"), ("missing", None), ("missing", None),
        ("paused", None), ("paused", None),
    ]  # fmt: skip
    assert coverage.strip_text(strip).plain == "█✕▶··‖‖"
    live = coverage.cells({**paused, "paused": False}, spans, runs)
    assert [c.status for c in live][-2:] == ["missing", "missing"]


def test_a_window_too_long_is_refused_and_since_reads_units() -> None:
    with pytest.raises(ValueError, match="shorter --since"):
        coverage.intervals(EXPORT, T0, T0 + timedelta(days=365))
    assert since_arg("7d") == timedelta(days=7) and since_arg("30m") == timedelta(minutes=30)
    with pytest.raises(click.BadParameter):
        since_arg("7 days")
