"""The files an interval becomes, without a disk: names, numbered files and their manifest, a rerun that
replaces, and each format and compression reading back as the rows written."""

import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import brotli
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from connectors.destinations.base import Context, WriteRequest
from connectors.destinations.object_stores.series import FilesConfig, IntervalFiles
from connectors.formats.options import Compression, FileFormat
from tests.support.memory_files import MemoryWriter

START = datetime(2026, 1, 1, 10, tzinfo=UTC)
END = START + timedelta(hours=1)
STEM = "2026-01-01T10:00:00Z-2026-01-01T11:00:00Z"
DECOMPRESS = {
    None: lambda data: data,
    Compression.GZIP: gzip.decompress,
    Compression.BROTLI: brotli.decompress,
    Compression.ZSTD: lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
}


def batch(first: int, count: int, blob: int = 10) -> pa.RecordBatch:
    ids = [f"00000000-0000-0000-0000-{n:012d}" for n in range(first, first + count)]
    return pa.RecordBatch.from_pydict(
        {
            "uuid": ids,
            "event": ["signup"] * count,
            "properties": pa.ExtensionArray.from_storage(
                pa.json_(), pa.array([json.dumps({"n": n, "blob": "x" * blob}) for n in range(first, first + count)])
            ),
            "timestamp": pa.array([START] * count, pa.timestamp("us", tz="UTC")),
        }
    )


def writer(files: dict[str, bytes], first_file: int = 0, **config: object) -> MemoryWriter:
    parsed = FilesConfig.model_validate(config)
    request = WriteRequest(Context(Path("/nowhere"), False), "events", True, START, END, first_file)
    return MemoryWriter(files, IntervalFiles.of(parsed, request))


def rows(name: str, data: bytes, compression: Compression | None) -> list[dict[str, Any]]:
    if name.endswith(".parquet"):
        return pq.read_table(io.BytesIO(data)).to_pylist()
    return [json.loads(line) for line in DECOMPRESS[compression](data).splitlines()]


@pytest.mark.parametrize(
    ("file_format", "compression", "suffix"),
    [
        (FileFormat.JSONLINES, None, ".jsonl"),
        (FileFormat.JSONLINES, Compression.GZIP, ".jsonl.gz"),
        (FileFormat.JSONLINES, Compression.BROTLI, ".jsonl.br"),
        (FileFormat.JSONLINES, Compression.ZSTD, ".jsonl.zst"),
        (FileFormat.PARQUET, None, ".parquet"),
        (FileFormat.PARQUET, Compression.SNAPPY, ".parquet"),
    ],
)
async def test_one_file_per_interval_reads_back_as_written(
    file_format: FileFormat, compression: Compression | None, suffix: str
) -> None:
    files: dict[str, bytes] = {}
    out = writer(files, file_format=file_format, compression=compression)
    for first in (0, 50):
        assert await out.write(batch(first, 50)) is False  # one file: nothing is complete before commit
    await out.commit()
    assert list(files) == [STEM + suffix]
    read = rows(STEM + suffix, files[STEM + suffix], compression)
    assert [r["uuid"] for r in read] == [f"00000000-0000-0000-0000-{n:012d}" for n in range(100)]
    properties = read[7]["properties"]
    assert (json.loads(properties) if isinstance(properties, str) else properties)["n"] == 7
    assert out.bytes_written == len(files[STEM + suffix]) and out.files == 1


async def test_an_empty_interval_still_gets_its_file() -> None:
    files: dict[str, bytes] = {}
    await writer(files).commit()
    assert files == {STEM + ".jsonl": b""}


async def test_split_files_end_at_the_limit_and_a_manifest_lists_them() -> None:
    files: dict[str, bytes] = {}
    out = writer(files, max_file_size_mb=1)
    ended = [await out.write(batch(n * 200, 200, blob=1000)) for n in range(20)]  # about 4 MB of lines
    await out.commit()
    numbered = sorted(name for name in files if not name.endswith("_manifest.json"))
    assert len(numbered) == out.files >= 3 and any(ended)
    manifest = json.loads(files[f"{STEM}_manifest.json"])
    assert manifest["files"] == [STEM + ".jsonl"] + [f"{STEM}-{n}.jsonl" for n in range(1, out.files)]
    assert all(len(files[name]) >= 2**20 for name in manifest["files"][:-1])
    uuids = [r["uuid"] for name in manifest["files"] for r in rows(name, files[name], None)]
    assert len(uuids) == len(set(uuids)) == 4000


async def test_a_rerun_with_fewer_files_removes_the_extra_ones_and_the_manifest() -> None:
    files: dict[str, bytes] = {}
    first = writer(files, max_file_size_mb=1)
    for n in range(20):
        await first.write(batch(n * 200, 200, blob=1000))
    await first.commit()
    assert len(files) > 3
    again = writer(files)  # the same interval rewritten whole, unsplit
    await again.write(batch(0, 10))
    await again.commit()
    assert list(files) == [STEM + ".jsonl"]
    assert len(rows(STEM + ".jsonl", files[STEM + ".jsonl"], None)) == 10


async def test_a_continued_execution_numbers_on_and_an_aborted_file_never_appears() -> None:
    files: dict[str, bytes] = {}
    out = writer(files, first_file=2, max_file_size_mb=1)
    await out.write(batch(0, 10))
    await out.abort()
    assert files == {}
    out = writer(files, first_file=2, max_file_size_mb=1)
    await out.write(batch(0, 10))
    await out.commit(final=False)
    assert list(files) == [f"{STEM}-2.jsonl"]  # no manifest until the execution that ends the interval
