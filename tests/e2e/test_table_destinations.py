"""The table destinations (Iceberg, Delta Lake) from the API, read back by the formats' own readers: created,
checked, run by the schedule and by a backfill, on S3 (SeaweedFS) and under the File root; a commit that landed
is not applied again; persons replace by key; a new column evolves the table and a type conflict fails the run."""

import asyncio
import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from temporalio.testing import ActivityEnvironment

from activities.export import Exporter
from contracts.workflows import ExportInputs
from tests.support.destinations import bucket, iceberg_metadata, lake_config, read_table, table_commits
from tests.support.helpers import (
    capture,
    create_export,
    event,
    insert_events,
    runs_until,
    start_run,
    started_run,
    trigger_for_last_hour,
)
from tests.support.seaweed import SeaweedS3
from tests.support.stack import Project

KINDS = ["Iceberg", "DeltaLake"]


async def table_config(project: Project, s3: Any, service: SeaweedS3, storage: str, **fields: Any) -> dict[str, Any]:
    if storage == "File":
        return {
            "storage": "File",
            "path": f"lake-{project.id}-{uuid.uuid4().hex[:6]}",
            "table_name": "events",
            **fields,
        }
    return lake_config(service, await bucket(s3, project), prefix="lake", table_name="events", **fields)


def finished(count: int) -> Any:
    return lambda rs: len(rs) == count and all(r["status"] not in ("Starting", "Running") for r in rs)


@pytest.mark.parametrize("storage", ["S3Compatible", "File"])
@pytest.mark.parametrize("kind", KINDS)
async def test_created_checked_run_by_its_schedule_and_a_backfill_then_read_back(
    project: Project, s3: Any, s3_service: SeaweedS3, kind: str, storage: str
) -> None:
    config = await table_config(project, s3, s3_service, storage)
    export = await create_export(
        project, {"name": kind, "interval": "hour", "destination": {"type": kind, "config": config}}
    )
    assert not {"aws_access_key_id", "aws_secret_access_key"} & set(export["destination"]["config"])

    status, listed = await project.request("GET", "batch_exports/test/", params={"destination": kind})
    assert status == 200 and len(listed["steps"]) >= 2
    for step in range(len(listed["steps"])):
        status, check = await project.request(
            "POST", f"batch_exports/{export['id']}/run_test_step/", json={"step": step}
        )
        assert (status, check["result"]) == (200, {"status": "Passed", "message": None}), (step, check)

    await capture(
        project, [event("$pageview", f"user-{i}", n=i, **{"$current_url": "https://example.com"}) for i in range(20)]
    )
    hour = await trigger_for_last_hour(project, export)
    (scheduled,) = await runs_until(project, export["id"], finished(1), within=60)
    assert (scheduled["status"], scheduled["records_completed"]) == ("Completed", 20), scheduled

    earlier = await insert_events(project.stack, project.id, [hour - timedelta(hours=3, minutes=-i) for i in range(5)]
                                  + [hour - timedelta(hours=2, minutes=-i) for i in range(5)])  # fmt: skip
    status, created = await project.request(
        "POST", f"batch_exports/{export['id']}/backfills/",
        json={"start_at": (hour - timedelta(hours=3)).isoformat(), "end_at": (hour - timedelta(hours=1)).isoformat()},
    )  # fmt: skip
    assert status == 201, created
    found = await runs_until(project, export["id"], finished(3), within=90)
    assert [r["status"] for r in found] == ["Completed"] * 3, found

    table = await read_table(kind, project, config, s3_service)
    assert table is not None
    sent = {
        str(r["uuid"]) for r in await project.stack.pool.fetch("SELECT uuid FROM events WHERE team_id = $1", project.id)
    }
    uuids = table.column("uuid").to_pylist()
    assert len(uuids) == len(set(uuids)) == 30 and set(uuids) == sent and earlier <= sent
    types = {field.name: field.type for field in table.schema}
    assert types["uuid"] == pa.string() and types["event"] == pa.string() and types["distinct_id"] == pa.string()
    for column in ("timestamp", "created_at", "_inserted_at"):
        assert types[column] == pa.timestamp("us", tz="UTC"), (column, types[column])
    live = next(row for row in table.to_pylist() if row["event"] == "$pageview" and row["distinct_id"] == "user-3")
    assert json.loads(live["properties"])["n"] == 3  # JSON documents as their text

    commits = await table_commits(kind, project, config, s3_service)
    marked = {c.get("batch-export-run-id") for c in commits} - {None}
    assert marked == {r["id"] for r in found}  # each run's commit says which run it was
    if kind == "Iceberg":
        metadata = await iceberg_metadata(project, config, s3_service)
        assert (
            str(metadata.spec().fields[0].transform) == "day" and metadata.spec().fields[0].name == "_inserted_at_day"
        )


@pytest.mark.parametrize("kind", KINDS)
async def test_a_commit_that_landed_is_not_applied_again(
    project: Project, s3: Any, s3_service: SeaweedS3, kind: str
) -> None:
    """An attempt whose commit landed before its worker was lost, and the attempt Temporal retries: the second
    finds the run's commit of the same records and commits nothing; a new run of the interval replaces it."""
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    start = end - timedelta(hours=1)
    sent = await insert_events(project.stack, project.id, [start + timedelta(minutes=i) for i in range(30)])
    config = await table_config(project, s3, s3_service, "S3Compatible")
    export = await create_export(
        project, {"name": kind, "interval": "hour", "destination": {"type": kind, "config": config}}
    )
    exporter = Exporter(project.stack.runtime)

    async def attempt(run_id: uuid.UUID, number: int) -> None:
        environment = ActivityEnvironment()
        environment.info = dataclasses.replace(environment.info, attempt=number)
        result = await environment.run(exporter.export_interval, ExportInputs(str(run_id), export["id"], start, end))
        assert result.records_completed == 30

    async def new_run() -> uuid.UUID:
        return await started_run(project.stack.pool, batch_export_id=uuid.UUID(export["id"]),
                                workflow_id=f"{export['id']}-landed", workflow_run_id=str(uuid.uuid4()),
                                data_interval_start=start, data_interval_end=end, backfill_id=None)  # fmt: skip

    run_id = await new_run()
    await attempt(run_id, 1)
    landed = await table_commits(kind, project, config, s3_service)
    await attempt(run_id, 2)  # the retry: it reads and counts the interval, and commits nothing
    assert await table_commits(kind, project, config, s3_service) == landed
    await attempt(await new_run(), 1)  # another run of the interval replaces what the first wrote
    assert len(await table_commits(kind, project, config, s3_service)) > len(landed)
    table = await read_table(kind, project, config, s3_service)
    assert table is not None and sorted(table.column("uuid").to_pylist()) == sorted(sent)


@pytest.mark.parametrize("kind", KINDS)
async def test_persons_replace_their_row_by_team_and_distinct_id(
    project: Project, s3: Any, s3_service: SeaweedS3, kind: str
) -> None:
    config = await table_config(project, s3, s3_service, "File", table_name="persons")
    export = await create_export(project, {"name": kind, "interval": "hour", "model": "persons",
                                           "destination": {"type": kind, "config": config}})  # fmt: skip
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    await capture(project, [{**event("signup", "ada"), "$set": {"plan": "free"}},
                            {**event("signup", "grace"), "$set": {"plan": "free"}}])  # fmt: skip
    await asyncio.sleep(1.1)
    middle = datetime.now(UTC).replace(microsecond=0)
    await start_run(project.stack, export, start=first, end=middle)
    await runs_until(project, export["id"], finished(1), within=60)
    await capture(project, [{**event("upgrade", "ada"), "$set": {"plan": "pro"}}])
    await asyncio.sleep(1.1)
    last = datetime.now(UTC).replace(microsecond=0)
    await start_run(project.stack, export, start=middle, end=last)
    found = await runs_until(project, export["id"], finished(2), within=60)
    assert [r["status"] for r in found] == ["Completed", "Completed"], found

    table = await read_table(kind, project, config, s3_service)
    assert table is not None
    rows = {row["distinct_id"]: row for row in table.to_pylist()}
    assert len(rows) == table.num_rows == 2 and {row["team_id"] for row in rows.values()} == {project.id}
    assert json.loads(rows["ada"]["properties"])["plan"] == "pro"
    assert json.loads(rows["grace"]["properties"])["plan"] == "free"


@pytest.mark.parametrize("kind", KINDS)
async def test_a_new_column_is_added_and_a_changed_type_fails_the_run(
    project: Project, s3: Any, s3_service: SeaweedS3, kind: str
) -> None:
    config = await table_config(project, s3, s3_service, "S3Compatible")
    body = {"name": kind, "interval": "hour", "hogql_query": "SELECT uuid, event FROM events",
            "destination": {"type": kind, "config": config}}  # fmt: skip
    export = await create_export(project, body)
    await capture(project, [event("e", f"user-{i}", n=i) for i in range(10)])
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    await asyncio.sleep(1.1)

    async def run(count: int, query: str | None = None) -> dict[str, Any]:
        if query:
            status, changed = await project.request(
                "PATCH", f"batch_exports/{export['id']}/", json={"hogql_query": query}
            )
            assert status == 200, changed
        await start_run(project.stack, export, start=end - timedelta(hours=1), end=end)
        return (await runs_until(project, export["id"], finished(count), within=60))[-1]

    assert (await run(1))["status"] == "Completed"
    table = await read_table(kind, project, config, s3_service)
    partition = {"_interval_start_day"} if kind == "DeltaLake" else set()  # Delta keeps its partition as a column
    assert table is not None and set(table.column_names) == {"uuid", "event", "_interval_start", *partition}

    assert (await run(2, "SELECT uuid, event, length(distinct_id) AS n FROM events"))["status"] == "Completed"
    table = await read_table(kind, project, config, s3_service)
    assert table is not None and table.num_rows == 10  # the rerun replaced the interval's rows
    assert table.schema.field("n").type == pa.int32() and set(table.column("n").to_pylist()) == {6}

    failed = await run(3, "SELECT uuid, length(distinct_id) AS event FROM events")
    assert failed["status"] == "Failed" and "event" in failed["latest_error"], failed
    assert "string" in failed["latest_error"] and "int" in failed["latest_error"], failed
    table = await read_table(kind, project, config, s3_service)
    assert table is not None and table.num_rows == 10 and table.schema.field("event").type == pa.string()


async def test_bad_table_configs_are_400s_that_name_the_field(project: Project) -> None:
    s3 = {"storage": "S3", "bucket_name": "b-ok", "aws_access_key_id": "k", "aws_secret_access_key": "s"}
    for kind, config, attr in [
        ("Iceberg", {"storage": "S3", "table_name": "t"}, "destination__config__bucket_name"),
        ("Iceberg", {"storage": "File", "path": "../elsewhere", "table_name": "t"}, "destination__config__path"),
        ("Iceberg", {"storage": "File", "path": "/etc", "table_name": "t"}, "destination__config__path"),
        ("Iceberg", {**s3, "table_name": "no spaces"}, "destination__config__table_name"),
        ("Iceberg", {**s3, "table_name": "t", "namespace": "a.b"}, "destination__config__namespace"),
        ("DeltaLake", {**s3, "storage": "S3Compatible", "table_name": "t"}, "destination__config__endpoint_url"),
        ("DeltaLake", {"storage": "File", "path": "x", "table_name": "t", "bucket_name": "b-ok"},
         "destination__config__bucket_name"),
        ("DeltaLake", {**s3, "table_name": "t", "partitioning": "hour"}, "destination__config__partitioning"),
        ("DeltaLake", {"storage": "Tape", "table_name": "t"}, "destination__config__storage"),
    ]:  # fmt: skip
        body = {"name": kind, "interval": "hour", "destination": {"type": kind, "config": config}}
        status, error = await project.request("POST", "batch_exports/", json=body)
        assert (status, error["attr"]) == (400, attr), (config, error)


async def test_tables_are_kept_apart_by_location_and_their_files_read_only_there(project: Project) -> None:
    """Two exports naming the same table at two places write two tables (the catalog is one per location), and a
    metadata file that names a file outside its table's location fails the run instead of being followed."""
    first = {"storage": "File", "path": f"lake-{project.id}-a", "table_name": "events"}
    second = {**first, "path": f"lake-{project.id}-b"}
    exports = [
        await create_export(project, {"name": "i", "interval": "hour", "destination": {"type": "Iceberg", "config": c}})
        for c in (first, second)
    ]
    await capture(project, [event("e", "someone")])
    await asyncio.sleep(1.1)
    end = datetime.now(UTC).replace(microsecond=0)
    for export in exports:
        await start_run(project.stack, export, start=end - timedelta(hours=1), end=end)
        await runs_until(project, export["id"], finished(1), within=60)
    root = project.files
    for config in (first, second):
        metadata = await iceberg_metadata(project, config)
        assert metadata is not None and metadata.location().startswith((root / config["path"]).as_uri())
        assert metadata.scan().to_arrow().num_rows == 1

    metadata = await iceberg_metadata(project, first)
    path = Path(metadata.metadata_location.removeprefix("file://"))
    document = json.loads(await asyncio.to_thread(path.read_text))
    for snapshot in document["snapshots"]:
        snapshot["manifest-list"] = (root / f"lake-{project.id}-b" / "elsewhere.avro").as_uri()
    await asyncio.to_thread(path.write_text, json.dumps(document))
    await start_run(project.stack, exports[0], start=end - timedelta(hours=1), end=end)
    failed = (await runs_until(project, exports[0]["id"], finished(2), within=60))[-1]
    assert failed["status"] == "Failed" and "outside its location" in failed["latest_error"], failed
