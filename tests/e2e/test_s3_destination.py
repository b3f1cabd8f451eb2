"""The S3 destinations against a real S3 API (SeaweedFS): one object per interval and segment, each
record once however often the interval is written, multipart for large intervals, user errors at once."""

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.destinations import bucket, objects, s3_config
from tests.support.helpers import capture, create_export, event, run_hour
from tests.support.seaweed import SeaweedS3
from tests.support.stack import Project

POSTHOG_FILE_COLUMNS = ["uuid", "timestamp", "_inserted_at", "created_at", "event", "properties", "distinct_id",
                        "elements_chain", "person_properties", "person_id"]  # fmt: skip
"""The event columns PostHog's S3 export writes (`s3_default_fields`), in its order."""


async def create(project: Project, destination_config: dict[str, Any]) -> dict[str, Any]:
    body = {"name": "s3", "interval": "hour", "destination": {"type": "S3Compatible", "config": destination_config}}
    export = await create_export(project, body)
    shown = export["destination"]["config"]
    assert "aws_secret_access_key" not in shown and "aws_access_key_id" not in shown
    return export  # type: ignore[no-any-return]


async def test_each_record_once_across_segments_and_reruns(project: Project, s3: Any, s3_service: SeaweedS3) -> None:
    name = await bucket(s3, project)
    export = await create(project, s3_config(s3_service, name, prefix="{table}/{year}", compression="gzip"))
    await capture(project, [event("e", f"user-{i}", n=i) for i in range(250)])  # three segments of <= 100
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    found = await run_hour(project, export, end, 3)
    assert [r["status"] for r in found] == ["ContinuedAsNew", "ContinuedAsNew", "Completed"]
    await run_hour(project, export, end, 6)  # the same interval again overwrites the same keys
    status, check = await project.request("POST", f"batch_exports/{export['id']}/run_test_step/", json={"step": 0})
    assert (status, check["result"]["status"]) == (200, "Passed"), check

    stored = await objects(s3, name)
    stem = f"events/{end:%Y}/{end - timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}-{end:%Y-%m-%dT%H:%M:%SZ}"
    assert set(stored) == {f"{stem}.jsonl.gz", f"{stem}-1.jsonl.gz", f"{stem}-2.jsonl.gz"}
    rows = [json.loads(line) for data in stored.values() for line in gzip.decompress(data).splitlines()]
    assert all(list(row) == POSTHOG_FILE_COLUMNS for row in rows)  # PostHog's columns, in its order
    assert {row["properties"]["n"] for row in rows} == set(range(250))  # JSON as nested objects
    uuids = [row["uuid"] for row in rows]
    sent = {
        str(r["uuid"]) for r in await project.stack.pool.fetch("SELECT uuid FROM events WHERE team_id = $1", project.id)
    }
    assert len(uuids) == 250 and set(uuids) == sent


async def test_a_large_interval_goes_up_in_parts(project: Project, s3: Any, s3_service: SeaweedS3) -> None:
    name = await bucket(s3, project)
    export = await create(project, s3_config(s3_service, name))
    now = datetime.now(UTC)
    await project.stack.pool.executemany(  # 90 events of 100 KB: about 9 MiB, two parts
        "INSERT INTO events (uuid, team_id, event, distinct_id, properties, timestamp, created_at, inserted_at) "
        "VALUES ($1, $2, 'big', 'someone', $3, $4, $4, $4)",
        [(uuid.uuid4(), project.id, {"blob": "x" * 100_000, "i": i}, now - timedelta(minutes=5)) for i in range(90)],
    )
    end = now.replace(microsecond=0) + timedelta(seconds=1)
    (run,) = await run_hour(project, export, end, 1)
    assert (run["status"], run["records_completed"]) == ("Completed", 90), run
    (data,) = (await objects(s3, name)).values()
    assert len(data) > 9_000_000 and len(data.splitlines()) == 90


async def test_user_errors_fail_the_run_at_once(project: Project, s3: Any, s3_service: SeaweedS3) -> None:
    name = await bucket(s3, project)
    await capture(project, [event("e", "someone")])
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    for broken, says in [
        (s3_config(s3_service, name, aws_secret_access_key="wrong-secret"), "SignatureDoesNotMatch"),
        (s3_config(s3_service, f"{name}-missing"), "NoSuchBucket"),
    ]:
        export = await create(project, broken)
        status, check = await project.request("POST", f"batch_exports/{export['id']}/run_test_step/", json={"step": 0})
        assert status == 200 and says in check["result"]["message"], check
        (run,) = await run_hour(project, export, end, 1)
        assert run["status"] == "Failed" and says in run["latest_error"], run
        assert "wrong-secret" not in run["latest_error"]


async def test_bad_s3_configs_are_400s(project: Project) -> None:
    base = {"bucket_name": "b-ok", "aws_access_key_id": "k", "aws_secret_access_key": "s"}
    for fields, attr in [
        ({"prefix": "{nope}/x"}, "destination__config__prefix"),
        ({"bucket_name": "Not_A_Bucket"}, "destination__config__bucket_name"),
        ({"encryption": "aws:kms"}, "destination__config"),
        ({"file_format": "CSV"}, "destination__config__file_format"),
    ]:
        body = {"name": "s3", "interval": "hour", "destination": {"type": "S3", "config": {**base, **fields}}}
        status, error = await project.request("POST", "batch_exports/", json=body)
        assert (status, error["attr"]) == (400, attr), error


async def big_events(project: Project, count: int, size: int, at: datetime) -> None:
    await project.stack.pool.executemany(
        "INSERT INTO events (uuid, team_id, event, distinct_id, properties, timestamp, created_at, inserted_at) "
        "VALUES ($1, $2, 'big', 'someone', $3, $4, $4, $4)",
        [(uuid.uuid4(), project.id, {"blob": "x" * size, "i": i}, at) for i in range(count)],
    )


async def test_max_file_size_splits_into_numbered_files_with_a_manifest(
    project: Project, s3: Any, s3_service: SeaweedS3
) -> None:
    name = await bucket(s3, project)
    export = await create(project, s3_config(s3_service, name, max_file_size_mb=1))
    now = datetime.now(UTC)
    await big_events(project, 250, 25_000, now - timedelta(minutes=5))  # about 6 MB, in three segments
    end = now.replace(microsecond=0) + timedelta(seconds=1)
    found = await run_hour(project, export, end, 3)
    assert [r["status"] for r in found] == ["ContinuedAsNew", "ContinuedAsNew", "Completed"]

    def check(stored: dict[str, bytes], limit_mb: int) -> list[str]:
        stem = f"{end - timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}-{end:%Y-%m-%dT%H:%M:%SZ}"
        manifest = json.loads(stored.pop(f"{stem}_manifest.json"))
        assert manifest["files"] == [f"{stem}{f'-{n}' if n else ''}.jsonl" for n in range(len(stored))]
        assert set(manifest["files"]) == set(stored)
        assert all(len(data) < 1.3 * limit_mb * 2**20 for data in stored.values())
        numbers = [json.loads(line)["properties"]["i"] for data in stored.values() for line in data.splitlines()]
        assert sorted(numbers) == list(range(250))  # each record once
        return list(manifest["files"])

    split = check(await objects(s3, name), 1)
    assert len(split) >= 6
    status, _ = await project.request(
        "PATCH", f"batch_exports/{export['id']}/", json={"destination": {"config": {"max_file_size_mb": 2}}}
    )
    assert status == 200
    await run_hour(project, export, end, 6)  # fewer, larger files: the extra numbered ones are removed
    fewer = check(await objects(s3, name), 2)
    assert len(fewer) < len(split)
    status, _ = await project.request(
        "PATCH", f"batch_exports/{export['id']}/", json={"destination": {"config": {"max_file_size_mb": None}}}
    )
    assert status == 200
    await run_hour(project, export, end, 9)  # one file per segment again, and no manifest
    stem = f"{end - timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}-{end:%Y-%m-%dT%H:%M:%SZ}"
    assert set(await objects(s3, name)) == {f"{stem}.jsonl", f"{stem}-1.jsonl", f"{stem}-2.jsonl"}


async def test_write_only_credentials_are_enough(project: Project, s3: Any, s3_service: SeaweedS3) -> None:
    name = await bucket(s3, project)
    writer = {"aws_access_key_id": s3_service.write_only_key_id, "aws_secret_access_key": s3_service.write_only_secret}
    export = await create(project, s3_config(s3_service, name, **writer))
    await capture(project, [event("e", f"user-{i}", n=i) for i in range(30)])
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    (run,) = await run_hour(project, export, end, 1)  # it may not look for an earlier attempt's extra files
    assert (run["status"], run["records_completed"]) == ("Completed", 30), run
    (data,) = (await objects(s3, name)).values()
    assert sorted(json.loads(line)["properties"]["n"] for line in data.splitlines()) == list(range(30))
