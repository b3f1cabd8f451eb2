"""The AzureBlob destination against Azurite, read back with the Azure SDK: created, checked, run by the schedule
and by a backfill, S3's key layout and types; the provider's own words for what only the user can fix."""

import asyncio
import io
import uuid
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from entrypoints.azurite import ACCOUNT, KEY, Azurite
from tests.support.destinations import azure_container, blobs
from tests.support.helpers import capture, create_export, event, insert_events, runs_until, trigger_for_last_hour
from tests.support.stack import Project


def finished(count: int) -> Any:
    return lambda rs: len(rs) == count and all(r["status"] not in ("Starting", "Running") for r in rs)


async def test_created_checked_run_by_its_schedule_and_a_backfill_then_read_back(
    project: Project, azurite: Azurite
) -> None:
    container = await azure_container(azurite, project)
    config = {"container_name": container, "prefix": "{table}/{year}", "connection_string": azurite.connection_string,
              "file_format": "Parquet"}  # fmt: skip
    export = await create_export(project, {"name": "azure", "interval": "hour",
                                           "destination": {"type": "AzureBlob", "config": config}})  # fmt: skip
    assert "connection_string" not in export["destination"]["config"]
    status, listed = await project.request("GET", "batch_exports/test/", params={"destination": "AzureBlob"})
    for step in range(len(listed["steps"])):
        status, check = await project.request(
            "POST", f"batch_exports/{export['id']}/run_test_step/", json={"step": step}
        )
        assert (status, check["result"]) == (200, {"status": "Passed", "message": None}), (step, check)

    await capture(project, [event("$pageview", f"user-{i}", n=i) for i in range(20)])
    hour = await trigger_for_last_hour(project, export)
    await runs_until(project, export["id"], finished(1), within=60)
    await insert_events(project.stack, project.id, [hour - timedelta(hours=2, minutes=-i) for i in range(5)])
    status, created = await project.request(
        "POST", f"batch_exports/{export['id']}/backfills/",
        json={"start_at": (hour - timedelta(hours=2)).isoformat(), "end_at": (hour - timedelta(hours=1)).isoformat()},
    )  # fmt: skip
    assert status == 201, created
    found = await runs_until(project, export["id"], finished(2), within=60)
    assert [r["status"] for r in found] == ["Completed", "Completed"], found

    stored = await blobs(azurite, container)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    names = {f"events/{datetime.fromisoformat(r['data_interval_end']):%Y}/"
             f"{datetime.fromisoformat(r['data_interval_start']):{stamp}}-"
             f"{datetime.fromisoformat(r['data_interval_end']):{stamp}}.parquet" for r in found}  # fmt: skip
    assert set(stored) == names
    tables = [pq.read_table(io.BytesIO(data)) for data in stored.values()]
    uuids = [u for table in tables for u in table.column("uuid").to_pylist()]
    sent = {
        str(r["uuid"]) for r in await project.stack.pool.fetch("SELECT uuid FROM events WHERE team_id = $1", project.id)
    }
    assert len(uuids) == len(set(uuids)) == 25 and set(uuids) == sent
    schema = tables[0].schema
    assert schema.names == ["uuid", "timestamp", "_inserted_at", "created_at", "event", "properties", "distinct_id",
                            "elements_chain", "person_properties", "person_id"]  # PostHog's, in its order  # fmt: skip
    assert schema.field("uuid").type == pa.string() and schema.field("timestamp").type == pa.timestamp("us", tz="UTC")


async def test_account_name_and_key_work_as_a_connection_string_does(project: Project, azurite: Azurite) -> None:
    container = await azure_container(azurite, project)
    config = {"container_name": container, "account_name": ACCOUNT, "account_key": KEY,
              "endpoint_url": azurite.endpoint_url, "compression": "gzip"}  # fmt: skip
    export = await create_export(project, {"name": "azure", "interval": "hour",
                                           "destination": {"type": "AzureBlob", "config": config}})  # fmt: skip
    assert "account_key" not in export["destination"]["config"]
    await capture(project, [event("e", f"user-{i}") for i in range(3)])
    await trigger_for_last_hour(project, export)
    (run,) = await runs_until(project, export["id"], finished(1), within=60)
    assert (run["status"], run["records_completed"]) == ("Completed", 3), run
    (name,) = await blobs(azurite, container)
    assert name.endswith(".jsonl.gz")


async def test_what_only_the_user_can_fix_fails_the_check_and_the_run_in_the_services_words(
    project: Project, azurite: Azurite
) -> None:
    container = await azure_container(azurite, project)
    wrong_key = "bm90IHRoZSBhY2NvdW50IGtleQ=="
    await capture(project, [event("e", "someone")])
    await asyncio.sleep(1.1)
    for config, says in [
        ({"container_name": f"missing-{uuid.uuid4().hex[:6]}", "connection_string": azurite.connection_string},
         "ContainerNotFound"),
        ({"container_name": container, "account_name": ACCOUNT, "account_key": wrong_key,
          "endpoint_url": azurite.endpoint_url}, "AuthorizationFailure"),
    ]:  # fmt: skip
        export = await create_export(project, {"name": "azure", "interval": "hour",
                                               "destination": {"type": "AzureBlob", "config": config}})  # fmt: skip
        status, check = await project.request("POST", f"batch_exports/{export['id']}/run_test_step/", json={"step": 0})
        assert status == 200 and check["result"]["status"] == "Failed" and says in check["result"]["message"], check
        await trigger_for_last_hour(project, export)
        (run,) = await runs_until(project, export["id"], finished(1), within=60)
        assert run["status"] == "Failed" and says in run["latest_error"], run
        assert wrong_key not in run["latest_error"] + str(check)


async def test_bad_azure_configs_are_400s_that_name_the_field(project: Project) -> None:
    connection = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net"
    for config, attr in [
        ({"container_name": "exports"}, "destination__config"),
        ({"container_name": "Exports", "connection_string": connection}, "destination__config__container_name"),
        ({"container_name": "exports", "connection_string": connection, "prefix": "{nope}"},
         "destination__config__prefix"),
        ({"container_name": "exports", "connection_string": "not one"}, "destination__config__connection_string"),
        ({"container_name": "exports", "connection_string": connection, "account_key": "a2V5"}, "destination__config"),
        ({"container_name": "exports", "connection_string": connection, "file_format": "JSONLines",
          "compression": "snappy"}, "destination__config"),
    ]:  # fmt: skip
        body = {"name": "azure", "interval": "hour", "destination": {"type": "AzureBlob", "config": config}}
        status, error = await project.request("POST", "batch_exports/", json=body)
        assert (status, error["attr"]) == (400, attr), (config, error)
