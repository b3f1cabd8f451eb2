"""The README's "Try it", typed as written in a newcomer's shell beside `make dev` on spare ports: records
leave within two minutes and read back from each destination, so the quickstart cannot drift from the code."""

import re
import subprocess
import sys
import time
from pathlib import Path

from tests.support.dev_stack import DevStack, clean_environment

ROOT = Path(__file__).resolve().parents[2]


def try_it_blocks() -> list[str]:
    section = re.search(r"^## Try it\n(.*?)^## ", (ROOT / "README.md").read_text(), re.S | re.M)
    assert section is not None, "the README lost its 'Try it' section"
    return re.findall(r"```sh\n(.*?)```", section.group(1), re.S)


def in_a_shell(checkout: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=checkout,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_the_readme_quickstart_shows_records_leave_for_every_destination(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    checkout = tmp_path  # what `make demo` and the read-backs need of a checkout, the rest is installed
    for name in ("Makefile", "pyproject.toml"):
        (checkout / name).symlink_to(ROOT / name)
    (checkout / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (data_dir := checkout / ".data").mkdir()
    stack = DevStack(data_dir)
    process = stack.start()
    try:
        demo, by_hand = try_it_blocks()
        began = time.monotonic()
        ran = in_a_shell(checkout, demo)
        took = time.monotonic() - began
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert took < 120, ran.stdout
        assert "Loaded 150 events" in ran.stdout, ran.stdout
        # The JSONLines file, the Delta table (pyarrow) and the Iceberg table (pyiceberg), 150 records each.
        assert [line.strip() for line in ran.stdout.splitlines()[-3:]] == ["150", "150", "150"], ran.stdout

        ran = in_a_shell(checkout, by_hand)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert '"results"' in ran.stdout and "every 5 minutes" not in ran.stderr
    finally:
        stack.stop(process)
