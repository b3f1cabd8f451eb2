"""Scratch directories for the services the tests and benchmarks start."""

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def scratch_directory(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A new directory for the embedded parts' data, for the tests and benchmarks: removed afterwards (it grows
    to gigabytes), unless `keep`, or the block failed, when its logs may say why."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)  # traversable by the user PostgreSQL runs as under root
    try:
        yield path
    except BaseException:
        print(f"work directory kept for its logs: {path}", file=sys.stderr)
        raise
    if keep:
        print(f"work directory kept: {path}", file=sys.stderr)
    else:
        shutil.rmtree(path, ignore_errors=True)
