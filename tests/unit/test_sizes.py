"""Sizes in the unit that fits, in a run's current details and logs."""

import pytest

from contracts.sizes import readable_size


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0 B"), (999, "999 B"), (2048, "2.0 KB"), (1_500_000, "1.5 MB"), (3_210_000_000, "3.2 GB"),
     (7 * 10**15, "7,000.0 TB")],
)  # fmt: skip
def test_a_size_reads_in_the_unit_that_fits(size: int, shown: str) -> None:
    assert readable_size(size) == shown
