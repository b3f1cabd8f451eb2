"""How long runs and their export attempts may take, chosen per interval (documented in the README)."""

from datetime import timedelta

from contracts.intervals import Interval


def export_timeout(interval: Interval) -> timedelta:
    """One export attempt: the interval's length, at least ten minutes, at most a day."""
    return min(max(interval.nominal, timedelta(minutes=10)), timedelta(days=1))


def execution_timeout(interval: Interval) -> timedelta:
    """A run in all, retries and continued executions included: six intervals, at least an hour, at most
    two weeks. Past it Temporal ends the run as `TimedOut`."""
    return min(max(interval.nominal * 6, timedelta(hours=1)), timedelta(weeks=2))
