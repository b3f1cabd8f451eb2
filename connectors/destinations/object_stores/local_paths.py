"""Paths under a project's directory of the file root that no symbolic link leads out of.

Everything the `File`, `Iceberg` and `DeltaLake` destinations create or open lies under `{root}/{project id}`,
whatever links exist below it (the root itself is the operator's, and may be a link):

- `File` opens each directory relative to its parent's handle, with `O_NOFOLLOW` (`open_directory`), and its
  files relative to the directory's handle, so a link is never followed, even one made a moment before;
- the tables' libraries (pyarrow's file system under pyiceberg, delta-rs) open paths themselves: a table whose
  existing path holds a link, below the project's directory or anywhere inside the table, is refused before
  each attempt and check (`refuse_links`), and pyiceberg's file IO looks again at each file it opens.

A link found is the user's error (`DestinationUserError`), named by its path relative to the project's directory.
"""

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from connectors.destinations.base import DestinationUserError

_NO_FOLLOW_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
"""A file made here, never one that exists (nor a link in its place)."""


def parts_below(root: Path, path: str | Path) -> list[str]:
    """The names leading from `root` to `path` (relative to it, or an absolute path inside it), refused when
    they climb out of it."""
    relative = PurePosixPath(path).relative_to(root) if PurePosixPath(path).is_absolute() else PurePosixPath(path)
    parts = [part for part in relative.parts if part not in ("", ".")]
    if ".." in parts:
        raise DestinationUserError(f"'{path}' climbs out of the directory this service writes to ({root})")
    return parts


def _link_refused(root: Path, parts: list[str]) -> DestinationUserError:
    return DestinationUserError(
        f"'{'/'.join(parts)}' under {root} is a symbolic link: this service never follows links below a project's "
        "directory; remove it or choose another path"
    )


def _not_a_directory(root: Path, parts: list[str]) -> DestinationUserError:
    """Why the directory `parts` cannot be opened without following: a link there, or a file in the way."""
    if root.joinpath(*parts).is_symlink():
        return _link_refused(root, parts)
    return DestinationUserError(f"cannot write to {root.joinpath(*parts)}: '{'/'.join(parts)}' is not a directory")


@contextlib.contextmanager
def open_directory(root: Path, parts: list[str], *, create: bool) -> Iterator[int]:
    """A handle of the directory `root/parts...`, each component opened relative to the one before with
    O_NOFOLLOW (made when missing, with `create`): a link anywhere below `root` is refused, never followed."""
    if create:
        root.mkdir(parents=True, exist_ok=True)
    handle = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for depth, name in enumerate(parts):
            try:
                child = os.open(name, _NO_FOLLOW_DIRECTORY, dir_fd=handle)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):  # another attempt made it a moment ago
                    os.mkdir(name, 0o777, dir_fd=handle)
                child = _open_child(root, parts[: depth + 1], handle)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _not_a_directory(root, parts[: depth + 1]) from None
                raise
            os.close(handle)
            handle = child
        yield handle
    finally:
        os.close(handle)


def _open_child(root: Path, parts: list[str], parent: int) -> int:
    try:
        return os.open(parts[-1], _NO_FOLLOW_DIRECTORY, dir_fd=parent)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _not_a_directory(root, parts) from None
        raise


def create_file(root: Path, path: Path) -> BinaryIO:
    """A new file at `path` (inside `root`), opened for writing relative to its directory's handle, no link
    followed (its directories made when missing)."""
    *directories, name = parts_below(root, path)
    with open_directory(root, directories, create=True) as directory:
        return os.fdopen(os.open(name, NEW_FILE, 0o666, dir_fd=directory), "wb")


def refuse_links(root: Path, directory: Path, *, inside: bool = True) -> None:
    """Refuse `directory` (inside `root`) when a component of it that exists is a link, or (with `inside`)
    anything inside it."""
    parts = parts_below(root, directory)
    for depth in range(1, len(parts) + 1):
        try:
            mode = os.lstat(root.joinpath(*parts[:depth])).st_mode
        except FileNotFoundError:
            return  # nothing below a missing directory
        if stat.S_ISLNK(mode):
            raise _link_refused(root, parts[:depth])
    below = [root.joinpath(*parts)] if inside else []
    while below:
        try:
            entries = list(os.scandir(below.pop()))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if entry.is_symlink():
                raise _link_refused(root, parts_below(root, entry.path))
            if entry.is_dir(follow_symlinks=False):
                below.append(Path(entry.path))
