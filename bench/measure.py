"""What every benchmark prints beside a figure: the machine's load average when it was measured, and the spread
of a figure over its repeats, so that a figure from a busy minute is seen as such."""

import argparse
import contextlib
import gc
import os
import statistics
from collections.abc import Iterator, Sequence

BUSY = 2.0
"""A load average above this (on the project's 2-core machine) marks a figure as measured on a busy machine."""


def load() -> str:
    """The 1-minute load average, marked when it is above `BUSY`."""
    one = os.getloadavg()[0]
    return f"load {one:.2f}" + (" (load above 2)" if one > BUSY else "")


def spread(values: Sequence[float], unit: str = "", digits: int = 2) -> str:
    """The median of `values` and their range: "3.10 s (2.90 to 3.50 over 3)"."""
    if not values:
        return "none"
    median = f"{statistics.median(values):.{digits}f}{unit}"
    if len(values) == 1:
        return median
    return f"{median} ({min(values):.{digits}f} to {max(values):.{digits}f} over {len(values)})"


def saturation(steps: Sequence[tuple[float, float, float]], p99_limit: float) -> float | None:
    """The highest rate served with a p99 under `p99_limit`, from (asked rate, served rate, p99) steps: the served
    rate of the best such step, or None when none was."""
    served = [rate for _asked, rate, p99 in steps if p99 < p99_limit]
    return max(served) if served else None


def whole_numbers(text: str, least: int = 0) -> list[int]:
    """A comma-separated list of whole numbers of at least `least` (`--identify 0,20`), as an argparse `type`: a
    part that is not one is the command's error, named."""
    numbers = []
    for part in text.split(","):
        try:
            number = int(part)
        except ValueError:
            number = least - 1
        if number < least:
            floor = f" of at least {least}" if least else ""
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not a whole number{floor} (give them "
                                             "comma-separated, e.g. 100,1000)")  # fmt: skip
        numbers.append(number)
    return numbers


def rates(text: str) -> list[float]:
    """A comma-separated list of rates above zero (`--rates 100,200`), as an argparse `type`."""
    values = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = 0.0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is not a rate above zero (give them comma-separated, "
                                             "e.g. 100,200)")  # fmt: skip
        values.append(value)
    return values


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in this process inside the block (a benchmark's sender, whose pauses would be charged
    to the requests in flight); what was garbage before it is collected first, what became garbage after it."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()
