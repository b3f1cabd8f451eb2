"""The suite spread over pytest-xdist's workers as `make test` runs it: each group whole on one worker
(tests/conftest.py). It runs pytest itself, on a few unit modules, with two workers."""

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import MEASURES, group_of

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
