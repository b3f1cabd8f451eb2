"""Paths under a project's directory: a link below it is refused, never followed, even one made after a writer
chose its directory."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from connectors.destinations.base import Context, DestinationUserError, WriteRequest
from connectors.destinations.object_stores.file import FileConfig, FileWriter, _write_probe
from connectors.destinations.object_stores.local_paths import create_file, open_directory, refuse_links
from connectors.destinations.object_stores.series import IntervalFiles

START = datetime(2026, 1, 1, 10, tzinfo=UTC)


def one_row() -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({"uuid": ["00000000-0000-0000-0000-000000000001"], "event": ["e"]})


def layout(tmp_path: Path) -> tuple[Path, Path]:
    root, elsewhere = tmp_path / "exports" / "1", tmp_path / "elsewhere"
    root.mkdir(parents=True)
    elsewhere.mkdir()
    return root, elsewhere


async def test_a_link_made_after_the_writer_chose_its_directory_is_not_followed(tmp_path: Path) -> None:
    root, elsewhere = layout(tmp_path)
    config = FileConfig(path="lake3/posthog")
    request = WriteRequest(Context(root, False), "events", True, START, START + timedelta(hours=1))
    writer = FileWriter(config, root, IntervalFiles.of(config, request))
    (root / "lake3").mkdir()
    (root / "lake3" / "posthog").symlink_to(elsewhere)  # between the attempt's start and its first file
    with pytest.raises(DestinationUserError, match=r"'lake3/posthog' .* is a symbolic link"):
        await writer.write(one_row())
        await writer.commit()
    await writer.abort()
    assert list(elsewhere.iterdir()) == []


def test_every_component_is_opened_without_following(tmp_path: Path) -> None:
    root, elsewhere = layout(tmp_path)
    (root / "a").mkdir()
    (root / "a" / "b").symlink_to(elsewhere)
    for parts in (["a", "b"], ["a", "b", "c"]):
        with pytest.raises(DestinationUserError, match="'a/b'"), open_directory(root, parts, create=True):
            pass
    with pytest.raises(DestinationUserError, match="'a/b'"):
        create_file(root, root / "a" / "b" / "c" / "file.parquet")
    with pytest.raises(DestinationUserError, match="'a/b'"):
        _write_probe(FileConfig(path="a", prefix="b"), root)
    assert list(elsewhere.iterdir()) == []
    with open_directory(root, ["a", "new", "deeper"], create=True):
        pass
    assert (root / "a" / "new" / "deeper").is_dir()
    (root / "link-to-sibling").symlink_to(root / "a")  # inside the root, but still a link: refused
    with pytest.raises(DestinationUserError), open_directory(root, ["link-to-sibling"], create=False):
        pass


def test_a_table_with_a_link_on_its_path_or_inside_is_refused(tmp_path: Path) -> None:
    root, elsewhere = layout(tmp_path)
    table = root / "lake" / "posthog" / "events"
    (table / "metadata").mkdir(parents=True)
    refuse_links(root, table)  # none: fine
    refuse_links(root, root / "lake" / "missing" / "events")  # not there yet: fine
    (table / "data").symlink_to(elsewhere)
    with pytest.raises(DestinationUserError, match="'lake/posthog/events/data'"):
        refuse_links(root, table)
    refuse_links(root, table, inside=False)  # its own path holds none
    (table / "data").unlink()
    (table / "metadata" / "v1.metadata.json").symlink_to(elsewhere / "x")
    with pytest.raises(DestinationUserError, match=r"v1\.metadata\.json"):
        refuse_links(root, table)
