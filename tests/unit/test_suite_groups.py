"""How `make test` spreads the suite over pytest-xdist's workers (tests/conftest.py)."""

import re
import subprocess
from pathlib import Path

from tests.conftest import LONGEST, MEASURES, MEASURING_MODULES, group_of, handed_out

ROOT = Path(__file__).resolve().parents[2]


def test_make_test_runs_every_tier_on_workers_a_module_whole_on_one() -> None:
    dry_run = ["make", "-n", "--no-print-directory", "test"]
    recipe = subprocess.run(dry_run, cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()[-1]
    assert re.search(r"python -m pytest -n \d+ --dist loadfile", recipe), recipe
    assert " tests" not in recipe  # no path given: pytest's testpaths, every tier


def test_a_module_is_one_group_and_the_measuring_ones_share_one() -> None:
    assert group_of("tests/e2e/test_s3_destination.py::test_a") == "tests/e2e/test_s3_destination.py"
    assert group_of("tests/e2e/test_s3_destination.py::test_b[x::y]") == "tests/e2e/test_s3_destination.py"
    assert {group_of(f"{path}::test_x") for path in MEASURING_MODULES} == {MEASURES}


def test_the_modules_named_exist() -> None:
    """A module renamed would silently leave the measuring group, or stop being handed out first."""
    named = [*MEASURING_MODULES, *(group for group in LONGEST if group != MEASURES)]
    assert [path for path in named if not (ROOT / path).is_file()] == []


def test_the_longest_groups_go_first_and_the_fast_tiers_last() -> None:
    order = sorted(
        ["tests/unit/test_sizes.py::t", "tests/e2e/test_cli.py::t", "tests/e2e/test_worker_killed.py::t",
         "tests/e2e/test_faults.py::t", "tests/core/test_runs.py::t"],
        key=handed_out,
    )  # fmt: skip
    assert order == ["tests/e2e/test_faults.py::t", "tests/e2e/test_worker_killed.py::t", "tests/e2e/test_cli.py::t",
                     "tests/unit/test_sizes.py::t", "tests/core/test_runs.py::t"]  # fmt: skip
