"""What the destinations that write files (File, S3) share: numbered files, a size limit, a manifest.

An interval is one file, or with `max_file_size_mb` a series of numbered files, each closed at the
first batch past the limit (the writer asks the source for batches of about an eighth of it). Names
depend only on the export, the interval and the file's number, so a rerun of the same interval overwrites
the same files, and each file appears whole or not at all.
A continued-as-new chain numbers its files on from where the execution before it stopped. The
execution that ends the interval removes numbered files beyond its last one (an earlier attempt may
have written more), and, when files are split by size, writes `{start}-{end}_manifest.json` listing
them.

A file that is complete stays complete: a retried attempt resumes after it (see the export's checkpoint).
"""

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Self

import pyarrow as pa
from pydantic import Field, model_validator

from connectors.destinations.base import DestinationConfig, IntervalWriter, WriteRequest
from connectors.formats import Encoder, encoder_for
from connectors.formats.options import Compression, FileFormat, check_compression

BATCHES_PER_FILE = 8
"""With a size limit, batches of about an eighth of it (before encoding), so a file ends near the limit."""


def interval_stem(start: datetime, end: datetime) -> str:
    """`{start}-{end}`, both bounds as `%Y-%m-%dT%H:%M:%SZ`."""
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    return f"{start.astimezone(UTC):{stamp}}-{end.astimezone(UTC):{stamp}}"


def interval_file_name(start: datetime, end: datetime, suffix: str, number: int = 0) -> str:
    """`{start}-{end}[-{number}]{suffix}`; file 0 has no number."""
    return f"{interval_stem(start, end)}{f'-{number}' if number else ''}{suffix}"


def manifest_name(start: datetime, end: datetime) -> str:
    return f"{interval_stem(start, end)}_manifest.json"


class FilesConfig(DestinationConfig):
    """What destinations that write files (File, S3) share: the format, its compression, the size of a file."""

    file_format: FileFormat = FileFormat.JSONLINES
    compression: Compression | None = None
    max_file_size_mb: int | None = Field(
        None, ge=1, le=100_000, description="Split an interval into numbered files of about this size, with a manifest."
    )

    @model_validator(mode="after")
    def _compression_fits_format(self) -> Self:
        check_compression(self.file_format, self.compression)
        return self


class FileUpload(ABC):
    """One file being written; it appears (whole) on `complete`."""

    @abstractmethod
    async def append(self, data: bytes) -> None: ...

    @abstractmethod
    async def complete(self) -> None: ...

    @abstractmethod
    async def discard(self) -> None: ...


@dataclass(frozen=True)
class IntervalFiles:
    """What a writer writes: the interval, a new encoder for each file, the first file's number, the size limit."""

    new_encoder: Callable[[], Encoder]
    start: datetime
    end: datetime
    first_file: int = 0
    max_file_size_mb: int | None = None

    @classmethod
    def of(cls, config: FilesConfig, request: WriteRequest) -> "IntervalFiles":
        """The files `config` asks for, of the interval `request` names."""

        def new_encoder() -> Encoder:  # one for each file
            return encoder_for(config.file_format, config.compression, request.model, request.custom_columns)

        return cls(new_encoder, request.start, request.end, request.first_file, config.max_file_size_mb)


class FileSeriesWriter(IntervalWriter):
    def __init__(self, files: IntervalFiles) -> None:
        self._new_encoder = files.new_encoder
        self.suffix = files.new_encoder().suffix
        self.start, self.end = files.start, files.end
        self.first_file = files.first_file
        self.max_bytes = files.max_file_size_mb * 2**20 if files.max_file_size_mb else None
        self.batch_bytes = self.max_bytes // BATCHES_PER_FILE if self.max_bytes else 0
        self._upload: FileUpload | None = None
        self._encoder: Encoder | None = None
        self._file_bytes = 0

    # What each destination provides.
    @abstractmethod
    async def _open(self, name: str) -> FileUpload: ...

    @abstractmethod
    async def _exists(self, name: str) -> bool: ...

    @abstractmethod
    async def _remove(self, names: list[str]) -> None: ...

    @abstractmethod
    async def _put(self, name: str, data: bytes) -> None:
        """Write a small file whole."""

    @abstractmethod
    def _address(self, name: str) -> str:
        """How the manifest names the file: its S3 key, or its name beside the manifest."""

    async def write(self, batch: pa.RecordBatch) -> bool:
        if self._upload is None:
            self._upload = await self._open(interval_file_name(self.start, self.end, self.suffix, self.number))
            self._encoder, self._file_bytes = self._new_encoder(), 0
        assert self._encoder is not None
        await self._append(await asyncio.to_thread(self._encoder.encode, batch))
        if self.max_bytes is not None and self._file_bytes >= self.max_bytes:
            await self._close_file()
            return True  # the batch ended a file: everything written so far is complete
        return False

    @property
    def number(self) -> int:
        """The number of the file being written (or the next one)."""
        return self.first_file + self.files

    async def _append(self, data: bytes) -> None:
        assert self._upload is not None
        if data:
            await self._upload.append(data)
        self._file_bytes += len(data)
        self.bytes_written += len(data)

    async def _close_file(self) -> None:
        assert self._upload is not None and self._encoder is not None
        await self._append(self._encoder.finish())
        await self._upload.complete()
        self._upload, self._encoder = None, None
        self.files += 1

    async def commit(self, final: bool = True) -> None:
        if self._upload is None and self.number == 0:  # an empty interval still gets its (empty) file
            self._upload = await self._open(interval_file_name(self.start, self.end, self.suffix, 0))
            self._encoder = self._new_encoder()
        if self._upload is not None:
            await self._close_file()
        if final:
            await self._finish_interval()
        await self._close()

    async def _finish_interval(self) -> None:
        """Remove what an earlier attempt left beyond this one's files (and a manifest no longer wanted).

        Every attempt numbers its files on from 0 or from a file an earlier one completed, so what is
        left is a run of numbers right after this attempt's last: they are looked up one by one.
        """
        total, manifest_file = self.number, manifest_name(self.start, self.end)
        stale: list[str] = []
        while await self._exists(name := interval_file_name(self.start, self.end, self.suffix, total + len(stale))):
            stale.append(name)
        if self.max_bytes is None and await self._exists(manifest_file):
            stale.append(manifest_file)
        if stale:
            await self._remove(stale)
        if self.max_bytes is not None:
            files = [self._address(interval_file_name(self.start, self.end, self.suffix, n)) for n in range(total)]
            manifest = {
                "files": files,
                "data_interval_start": self.start.astimezone(UTC).isoformat(),
                "data_interval_end": self.end.astimezone(UTC).isoformat(),
            }
            await self._put(manifest_file, json.dumps(manifest, indent=2).encode())

    async def abort(self) -> None:
        upload, self._upload = self._upload, None
        if upload is not None:
            await upload.discard()
        await self._close()

    async def _close(self) -> None:
        """Release what the writer holds (a client, a connection)."""
