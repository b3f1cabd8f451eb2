"""`File`: files in a local directory (under the project's own directory of the worker's root), laid out like
the S3 destination's keys.

Two projects never share a directory (each writes under `{root}/{project id}`), and a path is one the file
system can hold: relative, no `..`, no NUL or other control character, names of at most 255 bytes.

Each file is written to a hidden partial file beside its final name and renamed over it when complete,
so a reader sees the previous copy or the complete new one, never half of either.
"""

import asyncio
import contextlib
import os
import uuid
from pathlib import Path
from typing import IO

from pydantic import Field, field_validator

from connectors.destinations.base import Context, Destination, DestinationUserError, Step
from connectors.destinations.file_series import FilesConfig, FileSeriesWriter, FileUpload, IntervalFiles

NAME_BYTES = 255
"""The longest file or directory name most file systems take."""


class FileConfig(FilesConfig):
    path: str = Field(
        min_length=1, max_length=1000, description="Directory, relative to the project's directory of the root."
    )
    prefix: str = Field("", max_length=1000, description="Sub-directory for this export's files.")

    @field_validator("path", "prefix")
    @classmethod
    def _a_relative_path(cls, value: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must not contain NUL or other control characters")
        if ".." in value.split("/"):
            raise ValueError("must not contain '..' segments")
        if value.startswith("/"):
            raise ValueError("must be relative to the directory this service writes files under")
        try:
            too_long = [part for part in value.split("/") if len(part.encode()) > NAME_BYTES]
        except UnicodeEncodeError:
            raise ValueError("must be valid unicode text") from None
        if too_long:
            raise ValueError(f"a directory name may be at most {NAME_BYTES} bytes long")
        return value


def resolve_directory(config: FileConfig, root: Path) -> Path:
    """The directory `config` names, which must lie inside `root` (the project's directory of the root)."""
    directory = (root / config.path / config.prefix).resolve()
    if not directory.is_relative_to(root):
        raise DestinationUserError(
            f"path '{config.path}' is outside the directory this service may write to ({root}); "
            "use a path relative to it"
        )
    return directory


class _LocalFile(FileUpload):
    """A hidden partial file beside the final name, renamed over it when complete."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self._partial = target.parent / f".{target.name}.{uuid.uuid4().hex}.partial"
        self._file: IO[bytes] | None = None

    async def append(self, data: bytes) -> None:
        await asyncio.to_thread(self._write, data)

    async def complete(self) -> None:
        await asyncio.to_thread(self._complete)

    async def discard(self) -> None:
        await asyncio.to_thread(self._discard)

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

    def _complete(self) -> None:
        file = self._open()  # an empty file still appears
        file.flush()
        os.fsync(file.fileno())
        file.close()
        self._file = None
        os.replace(self._partial, self.target)

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # never written: nothing to remove
            self._partial.unlink()


class FileWriter(FileSeriesWriter):
    def __init__(self, config: FileConfig, root: Path, files: IntervalFiles) -> None:
        super().__init__(files)
        self.directory = resolve_directory(config, root)

    async def _open(self, name: str) -> FileUpload:
        return _LocalFile(self.directory / name)

    async def _exists(self, name: str) -> bool:
        return await asyncio.to_thread((self.directory / name).exists)

    async def _remove(self, names: list[str]) -> None:
        def remove() -> None:
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / name).unlink()

        await asyncio.to_thread(remove)

    async def _put(self, name: str, data: bytes) -> None:
        upload = _LocalFile(self.directory / name)
        await upload.append(data)
        await upload.complete()

    def _address(self, name: str) -> str:
        return name  # beside the manifest


def _write_probe(config: FileConfig, root: Path) -> None:
    directory = resolve_directory(config, root)
    probe = directory / f".batch-exports-check-{uuid.uuid4().hex}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise DestinationUserError(f"cannot write to {directory}: {error.strerror}") from error


async def _writable(config: FileConfig, context: Context) -> None:
    await asyncio.to_thread(_write_probe, config, context.files_root)


DESTINATION = Destination(
    type="File",
    config=FileConfig,
    open_writer=lambda config, request: FileWriter(
        config, request.context.files_root, IntervalFiles.of(config, request)
    ),
    steps=(
        Step("Write to the directory", "Create the directory if needed and write (then remove) a file in it.",
             _writable),
    ),
)  # fmt: skip
