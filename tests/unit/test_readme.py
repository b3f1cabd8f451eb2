"""The README is the front door: its two commands work (the settings are documented in docs/configuration.md,
written from `Settings`: tests/unit/test_configuration_doc.py)."""

import importlib.util
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_two_commands_run_what_exists() -> None:
    """The README's first block names `make dev` and `make test`; each runs a module or command that exists,
    and CI runs the same test command."""
    block = re.search(r"## The two commands\n\n```sh\n(.*?)```", README, re.S)
    assert block is not None, "the README lost its 'The two commands' block"
    commands = [line.split("#")[0].strip() for line in block[1].splitlines() if line.strip()]
    assert commands == ["make dev", "make test"]
    for target in ("dev", "test"):
        dry_run = ["make", "-n", "--no-print-directory", target]  # no "Entering directory" lines under `make test`
        recipe = subprocess.run(dry_run, cwd=ROOT, capture_output=True, text=True, check=True).stdout
        last = recipe.strip().splitlines()[-1]
        module = re.search(r"python -m (\S+)", last)
        assert module is not None, last
        assert importlib.util.find_spec(module[1]) is not None, f"make {target} runs a module that is gone: {last}"
    assert "make test" in (ROOT / ".ci" / "run").read_text()
