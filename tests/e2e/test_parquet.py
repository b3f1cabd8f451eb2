"""Parquet files: the model's column types, compressed inside the file as configured."""

import io
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.helpers import capture, create_export, event, export_file_now, run_hour
from tests.support.stack import Project


@pytest.mark.parametrize("compression", [None, "snappy", "lz4"])
async def test_events_as_parquet(project: Project, compression: str | None) -> None:
    await capture(project, [{**event("e", f"user-{i}", n=i), "$set": {"k": i}} for i in range(90)])
    fields: dict[str, Any] = {"file_format": "Parquet", **({"compression": compression} if compression else {})}
    file, run = await export_file_now(project, f"parquet-{compression}-{project.id}", config=fields)
    assert file.name.endswith(".parquet") and run["records_completed"] == 90
    parquet = pq.ParquetFile(io.BytesIO(file.read_bytes()))
    assert parquet.metadata.row_group(0).column(0).compression.lower() == (compression or "zstd")
    columns = {(group := parquet.metadata.row_group(0)).column(i).path_in_schema: group.column(i) for i in range(10)}
    assert columns["timestamp"].is_stats_set and columns["event"].is_stats_set  # row groups can be skipped by them
    assert not columns["properties"].is_stats_set and not columns["uuid"].is_stats_set  # useless for JSON, ids
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


async def test_split_parquet_files_are_each_complete(project: Project) -> None:
    at = datetime.now(UTC) - timedelta(minutes=5)
    await project.stack.pool.executemany(  # random hex: about 5 MB, which Parquet's zstd halves
        "INSERT INTO events (uuid, team_id, event, distinct_id, properties, timestamp, created_at, inserted_at) "
        "VALUES ($1, $2, 'big', 'someone', $3, $4, $4, $4)",
        [(uuid.uuid4(), project.id, {"blob": os.urandom(30_000).hex(), "i": i}, at) for i in range(80)],
    )
    path = f"parquet-split-{project.id}"
    config = {"path": path, "file_format": "Parquet", "max_file_size_mb": 1}
    export = await create_export(
        project, {"name": path, "interval": "hour", "destination": {"type": "File", "config": config}}
    )
    (run,) = await run_hour(project, export, datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1), 1)
    assert (run["status"], run["records_completed"]) == ("Completed", 80), run
    directory = project.files / path
    (manifest,) = directory.glob("*_manifest.json")
    files = json.loads(manifest.read_text())["files"]
    assert len(files) >= 2 and {p.name for p in directory.iterdir()} == {*files, manifest.name}
    assert all((directory / name).stat().st_size < 1.3 * 2**20 for name in files)
    tables = [pq.read_table(directory / name) for name in files]  # each one a whole Parquet file
    numbers = [json.loads(text)["i"] for table in tables for text in table.column("properties").to_pylist()]
    assert sorted(numbers) == list(range(80))
