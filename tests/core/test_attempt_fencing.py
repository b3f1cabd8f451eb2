"""Fencing between the attempts of one run's export, with the run book in memory: the latest attempt owns the
run, a resumed attempt starts where the destination stands, and every attempt's end reaches the run's logs once."""

import uuid
from datetime import timedelta

import pytest

from batch_exports.runs.attempts import LATE, Checkpoint, Fence, Superseded
from batch_exports.runs.statuses import RunStatus
from tests.core.fakes import NOW, FakeRunBook


def fence(
    book: FakeRunBook, run_id: uuid.UUID, number: int, previous: Checkpoint | None = None, max_attempts: int = 0
) -> Fence:
    """Attempt `number`, scheduled `number` minutes after NOW."""
    export_id, scheduled, previous = book.runs[run_id].batch_export_id, NOW + timedelta(minutes=number), previous
    return Fence(
        book,
        run_id,
        export_id,
        number=number,
        scheduled=scheduled,
        previous=previous or Checkpoint(),
        max_attempts=max_attempts,
    )


async def no_word() -> str:
    return "timed out after its worker stopped heartbeating"


async def test_a_later_attempt_takes_the_run_over_and_the_earlier_one_stops_at_its_next_save() -> None:
    book = FakeRunBook()
    run = book.add_run(book.export(), status=RunStatus.STARTING)
    first, second = fence(book, run.id, 1), fence(book, run.id, 2)
    assert await first.begin(no_word) == Checkpoint()
    assert book.runs[run.id].status is RunStatus.RUNNING
    first.advance(Checkpoint(position="p-10", records=10, bytes=100))
    await first.save()
    await second.begin(no_word)
    first.advance(Checkpoint(position="p-20", records=20, bytes=200))
    with pytest.raises(Superseded):
        await first.save()
    with pytest.raises(Superseded):  # nor can it begin again
        await fence(book, run.id, 1).begin(no_word)
    assert book.runs[run.id].records_completed == 10


async def test_a_resumed_attempt_starts_from_the_row_when_it_is_ahead_of_the_last_heartbeat() -> None:
    book = FakeRunBook()
    run = book.add_run(book.export())
    first = fence(book, run.id, 1)
    await first.begin(no_word)
    first.advance(Checkpoint(position="p-50", files=2, records=50, bytes=500))
    await first.save()
    heartbeat = Checkpoint(position="p-20", records=20, bytes=200, attempt=1, ended=True)
    start = await fence(book, run.id, 2, heartbeat).begin(no_word)
    assert start == Checkpoint(position="p-50", files=2, records=50, bytes=500)
    assert book.said("INFO") == ["Export attempt 2 resumes after record 50"]


async def test_an_attempt_that_left_no_word_is_described_from_what_temporal_says() -> None:
    book = FakeRunBook()
    run = book.add_run(book.export())
    await fence(book, run.id, 3, Checkpoint(attempt=1)).begin(no_word)
    assert book.said("WARNING") == [
        "Export attempt 2 timed out after its worker stopped heartbeating; started again from the start"
    ]


async def test_an_end_the_books_could_not_take_is_handed_on_and_written_first_by_the_next_attempt() -> None:
    book = FakeRunBook()
    run = book.add_run(book.export())
    first = fence(book, run.id, 1)
    await first.begin(no_word)
    book.down = True
    await first.record("Export attempt 1 failed: OSError: reset", latest_error="OSError: reset")
    beat = first.beat()
    assert beat.ended and beat.unrecorded == [f"Export attempt 1 failed: OSError: reset {LATE}"]
    assert not book.logs
    book.down = False
    await fence(book, run.id, 2, beat).begin(no_word)
    assert book.said() == [
        f"Export attempt 1 failed: OSError: reset {LATE}",
        "Export attempt 2 resumes from the start of the interval",
    ]
    assert book.runs[run.id].latest_error == f"Export attempt 1 failed: OSError: reset {LATE}"


async def test_books_out_of_reach_do_not_stop_the_export() -> None:
    book = FakeRunBook()
    run = book.add_run(book.export())
    first = fence(book, run.id, 1)
    await first.begin(no_word)
    book.down = True
    first.advance(Checkpoint(position="p-5", records=5))
    await first.save()  # the heartbeat holds it
    assert first.beat().records == 5


def test_only_the_attempts_that_ran_count_against_the_export_s_attempts() -> None:
    book = FakeRunBook()
    run = book.add_run(book.export())
    throttled = Checkpoint(throttled=2)
    assert fence(book, run.id, 4, throttled, max_attempts=2).last  # two of four gave their slot back
    assert not fence(book, run.id, 4, throttled, max_attempts=2).exhausted
    assert fence(book, run.id, 5, throttled, max_attempts=2).exhausted
    assert not fence(book, run.id, 50).exhausted and not fence(book, run.id, 50).last  # Temporal counts them
