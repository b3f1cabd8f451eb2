"""`File`: JSONLines files in a local directory, laid out like the S3 destination's keys.

The interval is written to a hidden partial file beside its final name and renamed over it on
commit, so a reader sees the previous copy or the complete new one, never half of either.
"""

import asyncio
import contextlib
import gzip
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from activities.destinations import DestinationUserError, IntervalWriter
from activities.destinations.layout import interval_file_name
from activities.formats import jsonlines
from batch_exports.destination_configs import Compression, FileConfig


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
    def __init__(self, config: FileConfig, root: Path, start: datetime, end: datetime, segment: int = 0) -> None:
        directory = resolve_directory(config, root)
        name = interval_file_name(start, end, jsonlines.EXTENSION, config.compression, segment)
        self.target = directory / name
        self._partial = directory / f".{name}.{uuid.uuid4().hex}.partial"
        self._compression = config.compression
        self._raw: IO[bytes] | None = None
        self._stream: IO[bytes] | None = None

    async def write(self, batch: list[dict[str, Any]]) -> None:
        data = jsonlines.encode(batch)
        await asyncio.to_thread(self._write, data)
        self.bytes_written += len(data)

    async def commit(self) -> None:
        await asyncio.to_thread(self._commit)

    async def abort(self) -> None:
        await asyncio.to_thread(self._abort)

    def _open(self) -> None:
        try:
            self._partial.parent.mkdir(parents=True, exist_ok=True)
            self._raw = self._partial.open("wb")
        except (PermissionError, NotADirectoryError, FileExistsError) as error:
            raise DestinationUserError(f"cannot write to {self._partial.parent}: {error.strerror}") from error
        if self._compression is Compression.GZIP:
            self._stream = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6)  # type: ignore[assignment]
        else:
            self._stream = self._raw

    def _write(self, data: bytes) -> None:
        if self._stream is None:
            self._open()
        assert self._stream is not None
        self._stream.write(data)

    def _commit(self) -> None:
        if self._stream is None:  # an empty interval still gets its (empty) file
            self._open()
        assert self._stream is not None and self._raw is not None
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        self._stream = self._raw = None
        os.replace(self._partial, self.target)

    def _abort(self) -> None:
        for stream in (self._stream, self._raw):
            if stream is not None:
                stream.close()
        self._stream = self._raw = None
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # never written: nothing to remove
            self._partial.unlink()
