"""JSONLines compressed as configured (gzip, brotli, zstd), streamed while written; file names say how."""

import gzip
import json

import brotli
import pytest
import zstandard

from tests.support.helpers import capture, event, export_file_now
from tests.support.stack import Project

DECOMPRESS = {"gzip": gzip.decompress, "brotli": brotli.decompress,
              "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data)}  # fmt: skip
SUFFIX = {"gzip": ".jsonl.gz", "brotli": ".jsonl.br", "zstd": ".jsonl.zst"}


@pytest.mark.parametrize("compression", ["gzip", "brotli", "zstd"])
async def test_compressed_jsonlines(project: Project, compression: str) -> None:
    await capture(project, [event("e", f"user-{i}", text="lorem ipsum " * 50) for i in range(30)])
    path = f"compressed-{compression}-{project.id}"
    file, run = await export_file_now(project, path, config={"compression": compression})
    assert file.name.endswith(SUFFIX[compression]) and run["records_completed"] == 30
    data = file.read_bytes()
    rows = [json.loads(line) for line in DECOMPRESS[compression](data).splitlines()]
    assert len(rows) == 30 and len(data) < sum(len(json.dumps(r)) for r in rows) / 3
