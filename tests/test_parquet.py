"""Parquet files: the model's column types, compressed inside the file as configured."""

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import Project
from tests.helpers import event
from tests.test_source_models import capture, export_file_now


@pytest.mark.parametrize("compression", [None, "snappy", "lz4"])
async def test_events_as_parquet(project: Project, compression: str | None) -> None:
    await capture(project, [{**event("e", f"user-{i}", n=i), "$set": {"k": i}} for i in range(90)])
    fields: dict[str, Any] = {"file_format": "Parquet", **({"compression": compression} if compression else {})}
    file, run = await export_file_now(project, f"parquet-{compression}-{project.id}", config=fields)
    assert file.name.endswith(".parquet") and run["records_completed"] == 90
    parquet = pq.ParquetFile(io.BytesIO(file.read_bytes()))
    assert parquet.metadata.row_group(0).column(0).compression.lower() == (compression or "zstd")
    table = parquet.read()
    assert table.num_rows == 90
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    rows = table.to_pylist()
    assert sorted(json.loads(row["properties"])["n"] for row in rows) == list(range(90))


async def test_format_and_compression_must_fit(project: Project) -> None:
    config = {"path": "x", "file_format": "JSONLines", "compression": "snappy"}
    body = {"name": "x", "interval": "hour", "destination": {"type": "File", "config": config}}
    status, error = await project.request("POST", "batch_exports/", json=body)
    assert status == 400 and "JSONLines files take compression" in error["detail"]
