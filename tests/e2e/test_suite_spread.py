"""The suite spread over pytest-xdist's workers as `make test` runs it: each group whole on one worker
(tests/conftest.py), and a worker's session loop left fit for the groups it draws next. It runs pytest itself, on a
few unit modules."""

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import MEASURES, MEASURING_MODULES, group_of

ROOT = Path(__file__).resolve().parents[2]


def test_on_workers_a_module_runs_whole_on_one_and_the_measuring_ones_together() -> None:
    """xdist names a test by its index in each worker's collection: the groups must hold on the workers too."""
    modules = ["tests/unit/test_sizes.py", "tests/unit/test_stack_env.py", "tests/unit/test_columns.py",
               "tests/unit/test_redaction.py", "tests/unit/test_check_runner.py"]  # fmt: skip
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadfile", "-v", "-p", "no:cacheprovider", *modules],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-3000:]
    workers: dict[str, set[str]] = {}
    for worker, nodeid in re.findall(r"^\[(gw\d+)\] \[ *\d+%\] PASSED (\S+)", ran.stdout, re.M):
        workers.setdefault(group_of(nodeid), set()).add(worker)
        workers.setdefault(nodeid.split("::")[0], set()).add(worker)
    assert set(workers) == {*modules, MEASURES}, ran.stdout[-3000:]
    assert all(len(ran_on) == 1 for ran_on in workers.values()), workers


def test_the_unit_modules_that_run_before_e2e_groups_leave_the_session_loop_its_threads() -> None:
    """The measures group's unit modules run on its worker's session loop before the e2e groups it draws next,
    whose stack runs on that loop: they must leave it threads for blocking calls side by side. (One left it a
    single thread, and `backfills watch`, waiting in it, deadlocked with the export it watched.)"""
    units = [module for module in MEASURING_MODULES if module.startswith("tests/unit/")]
    probe = "tests/unit/test_session_loop.py::test_the_session_loop_runs_blocking_calls_side_by_side"
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *units, probe],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert units and ran.returncode == 0, ran.stdout[-3000:]
    ran_in_order = re.findall(r"^(tests/unit/\S+?)::\S+ PASSED", ran.stdout, re.M)
    assert ran_in_order[-1] == probe.split("::")[0] and set(ran_in_order) == {*units, ran_in_order[-1]}, ran.stdout
