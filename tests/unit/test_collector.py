"""A long-running process's garbage collector: what start-up loaded is frozen, and the young generation is
collected after thousands of new containers, not Python's 700."""

import json
import subprocess
import sys

from batch_exports.collector import YOUNG_OBJECTS

SETTLE = """
import gc, json
import pyarrow, botocore.session  # what a worker has loaded, in part
from batch_exports import collector
before = gc.get_threshold()[0]
frozen = collector.settle()
young = gc.get_threshold()[0]
print(json.dumps({"before": before, "frozen": frozen, "counted": gc.get_freeze_count(), "young": young}))
"""


def test_settling_freezes_what_is_loaded_and_collects_less_often() -> None:
    # A process of its own: the test runner's collector stays as it is.
    done = subprocess.run([sys.executable, "-c", SETTLE], capture_output=True, text=True, timeout=60, check=True)
    state = json.loads(done.stdout)
    assert state["before"] == 700 and YOUNG_OBJECTS == state["young"] == 20_000
    assert state["frozen"] == state["counted"] > 10_000  # the modules' objects, at least
