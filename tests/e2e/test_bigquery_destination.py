"""The BigQuery destination from the API, on bqemulator, read back with the official client: created and checked
(the checks pass, and fail with BigQuery's words and no secret), run by its schedule and a backfill, row for row
against the source with PostHog's types; a rerun changes nothing; an apply that landed is not applied again;
persons and sessions replace only with newer rows; a table PostHog created gets rows (a column it lacks added);
a column of another type fails the run."""

import asyncio
import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import bigquery
from temporalio.testing import ActivityEnvironment

from activities.export import Exporter
from contracts.workflows import ExportInputs
from entrypoints.bigquery import PROJECT, BigQueryEmulator
from tests.support.bigquery import bigquery_config, client_of, new_dataset, rows
from tests.support.helpers import (
    capture,
    create_export,
    event,
    insert_events,
    run_hour,
    runs_until,
    start_run,
    started_run,
)
from tests.support.helpers import trigger_for_last_hour as trigger
from tests.support.stack import Project


def finished(count: int) -> Any:
    return lambda rs: len(rs) == count and all(r["status"] not in ("Starting", "Running") for r in rs)


async def checks(project: Project, config: dict[str, Any]) -> list[dict[str, Any]]:
    results = []
    for step in range(2):
        status, answer = await project.request(
            "POST", "batch_exports/run_test_step_new/", json={"step": step, "destination": {"type": "BigQuery",
                                                                                             "config": config}}
        )  # fmt: skip
        assert status == 200, answer
        results.append(answer["result"])
    return results


async def test_created_checked_scheduled_backfilled_read_back_row_for_row_and_rerun_unchanged(
    project: Project, bigquery_server: BigQueryEmulator
) -> None:
    client = client_of(bigquery_server)
    dataset = new_dataset(client)
    config = bigquery_config(dataset, use_json_type=True)
    assert await checks(project, config) == [{"status": "Passed", "message": None}] * 2
    export = await create_export(
        project, {"name": "bq", "interval": "hour", "destination": {"type": "BigQuery", "config": config}}
    )
    shown = export["destination"]["config"]
    assert not {"private_key", "private_key_id"} & set(shown) and shown["client_email"] == config["client_email"]

    await capture(project, [{**event("$pageview", f"user-{i}", n=i, **{"$ip": "10.0.0.1", "$set": {"plan": "pro"}}),
                             "elements_chain": "a:nth-child=\"1\""} for i in range(20)])  # fmt: skip
    hour = await trigger(project, export)
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

    table = client.get_table(f"{PROJECT}.{dataset}.events")
    types = {field.name: field.field_type for field in table.schema}
    assert types == {"uuid": "STRING", "event": "STRING", "properties": "JSON", "elements": "STRING", "set": "JSON",
                     "set_once": "JSON", "distinct_id": "STRING", "team_id": "INTEGER", "ip": "STRING",
                     "site_url": "STRING", "timestamp": "TIMESTAMP", "bq_ingested_timestamp": "TIMESTAMP"} or types == {
        **types, "team_id": "INT64"}  # fmt: skip
    assert (table.time_partitioning.type_, table.time_partitioning.field) == ("DAY", "timestamp")

    source = await project.stack.pool.fetch(
        "SELECT uuid::text, event, properties::text, elements_chain, distinct_id, team_id, timestamp FROM events "
        "WHERE team_id = $1", project.id,
    )  # fmt: skip
    held = {row["uuid"]: row for row in rows(client, dataset)}
    assert len(held) == len(source) == 30 and earlier <= set(held)
    for want in source:
        got = held[want["uuid"]]
        properties = json.loads(want["properties"])
        assert got["properties"] == properties and got["event"] == want["event"], got
        assert got["distinct_id"] == want["distinct_id"] and got["team_id"] == project.id
        assert got["timestamp"] == want["timestamp"] and got["site_url"] == ""
        assert got["set"] == properties.get("$set") and got["set_once"] == properties.get("$set_once")
        assert got["ip"] == (properties.get("$ip") or None)
        assert json.loads(got["elements"]) == (want["elements_chain"] or "")
        assert isinstance(got["bq_ingested_timestamp"], datetime)
    assert {got["ip"] for got in held.values()} >= {"10.0.0.1"}

    before = sorted(held.values(), key=lambda r: r["uuid"])
    rerun = await run_hour(project, export, hour, 4)
    assert rerun[-1]["status"] == "Completed", rerun
    assert sorted(rows(client, dataset), key=lambda r: r["uuid"]) == before  # nothing changed, not even its time

    names = [t.table_id for t in client.list_tables(dataset)]
    assert sorted(names) == ["bx_run_marks", "events"]  # no stage left behind
    marked = {r["run_id"] for r in rows(client, dataset, "bx_run_marks")}
    assert marked == {r["id"] for r in rerun}


async def test_checks_fail_with_bigquerys_words_and_no_secret(
    project: Project, bigquery_server: BigQueryEmulator
) -> None:
    config = bigquery_config("no_such_dataset")
    (found, _) = await checks(project, config)
    assert found["status"] == "Failed" and "no_such_dataset" in found["message"], found
    assert "Not found" in found["message"] and config["private_key_id"] not in found["message"]

    elsewhere = bigquery_config(new_dataset(client_of(bigquery_server)), token_uri="https://tokens.example.com/token")
    (refused, _) = await checks(project, elsewhere)
    assert refused["status"] == "Failed" and "token_uri" in refused["message"], refused
    assert elsewhere["private_key_id"] not in refused["message"]


async def test_bad_configs_are_400s_naming_the_field(project: Project) -> None:
    good = bigquery_config("d")
    for field, value in [("private_key", "not a key"), ("client_email", "nobody"), ("project_id", "A B"),
                         ("token_uri", "http://oauth2.googleapis.com/token"), ("table_id", "bx_run_marks"),
                         ("dataset_id", "a.b")]:  # fmt: skip
        body = {"name": "bq", "interval": "hour", "destination": {"type": "BigQuery", "config": {**good, field: value}}}
        status, answer = await project.request("POST", "batch_exports/", json=body)
        assert status == 400 and answer["attr"] == f"destination__config__{field}", (field, answer)
        assert good["private_key"] not in json.dumps(answer)
    missing = {k: v for k, v in good.items() if k != "private_key"}
    body = {"name": "bq", "interval": "hour", "destination": {"type": "BigQuery", "config": missing}}
    status, answer = await project.request("POST", "batch_exports/", json=body)
    assert (status, answer["attr"], answer["code"]) == (400, "destination__config__private_key", "required")


async def test_persons_and_sessions_replace_only_with_newer_rows(
    project: Project, bigquery_server: BigQueryEmulator
) -> None:
    client = client_of(bigquery_server)
    dataset = new_dataset(client)
    exports = {}
    for model in ("persons", "sessions"):
        config = bigquery_config(dataset, model, use_json_type=True)
        body = {
            "name": model,
            "interval": "hour",
            "model": model,
            "destination": {"type": "BigQuery", "config": config},
        }
        exports[model] = await create_export(project, body)
    session = "0193a1b2-c3d4-7e5f-8a6b-000000000001"
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    await capture(project, [{**event("signup", "ada", **{"$session_id": session}), "$set": {"plan": "free"}},
                            {**event("signup", "grace"), "$set": {"plan": "free"}}])  # fmt: skip
    await asyncio.sleep(1.1)
    middle = datetime.now(UTC).replace(microsecond=0)
    for export in exports.values():
        await start_run(project.stack, export, start=first, end=middle)
        await runs_until(project, export["id"], finished(1), within=60)
    started = {r["session_id"]: r for r in rows(client, dataset, "sessions")}[session]
    await capture(project, [{**event("upgrade", "ada", **{"$session_id": session}), "$set": {"plan": "pro"}}])
    await asyncio.sleep(1.1)
    last = datetime.now(UTC).replace(microsecond=0)
    for export in exports.values():
        await start_run(project.stack, export, start=middle, end=last)
        found = await runs_until(project, export["id"], finished(2), within=60)
        assert [r["status"] for r in found] == ["Completed", "Completed"], found

    persons = {row["distinct_id"]: row for row in rows(client, dataset, "persons")}
    assert len(persons) == 2 and {row["team_id"] for row in persons.values()} == {project.id}
    assert persons["ada"]["properties"]["plan"] == "pro" and persons["grace"]["properties"]["plan"] == "free"
    assert isinstance(persons["ada"]["person_version"], int) and isinstance(persons["ada"]["is_deleted"], bool)
    (ended,) = [r for r in rows(client, dataset, "sessions") if r["session_id"] == session]
    assert ended["end_timestamp"] > started["end_timestamp"] and ended["team_id"] == project.id
    assert isinstance(ended["urls"], list) and isinstance(ended["pageview_count"], int)

    # An older row never replaces a newer one: the first interval again leaves each row as it is.
    before = (sorted(rows(client, dataset, "persons"), key=str), rows(client, dataset, "sessions"))
    for export in exports.values():
        await start_run(project.stack, export, start=first, end=middle)
        await runs_until(project, export["id"], finished(3), within=60)
    assert (sorted(rows(client, dataset, "persons"), key=str), rows(client, dataset, "sessions")) == before


async def test_a_posthog_table_gets_rows_a_missing_column_added_and_a_type_conflict_named(
    project: Project, bigquery_server: BigQueryEmulator
) -> None:
    client = client_of(bigquery_server)
    dataset = new_dataset(client)
    posthogs = [
        bigquery.SchemaField(name, kind)
        for name, kind in [
            ("uuid", "STRING"),
            ("event", "STRING"),
            ("properties", "STRING"),
            ("elements", "STRING"),
            ("set", "STRING"),
            ("set_once", "STRING"),
            ("distinct_id", "STRING"),
            ("team_id", "INT64"),
            ("ip", "STRING"),
            ("site_url", "STRING"),
            ("timestamp", "TIMESTAMP"),
        ]
    ]  # fmt: skip  (an older export's: no bq_ingested_timestamp)
    client.create_table(bigquery.Table(f"{PROJECT}.{dataset}.events", schema=posthogs))
    conflicting = [*posthogs[:7], bigquery.SchemaField("team_id", "STRING"), *posthogs[8:]]
    client.create_table(bigquery.Table(f"{PROJECT}.{dataset}.other", schema=conflicting))
    await insert_events(project.stack, project.id, [datetime.now(UTC) - timedelta(minutes=30 - i) for i in range(5)])
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)

    export = await create_export(project, {"name": "ph", "interval": "hour", "destination": {
        "type": "BigQuery", "config": bigquery_config(dataset, use_json_type=True)}})  # fmt: skip
    (run,) = await run_hour(project, export, end, 1)
    assert run["status"] == "Completed", run
    held = rows(client, dataset)
    assert len(held) == 5 and all(isinstance(r["properties"], str) for r in held)  # JSON as the table keeps it
    assert json.loads(held[0]["properties"]) is not None and held[0]["bq_ingested_timestamp"] is not None
    assert "bq_ingested_timestamp" in {f.name for f in client.get_table(f"{PROJECT}.{dataset}.events").schema}

    other = await create_export(project, {"name": "conflict", "interval": "hour", "destination": {
        "type": "BigQuery", "config": bigquery_config(dataset, "other")}})  # fmt: skip
    (failed,) = await run_hour(project, other, end, 1)
    assert failed["status"] == "Failed", failed
    assert all(w in failed["latest_error"] for w in ("team_id", "STRING", "INT64")), failed
    assert rows(client, dataset, "other") == []


async def test_an_apply_that_landed_is_not_applied_again_and_a_dead_attempts_stage_is_dropped(
    project: Project, bigquery_server: BigQueryEmulator
) -> None:
    """An attempt whose apply landed before its worker was lost, and the attempt Temporal retries: the second
    finds the run's mark (as many records) and applies nothing; a stage the lost attempt left is dropped."""
    client = client_of(bigquery_server)
    dataset = new_dataset(client)
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    start = end - timedelta(hours=1)
    sent = await insert_events(project.stack, project.id, [start + timedelta(minutes=i) for i in range(30)])
    export = await create_export(project, {"name": "landed", "interval": "hour", "destination": {
        "type": "BigQuery", "config": bigquery_config(dataset)}})  # fmt: skip
    run_id = await started_run(project.stack.pool, batch_export_id=uuid.UUID(export["id"]),
                              workflow_id=f"{export['id']}-landed", workflow_run_id=str(uuid.uuid4()),
                              data_interval_start=start, data_interval_end=end, backfill_id=None)  # fmt: skip
    exporter = Exporter(project.stack.runtime)

    async def attempt(number: int) -> None:
        environment = ActivityEnvironment()
        environment.info = dataclasses.replace(environment.info, attempt=number)
        result = await environment.run(exporter.export_interval, ExportInputs(str(run_id), export["id"], start, end))
        assert result.records_completed == 30

    await attempt(1)
    marks = rows(client, dataset, "bx_run_marks")
    assert [(m["run_id"], m["records"]) for m in marks] == [(str(run_id), 30)]
    held = sorted(rows(client, dataset), key=lambda r: r["uuid"])
    stale = f"{PROJECT}.{dataset}.bx_stage_{run_id.hex}_1"  # what a lost first attempt would leave
    client.create_table(bigquery.Table(stale, schema=[bigquery.SchemaField("uuid", "STRING")]))

    await attempt(2)
    assert rows(client, dataset, "bx_run_marks") == marks  # no second apply
    assert sorted(rows(client, dataset), key=lambda r: r["uuid"]) == held and {r["uuid"] for r in held} == sent
    assert sorted(t.table_id for t in client.list_tables(dataset)) == ["bx_run_marks", "events"]
