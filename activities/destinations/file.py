"""`File`: JSONLines files in a local directory, laid out like the S3 destination's keys.

The interval is written to a hidden partial file beside its final name and renamed over it on
commit, so a reader sees the previous copy or the complete new one, never half of either.
"""

import asyncio
import contextlib
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import IO

import pyarrow as pa

from activities.destinations import DestinationUserError, IntervalWriter
from activities.destinations.layout import interval_file_name
from activities.formats import Encoder
from batch_exports.destination_configs import FileConfig


def resolve_directory(config: FileConfig, root: Path) -> Path:
    """The directory `config` names, which must lie inside `root` (the worker's file-destination root)."""
    directory = (root / config.path / config.prefix).resolve()
    if not directory.is_relative_to(root):
        raise DestinationUserError(
            f"path '{config.path}' is outside the directory this service may write to ({root}); "
            "use a path relative to it"
        )
    return directory


class FileWriter(IntervalWriter):
    def __init__(
        self, config: FileConfig, root: Path, encoder: Encoder, start: datetime, end: datetime, segment: int = 0
    ) -> None:
        directory = resolve_directory(config, root)
        name = interval_file_name(start, end, encoder.suffix, segment)
        self.target = directory / name
        self._partial = directory / f".{name}.{uuid.uuid4().hex}.partial"
        self._encoder = encoder
        self._file: IO[bytes] | None = None

    async def write(self, batch: pa.RecordBatch) -> None:
        data = await asyncio.to_thread(self._encoder.encode, batch)
        await asyncio.to_thread(self._write, data)
        self.bytes_written += len(data)

    async def commit(self) -> None:
        tail = self._encoder.finish()
        self.bytes_written += len(tail)
        await asyncio.to_thread(self._commit, tail)

    async def abort(self) -> None:
        await asyncio.to_thread(self._abort)

    def _open(self) -> IO[bytes]:
        if self._file is None:
            try:
                self._partial.parent.mkdir(parents=True, exist_ok=True)
                self._file = self._partial.open("wb")
            except (PermissionError, NotADirectoryError, FileExistsError) as error:
                raise DestinationUserError(f"cannot write to {self._partial.parent}: {error.strerror}") from error
        return self._file

    def _write(self, data: bytes) -> None:
        self._open().write(data)

    def _commit(self, tail: bytes) -> None:
        file = self._open()  # an empty interval still gets its (empty) file
        file.write(tail)
        file.flush()
        os.fsync(file.fileno())
        file.close()
        self._file = None
        os.replace(self._partial, self.target)

    def _abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # never written: nothing to remove
            self._partial.unlink()
