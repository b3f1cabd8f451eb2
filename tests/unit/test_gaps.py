"""The pauses read from the scheduler's record: only a pause undone outside the API gives up what it skipped."""

from datetime import UTC, datetime, timedelta

from batch_exports.services.gaps import pauses
from batch_exports.temporal.scheduler_history import Patch

T = datetime(2026, 12, 5, 10, tzinfo=UTC)


def at(minutes: int, **fields: object) -> Patch:
    return Patch(at=T + timedelta(minutes=minutes), identity="alice@ops", **fields)  # type: ignore[arg-type]


def test_a_pause_and_its_unpause_are_one_span_with_the_pauses_note() -> None:
    (span,) = pauses([at(0, pause="quick fix"), at(1, unpause="done")])
    assert (span.start, span.end, span.note) == (T, T + timedelta(minutes=1), "quick fix")
    assert span.holds(T) and span.holds(T + timedelta(seconds=59)) and not span.holds(T + timedelta(minutes=1))
    assert "alice@ops" in span.describe() and "quick fix" in span.describe()


def test_a_pause_undone_through_the_api_is_no_span_and_a_later_pause_starts_afresh() -> None:
    # An auto-pause (a patch), unpaused through the API (an update, not in this record), then a CLI pause and unpause.
    (span,) = pauses([at(0, pause="auto-paused"), at(10, pause="cli"), at(11, unpause="cli")])
    assert (span.start, span.note) == (T + timedelta(minutes=10), "cli")
    assert pauses([at(0, pause="auto-paused"), at(1, triggered=True)]) == []


def test_an_unpause_whose_pause_is_older_than_the_record_spans_from_its_beginning() -> None:
    (span,) = pauses([at(5, unpause="done")])
    assert span.start is None and span.holds(T - timedelta(days=1)) and not span.holds(T + timedelta(minutes=5))
