"""How the suite spreads over pytest-xdist's workers.

`make test` runs every tier with `-n N --dist loadfile`: each worker is a process with session fixtures of its
own (its own PostgreSQL, Temporal dev server, SeaweedFS and Azurite on free ports, in its own scratch
directory), and a test module runs whole on one worker, so its module fixtures are set up once. The modules in
`MEASURES` time what they do: they form one group and never run beside each other. The longest groups are
handed out first, the unit and core tiers last, to fill the gaps at the end.

(xdist's own `--dist loadgroup` reads `xdist_group` marks by rewriting node ids, which pytest 9.2 no longer
allows: the groups are named here, by module path, where the scheduler sees them.)
"""

import os
from typing import Any

import pytest
from hypothesis import settings

settings.register_profile("shared-machine", deadline=None)
settings.load_profile("shared-machine")
"""Property tests check what a function returns, not how fast: hypothesis's 200 ms deadline per example failed
`test_columns.py` on a busy 2-core machine (a first example took 622 ms) with nothing wrong in the code."""

MEASURES = "measures"
"""The group of the modules below, run one after the other on one worker."""

MEASURING_MODULES = (
    "tests/e2e/test_faults.py",  # a fault noticed within seconds, a worker stopped within its grace
    "tests/e2e/test_isolation.py",  # a healthy run done in seconds behind a dead project's
    "tests/e2e/test_two_workers.py",  # a backfill's status asked ten times a second throughout
    "tests/e2e/test_quickstart.py",  # records out within two minutes
    "tests/e2e/test_reading.py",  # a cut read noticed within two watch periods
    "tests/e2e/test_hostile_input.py",  # /_health answers within 3 s under heavy validation
    "tests/unit/test_check_runner.py",  # checks answer within tenths of a second
    "tests/unit/test_redaction.py",  # redaction done within a second
)

LONGEST = (
    MEASURES,
    "tests/e2e/test_operating_by_hand.py",  # waits up to five minutes for a schedule's boundary
    "tests/e2e/test_worker_killed.py",
    "tests/e2e/test_dev_stack.py",
    "tests/e2e/test_hostile_egress.py",
    "tests/e2e/test_destination_contract.py",
    "tests/e2e/test_api_fuzz.py",
)
"""Handed out first, in this order: a worker that drew one of them last would finish long after the others."""


def group_of(nodeid: str) -> str:
    """The group a test runs in: its module's, or `MEASURES`."""
    path = nodeid.split("::", 1)[0]
    return MEASURES if path in MEASURING_MODULES else path


def handed_out(nodeid: str) -> int:
    """The rank of a test's group in the order groups are handed out (ties keep the collection's order)."""
    group = group_of(nodeid)
    if group in LONGEST:
        return LONGEST.index(group)
    return len(LONGEST) + (0 if group.startswith("tests/e2e/") else 1)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """On an xdist worker, the tests in the order their groups are handed out. The scheduler refers to a test by
    its index in the worker's collection, so the order is made here, alike on every worker, not by the scheduler."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: handed_out(item.nodeid))


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which the session registers after this file
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    config.option.loadscopereorder = False  # the collection's order above, not the largest groups (by count) first
    return GroupScheduling(config, log)
