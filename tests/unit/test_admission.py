"""A worker runs at most `BATCH_EXPORTS_MAX_CONCURRENT_EXPORTS_PER_PROJECT` export attempts of one project at once;
one more gives its slot back at once (`activities.admission`)."""

import contextlib
from datetime import timedelta

import pytest

from activities.admission import ProjectAtCapacity, ProjectSlots, wait_before_retry


def test_a_project_at_its_cap_is_refused_and_others_are_not() -> None:
    slots = ProjectSlots(per_project=2)
    with contextlib.ExitStack() as held:
        held.enter_context(slots.taken(2))
        held.enter_context(slots.taken(2))
        with pytest.raises(ProjectAtCapacity, match="BATCH_EXPORTS_MAX_CONCURRENT_EXPORTS_PER_PROJECT"):
            held.enter_context(slots.taken(2))
        with slots.taken(1):  # another project is not held up
            assert (slots.running(1), slots.running(2)) == (1, 2)
    assert (slots.running(1), slots.running(2)) == (0, 0)


def test_a_slot_is_given_back_when_the_attempt_fails() -> None:
    slots = ProjectSlots(per_project=1)
    with pytest.raises(RuntimeError), slots.taken(7):
        raise RuntimeError("destination gone")
    with slots.taken(7):
        assert slots.running(7) == 1


def test_the_wait_before_a_retry_grows_to_half_a_minute_and_is_spread() -> None:
    first = [wait_before_retry(0) for _ in range(50)]
    assert all(timedelta(seconds=4) <= wait <= timedelta(seconds=6) for wait in first)
    assert len(set(first)) > 1
    assert all(wait_before_retry(times) <= timedelta(seconds=36) for times in range(100))
    assert wait_before_retry(10) >= timedelta(seconds=24)
