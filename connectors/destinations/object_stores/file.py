"""`File`: files in a local directory (under the project's own directory of the worker's root), laid out like
the S3 destination's keys.

Two projects never share a directory (each writes under `{root}/{project id}`), and a path is one the file
system can hold: relative, no `..`, no NUL or other control character, names of at most 255 bytes.

Each file is written to a hidden partial file beside its final name and renamed over it when complete,
so a reader sees the previous copy or the complete new one, never half of either. Directories and files are
opened relative to their parent's handle without following links (`local_paths`): nothing is written outside
the project's directory, whatever links exist below it.
"""

import asyncio
import contextlib
import os
import uuid
from pathlib import Path
from typing import IO

from pydantic import Field, field_validator

from connectors.destinations.base import Context, Destination, DestinationUserError, Step
from connectors.destinations.object_stores.local_paths import NEW_FILE, open_directory, parts_below
from connectors.destinations.object_stores.series import FilesConfig, FileSeriesWriter, FileUpload, IntervalFiles

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


def directory_parts(config: FileConfig) -> list[str]:
    """The names leading from the project's directory to the one `config` names (`path`, then `prefix`)."""
    return parts_below(Path("."), f"{config.path}/{config.prefix}")


class _LocalFile(FileUpload):
    """A hidden partial file beside the final name, renamed over it when complete; both opened relative to the
    directory's handle, which stays open while the file is."""

    def __init__(self, root: Path, parts: list[str], name: str) -> None:
        self.root, self.parts, self.name = root, parts, name
        self._partial = f".{name}.{uuid.uuid4().hex}.partial"
        self._directory: int | None = None
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
                if self._directory is None:
                    with open_directory(self.root, self.parts, create=True) as handle:
                        self._directory = os.dup(handle)
                self._file = os.fdopen(os.open(self._partial, NEW_FILE, 0o666, dir_fd=self._directory), "wb")
            except (PermissionError, NotADirectoryError, FileExistsError) as error:
                raise DestinationUserError(
                    f"cannot write to {self.root.joinpath(*self.parts)}: {error.strerror}"
                ) from error
        return self._file

    def _write(self, data: bytes) -> None:
        self._open().write(data)

    def _complete(self) -> None:
        file = self._open()  # an empty file still appears
        file.flush()
        os.fsync(file.fileno())
        file.close()
        self._file = None
        os.replace(self._partial, self.name, src_dir_fd=self._directory, dst_dir_fd=self._directory)
        self._close_directory()

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._directory is not None:  # never opened: nothing to remove
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._partial, dir_fd=self._directory)
            self._close_directory()

    def _close_directory(self) -> None:
        directory, self._directory = self._directory, None
        if directory is not None:
            os.close(directory)


class FileWriter(FileSeriesWriter):
    def __init__(self, config: FileConfig, root: Path, files: IntervalFiles) -> None:
        super().__init__(files)
        self.root, self.parts = root, directory_parts(config)

    async def _open(self, name: str) -> FileUpload:
        return _LocalFile(self.root, self.parts, name)

    async def _exists(self, name: str) -> bool:
        def exists() -> bool:
            try:
                with open_directory(self.root, self.parts, create=False) as directory:
                    os.stat(name, dir_fd=directory, follow_symlinks=False)
                return True
            except FileNotFoundError:
                return False

        return await asyncio.to_thread(exists)

    async def _remove(self, names: list[str]) -> None:
        def remove() -> None:
            with (
                contextlib.suppress(FileNotFoundError),
                open_directory(self.root, self.parts, create=False) as directory,
            ):
                for name in names:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=directory)

        await asyncio.to_thread(remove)

    async def _put(self, name: str, data: bytes) -> None:
        upload = _LocalFile(self.root, self.parts, name)
        await upload.append(data)
        await upload.complete()

    def _address(self, name: str) -> str:
        return name  # beside the manifest


def _write_probe(config: FileConfig, root: Path) -> None:
    parts = directory_parts(config)
    probe = f".batch-exports-check-{uuid.uuid4().hex}"
    try:
        with open_directory(root, parts, create=True) as directory:
            os.close(os.open(probe, NEW_FILE, 0o666, dir_fd=directory))
            os.unlink(probe, dir_fd=directory)
    except OSError as error:
        raise DestinationUserError(f"cannot write to {root.joinpath(*parts)}: {error.strerror}") from error


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
