"""The service under hostile input: every write-scoped key, project token and config string is an attacker's.

Credentials stay with the destination they were given for; destinations reach only where they may (refused
before any connection is made); one request cannot take the service down; inputs that could only fail
inside are 4xx answers, without a traceback in the log.
"""

import asyncio
import dataclasses
import json
import logging
import time
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import aiohttp
import asyncpg
import psutil
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.export import Exporter
from batch_exports.store import db, event_store
from batch_exports.store.event_store import CapturedEvent
from connectors.destinations import Context, parse_config, run_step
from connectors.sources.reading import SourceDatabase
from contracts.workflows import ExportInputs
from entrypoints.embedded import LOOPBACK, free_port
from tests.support.destinations import postgres_database, s3_config
from tests.support.helpers import another_gateway, capture, create_export, event, export_file_now, run_hour, started_run
from tests.support.hostile import NOOP, destination, write_only_key
from tests.support.listeners import listening, loopback_only, redirecting, resolving
from tests.support.receiver import running_receiver
from tests.support.seaweed import SeaweedS3
from tests.support.stack import API_KEY, Project

# Credentials stay with the destination they were given for.


async def test_a_write_key_cannot_send_a_stored_password_elsewhere(project: Project) -> None:
    config, _ = await postgres_database(project)
    export = await create_export(project, destination("Postgres", config))
    path = f"batch_exports/{export['id']}/"
    writer = await write_only_key(project)
    async with listening() as attacker:
        moved = {"host": attacker.host, "port": attacker.port}
        for change in ({"host": "localhost"}, {"port": attacker.port}, {"database": "postgres"}, moved):
            for method in ("PATCH", "PUT"):  # a PUT names the required fields as well
                full = {"name": "pg", "interval": "hour"} if method == "PUT" else {}
                body = {**full, "destination": {"config": change}}
                status, body = await project.request(method, path, key=writer, json=body)
                assert (status, body["attr"]) == (400, "destination__config__password"), (method, change, body)
                assert "'password', 'user'" in body["detail"]
        status, body = await project.request(
            "POST", f"{path}run_test_step/", key=writer, json={"step": 0, "destination": {"config": moved}}
        )
        assert (status, body["attr"]) == (400, "destination__config__password"), body
        status, body = await project.request(
            "POST", f"{path}run_test_step/", key=writer, json={"step": 0, "destination": {"type": "HTTP"}}
        )
        assert status == 400 and body["detail"] == (
            "Cannot change destination type from 'Postgres' to 'HTTP'. Delete this batch export and create a new "
            "one with the new destination type."
        )
        assert attacker.connections == 0  # nothing went there, not even a connection

    # Fields that do not say where the secrets go keep them; sending the secrets again allows a move.
    renamed = {"destination": {"config": {"table_name": "t2"}}}
    status, body = await project.request("PATCH", path, key=writer, json=renamed)
    assert status == 200, body
    status, body = await project.request("POST", f"{path}run_test_step/", key=writer, json={"step": 1})
    assert body["result"] == {"status": "Passed", "message": None}, body
    again = {"host": "localhost", "user": config["user"], "password": config["password"]}
    status, body = await project.request(
        "POST", f"{path}run_test_step/", key=writer, json={"step": 1, "destination": {"config": again}}
    )
    assert body["result"] == {"status": "Passed", "message": None}, body
    status, body = await project.request("PATCH", path, key=writer, json={"destination": {"config": again}})
    assert status == 200 and body["destination"]["config"]["host"] == "localhost", body


async def test_a_write_key_cannot_send_a_stored_token_or_key_elsewhere(
    project: Project, s3: Any, s3_service: SeaweedS3
) -> None:
    writer = await write_only_key(project)
    async with running_receiver(f"phc_{uuid.uuid4().hex}") as receiver, listening() as attacker:
        http = await create_export(project, destination("HTTP", {"url": receiver.url, "token": receiver.token}))
        s3_export = await create_export(project, destination("S3Compatible", s3_config(s3_service, "somebucket")))
        evil = f"http://{attacker.host}:{attacker.port}/"
        for export, change, secret in [
            (http, {"url": evil}, "token"),
            (s3_export, {"endpoint_url": evil}, "aws_access_key_id"),
            (s3_export, {"kms_key_id": "arn:aws:kms:us-east-1:1:key/theirs"}, "aws_access_key_id"),
        ]:
            status, body = await project.request(
                "PATCH", f"batch_exports/{export['id']}/", key=writer, json={"destination": {"config": change}}
            )
            assert (status, body["attr"]) == (400, f"destination__config__{secret}"), (change, body)
            status, body = await project.request(
                "POST", f"batch_exports/{export['id']}/run_test_step/", key=writer,
                json={"step": 0, "destination": {"config": change}},
            )  # fmt: skip
            assert (status, body["attr"]) == (400, f"destination__config__{secret}"), (change, body)
        assert attacker.connections == 0


async def test_a_write_key_reads_what_it_may_change(project: Project) -> None:
    """`batch_export:write` implies `batch_export:read` (PostHog's rule): every route agrees."""
    writer = await write_only_key(project)
    export = await create_export(project, NOOP)
    for path in ("batch_exports/", f"batch_exports/{export['id']}/", f"batch_exports/{export['id']}/runs/",
                 f"batch_exports/{export['id']}/logs/", f"batch_exports/{export['id']}/backfills/",
                 "batch_exports/test/?destination=File"):  # fmt: skip
        status, body = await project.request("GET", path, key=writer)
        assert status == 200, (path, body)
    status, body = await project.request("PATCH", f"batch_exports/{export['id']}/", key=writer, json={})
    assert status == 200 and body["id"] == export["id"]


async def test_the_workers_own_postgres_password_never_reaches_a_destination(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    config, _ = await postgres_database(project)
    without = {key: value for key, value in config.items() if key != "password"}
    step = {"step": 0, "destination": {"type": "Postgres", "config": without}}
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:*:*:{config['password']}\n")
    passfile.chmod(0o600)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".pgpass").write_bytes(passfile.read_bytes())
    (home / ".pgpass").chmod(0o600)
    for variables in ({"PGPASSWORD": config["password"]}, {"PGPASSFILE": str(passfile)}, {"HOME": str(home)}):
        with monkeypatch.context() as env:
            for name, value in variables.items():
                env.setenv(name, value)
            status, body = await project.request("POST", "batch_exports/run_test_step_new/", json=step)
        assert status == 200 and body["result"]["status"] == "Failed", (variables, body)
        assert "password authentication failed" in body["result"]["message"], body


async def test_no_secret_value_in_any_message(project: Project, caplog: pytest.LogCaptureFixture) -> None:
    config, _ = await postgres_database(project)
    config = {**config, "password": f"wrong-{uuid.uuid4().hex}"}
    secrets = [config["user"], config["password"]]
    caplog.set_level(logging.DEBUG)
    export = await create_export(project, destination("Postgres", config))
    _, check = await project.request("POST", f"batch_exports/{export['id']}/run_test_step/", json={"step": 0})
    assert check["result"]["status"] == "Failed" and "[redacted]" in check["result"]["message"], check
    await capture(project, [event("e", "someone")])
    (run,) = await run_hour(project, export, datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1), 1)
    assert run["status"] == "Failed" and "password authentication failed" in run["latest_error"], run
    shown = [check, run]
    for path in (f"batch_exports/{export['id']}/logs/", f"batch_exports/{export['id']}/runs/{run['id']}/logs/",
                 f"batch_exports/{export['id']}/"):  # fmt: skip
        shown.append((await project.request("GET", path))[1])
    history = await project.stack.client.get_workflow_handle(run["workflow_id"]).fetch_history()
    formatter = logging.Formatter()
    logged = [formatter.format(record) for record in caplog.records]
    seen = json.dumps(shown) + str(history.to_json()) + "\n".join(logged)
    assert [secret for secret in secrets if secret in seen] == []
    assert "password authentication failed" in str(history.to_json())  # the failure itself is there


# Destinations reach only where they may.


INTERNAL_HOSTS = [
    "localhost", "127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "::127.0.0.1", "::ffff:127.0.0.1",
    "64:ff9b::7f00:1", "64:ff9b::a01:203", "2002:7f00:1::", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "fe80::1",
    "fc00::1", "ff02::1", "224.0.0.1", "0.0.0.0", "/var/run/postgresql", "/tmp", "@abstract", "127.1",
    "0x7f.0.0.1", "2130706433", "a,b", "does-not-resolve.invalid",
]  # fmt: skip


async def refused_at_save(project: Project, postgres: dict[str, Any]) -> None:
    """Every spelling, through a gateway that allows only internet destinations: a 400 naming the field."""
    cases = [(destination("Postgres", {**postgres, "host": host}), "host") for host in INTERNAL_HOSTS]
    for literal in ("[::127.0.0.1]", "[64:ff9b::7f00:1]", "[::ffff:7f00:1]", "2130706433", "127.1", "localhost"):
        cases.append((destination("HTTP", {"url": f"http://{literal}:8000/batch/", "token": "t"}), "url"))
        s3 = {"bucket_name": "bucket", "aws_access_key_id": "k", "aws_secret_access_key": "s",
              "endpoint_url": f"http://{literal}:9000"}  # fmt: skip
        cases.append((destination("S3Compatible", s3), "endpoint_url"))
    async with (
        another_gateway(project.stack, allow_private_destinations=False) as gateway,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http,
    ):
        for body, field in cases:
            async with http.post(f"{gateway}/api/projects/{project.id}/batch_exports/", json=body) as response:
                error = await response.json()
            assert (response.status, error["attr"]) == (400, f"destination__config__{field}"), (body, error)


async def test_every_spelling_of_an_internal_host_is_refused(project: Project) -> None:
    postgres = {"database": "d", "table_name": "t", "user": "u", "password": "p"}
    with loopback_only() as tripwire:  # (the name that does not resolve is answered here, not by a DNS server)
        await refused_at_save(project, postgres)
        # Socket paths and names that do not resolve are refused even where private destinations are allowed.
        for host in ("/var/run/postgresql", "/tmp", "@abstract", "does-not-resolve.invalid"):
            body = destination("Postgres", {**postgres, "host": host})
            status, error = await project.request("POST", "batch_exports/", json=body)
            assert (status, error["attr"]) == (400, "destination__config__host"), (host, error)
    assert tripwire.blocked == []
    assert set(tripwire.lookups) == {"does-not-resolve.invalid"}
    socket_step = {"step": 0, "destination": {"type": "Postgres", "config": {**postgres, "host": "/tmp"}}}
    status, body = await project.request("POST", "batch_exports/run_test_step_new/", json=socket_step)
    assert status == 200 and body["result"]["status"] == "Failed" and "not a host name" in body["result"]["message"]


async def test_the_address_checked_is_the_address_connected_to(project: Project, s3_service: SeaweedS3) -> None:
    """A name that resolves to an allowed address for the check, then to an internal one (DNS rebinding): the
    client connects only to an address it checked, so the internal one is refused, and nothing reaches it."""
    stack = project.stack
    context = Context(files_root=stack.settings.exports_root / str(project.id), allow_private=False)
    async with listening() as internal:
        configs: dict[str, dict[str, Any]] = {
            "Postgres": {"host": "rebind.test", "port": internal.port, "database": "d", "table_name": "t",
                         "user": "u", "password": "p"},
            "HTTP": {"url": f"http://rebind.test:{internal.port}/batch/", "token": "t"},
            "S3Compatible": s3_config(s3_service, "bucket", endpoint_url=f"http://rebind.test:{internal.port}"),
        }  # fmt: skip
        for kind, raw in configs.items():
            config = parse_config(kind, raw)
            with loopback_only() as tripwire, resolving("rebind.test", first="93.184.215.14", then=LOOPBACK) as dns:
                problem = await run_step(kind, config, context, 0)
            assert problem is not None, kind
            # The check before connecting saw the first answer; the connection's own lookup saw loopback, and
            # was refused there: nothing reached the internal listener, nothing left this machine.
            assert dns.lookups >= 2 and tripwire.blocked == [], (kind, dns.lookups, tripwire.blocked)
            assert internal.connections == 0, (kind, problem)


async def test_redirects_are_not_followed(project: Project, s3_service: SeaweedS3) -> None:
    async with listening() as elsewhere:
        target = f"http://{elsewhere.host}:{elsewhere.port}/"
        async with redirecting(307, target + "batch/") as redirector:
            http = {"type": "HTTP", "config": {"url": f"{redirector}/batch/", "token": "phc_secret_token"}}
            status, body = await project.request(
                "POST", "batch_exports/run_test_step_new/", json={"step": 0, "destination": http}
            )
            assert status == 200, body
            assert body["result"]["status"] == "Failed" and "redirect" in body["result"]["message"], body
            s3 = {"type": "S3Compatible", "config": s3_config(s3_service, "bucket", endpoint_url=redirector)}
            _, body = await project.request(
                "POST", "batch_exports/run_test_step_new/", json={"step": 0, "destination": s3}
            )
            assert body["result"]["status"] == "Failed", body
        assert elsewhere.connections == 0 and bytes(elsewhere.received) == b""


async def test_the_services_own_databases_are_never_a_destination(project: Project) -> None:
    stack = project.stack
    url = urlparse(stack.settings.database_url)
    own = {"host": url.hostname, "port": url.port, "database": url.path.lstrip("/"), "table_name": "t",
           "user": "postgres", "password": url.password}  # fmt: skip
    for host in (url.hostname, "localhost"):
        body = destination("Postgres", {**own, "host": host})
        status, error = await project.request("POST", "batch_exports/", json=body)
        assert (status, error["attr"]) == (400, "destination__config__host"), error
        assert "database of this service" in error["detail"]
    step = {"step": 0, "destination": {"type": "Postgres", "config": own}}
    status, body = await project.request("POST", "batch_exports/run_test_step_new/", json=step)
    assert body["result"]["status"] == "Failed" and "database of this service" in body["result"]["message"]
    # A database holding this service's tables under another name is refused once connected, before anything.
    config, dsn = await postgres_database(project)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE personal_api_keys (secure_value text)")
    finally:
        await conn.close()
    step = {"step": 1, "destination": {"type": "Postgres", "config": config}}
    status, body = await project.request("POST", "batch_exports/run_test_step_new/", json=step)
    assert body["result"]["status"] == "Failed" and "database of this service" in body["result"]["message"], body


async def test_the_embedded_postgres_requires_a_password(project: Project) -> None:
    url = urlparse(project.stack.settings.database_url)
    assert url.password
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(host=url.hostname, port=url.port, user="postgres", password="", database="postgres")


async def test_each_project_writes_under_its_own_directory(project: Project) -> None:
    other = await project.stack.new_project()
    await capture(project, [event("mine", "a")])
    await capture(other, [event("theirs", "b")])
    mine, _ = await export_file_now(project, "shared")
    theirs, _ = await export_file_now(other, "shared")
    assert mine.parent != theirs.parent
    assert [json.loads(line)["event"] for line in mine.read_text().splitlines()] == ["mine"]
    assert [json.loads(line)["event"] for line in theirs.read_text().splitlines()] == ["theirs"]
    for path in ("x" * 256, "ok/" + "y" * 300, "tab\there", "bell\x07"):
        status, error = await project.request("POST", "batch_exports/", json=destination("File", {"path": path}))
        assert (status, error["attr"]) == (400, "destination__config__path"), (path, error)
    status, error = await project.request("POST", "batch_exports/", json=destination("File", {"path": "a\u0000b"}))
    assert status == 400 and "NUL" in error["detail"], error


# One request cannot take the service down.


async def test_a_batch_of_100000_events_is_stored_whole_while_others_capture(project: Project) -> None:
    other = await project.stack.new_project()
    batch = [{"event": "e", "distinct_id": f"user-{i}", "properties": {"i": i}} for i in range(100_000)]
    body = json.dumps({"api_key": project.token, "batch": batch}).encode()
    assert len(body) < project.stack.settings.max_body_mb * 2**20

    async def others() -> list[int]:
        answers = []
        for i in range(10):
            status, _ = await other.request(
                "POST", "/batch/", key=None, json={"api_key": other.token, "batch": [event("small", f"o-{i}")]}
            )
            answers.append(status)
            await asyncio.sleep(0.2)
        return answers

    (status, answer), small = await asyncio.gather(
        project.request("POST", "/batch/", key=None, data=body, headers={"Content-Type": "application/json"}),
        others(),
    )
    assert status == 200, answer
    assert small == [200] * 10
    pool = project.stack.pool
    assert await pool.fetchval("SELECT count(*) FROM events WHERE team_id = $1", project.id) == 100_000
    assert await pool.fetchval("SELECT count(*) FROM person_distinct_ids WHERE team_id = $1", project.id) == 100_000


async def test_capture_plans_each_statement_for_its_batch(project: Project) -> None:
    """A long-lived connection never settles on one generic plan made from a small table's statistics: the
    plan PostgreSQL picks after a few runs scanned `persons` per row once it had grown (a 100,000-event batch
    of new users took minutes in a long test session, seconds alone)."""
    pool = await db.create_pool(project.stack.settings.database_url, min_size=1, max_size=1)
    try:
        for k in range(10):
            batch = [CapturedEvent(uuid.uuid4(), "e", f"plan-{k}-{i}", {}, datetime.now(UTC)) for i in range(3)]
            await event_store.write(pool, project.id, batch)
            if k == 4:
                await pool.execute("ANALYZE persons; ANALYZE person_distinct_ids")
        async with pool.acquire() as conn:
            runs = await conn.fetch(  # (a statement without parameters has only the one plan)
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE cardinality(parameter_types) > 0"
            )
    finally:
        await pool.close()
    assert sum(row["custom_plans"] for row in runs) >= 10, runs  # the capture's statements ran on this connection
    assert sum(row["generic_plans"] for row in runs) == 0, runs


async def test_concurrent_overlapping_batches_make_one_person_per_distinct_id(project: Project) -> None:
    async def post(seed: int) -> int:
        batch = [{"event": "e", "distinct_id": f"user-{(seed * 7 + i) % 60}", "$set": {"seen": seed}}
                 for i in range(200)]  # fmt: skip
        status, _ = await project.request("POST", "/batch/", key=None, json={"api_key": project.token, "batch": batch})
        return status

    assert await asyncio.gather(*(post(seed) for seed in range(8))) == [200] * 8
    pool = project.stack.pool
    assert await pool.fetchval("SELECT count(*) FROM person_distinct_ids WHERE team_id = $1", project.id) == 60
    assert await pool.fetchval("SELECT count(*) FROM persons WHERE team_id = $1", project.id) == 60
    assert await pool.fetchval("SELECT count(*) FROM events WHERE team_id = $1", project.id) == 1600


def gzip_bomb(inflated: int) -> bytes:
    """A gzip stream of `inflated` zero bytes (about a thousandth of that compressed)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(2**20)
    chunks = [deflater.compress(zeros) for _ in range(inflated // len(zeros))]
    return b"".join(chunks) + deflater.flush()


async def test_decompression_is_bounded_across_requests(project: Project) -> None:
    bomb = await asyncio.to_thread(gzip_bomb, 2**30)
    assert len(bomb) < 2 * 2**20
    process = psutil.Process()
    before, peak = process.memory_info().rss, 0

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    gzipped = {"Content-Encoding": "gzip"}
    try:  # 16 at once (about 1 GiB more on the gateway when aiohttp inflated them), then 4 bare (PostHog's gzip-js)
        statuses = await asyncio.gather(
            *(project.request("POST", "/batch/", key=None, data=bomb, headers=gzipped) for _ in range(16))
        )
        statuses += await asyncio.gather(*(project.request("POST", "/batch/", key=None, data=bomb) for _ in range(4)))
    finally:
        sampler.cancel()
    assert [status for status, _ in statuses] == [413] * 20, statuses[0]
    growth = (peak - before) / 2**20
    assert growth < 300, f"{growth:.0f} MiB more while 20 bombs were refused"


async def test_an_s3_prefix_takes_bare_fields_only(project: Project) -> None:
    for prefix in ("{year:>30000000}", "{year!r}", "{year[0]}", "{0}", "{}", "{year:{month}}", "x" * 501):
        config = {"bucket_name": "bucket", "aws_access_key_id": "k", "aws_secret_access_key": "s", "prefix": prefix}
        status, error = await project.request("POST", "batch_exports/", json=destination("AwsS3", config))
        assert (status, error["attr"]) == (400, "destination__config__prefix"), (prefix, error)


async def test_filters_and_queries_are_bounded(project: Project) -> None:
    max_filters, max_length = 100, 2000  # the settings' defaults, which the tests keep
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"filters": [{"key": "k", "value": "v"}] * (max_filters + 1)}, "filters",
         "BATCH_EXPORTS_MAX_FILTERS"),
        ({"filters": [{"key": "k" * (max_length + 1), "value": "v"}]}, "filters__0__key",
         "BATCH_EXPORTS_MAX_FILTER_LENGTH"),
        ({"filters": [{"key": "k", "value": ["v" * 1000] * 3}]}, "filters__0__value",
         "BATCH_EXPORTS_MAX_FILTER_LENGTH"),
        ({"filters": [{"type": "hogql", "key": "+".join(["1"] * 999)}]}, "filters__0",
         "BATCH_EXPORTS_MAX_EXPRESSION_DEPTH"),
        ({"hogql_query": "SELECT " + "+".join(["event"] * 3000) + " AS x FROM events"}, "hogql_query", "longer than"),
        ({"hogql_query": "SELECT " + "+".join(["event"] * 100) + " AS x FROM events"}, "hogql_query",
         "BATCH_EXPORTS_MAX_EXPRESSION_DEPTH"),
        ({"filters": [{"key": "k", "value": r"^(.*)(.*)(.*)\3\2\1$", "operator": "regex"}]}, "filters__0__value",
         "back references"),
        ({"filters": [{"key": "k", "value": "(?=a)b", "operator": "not_regex"}]}, "filters__0__value", "lookaround"),
    ]  # fmt: skip
    for fields, attr, words in cases:
        status, error = await project.request("POST", "batch_exports/", json={**NOOP, **fields})
        assert (status, error["attr"]) == (400, attr), (attr, error)
        assert words in error["detail"], error


async def test_heavy_validation_leaves_health_responsive(project: Project) -> None:
    def heavy(request: int) -> dict[str, Any]:  # every filter different: no parse is done twice
        filters = [
            {"type": "hogql", "key": " AND ".join(f"properties.p{request}_{f}_{i} = 'v{i}'" for i in range(40))}
            for f in range(100)  # BATCH_EXPORTS_MAX_FILTERS
        ]
        return {**NOOP, "filters": filters}

    latencies: list[float] = []

    async def health() -> None:
        while True:
            started = time.perf_counter()
            async with project.stack.http.get(project.stack.base_url + "/_health") as response:
                await response.read()
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)

    poller = asyncio.create_task(health())
    try:
        answers = await asyncio.gather(*(project.request("POST", "batch_exports/", json=heavy(r)) for r in range(6)))
    finally:
        poller.cancel()
    assert [status for status, _ in answers] == [201] * 6, answers[0]
    assert latencies and max(latencies) < 3, f"/_health took up to {max(latencies):.1f} s"


async def test_a_backfill_larger_than_the_limit_is_refused(project: Project) -> None:
    export = await create_export(project, {**NOOP, "interval": "every 5 minutes"})
    body = {"start_at": "1970-01-01T00:00:00Z", "end_at": datetime.now(UTC).replace(microsecond=0).isoformat()}
    status, error = await project.request("POST", f"batch_exports/{export['id']}/backfills/", json=body)
    assert (status, error["attr"]) == (400, "start_at"), error
    assert "BATCH_EXPORTS_MAX_BACKFILL_INTERVALS" in error["detail"]
    assert await project.stack.pool.fetchval(
        "SELECT count(*) FROM batch_export_backfills WHERE team_id = $1", project.id
    ) == 0  # fmt: skip


async def test_a_source_query_past_its_statement_timeout_fails_the_run_saying_so(project: Project) -> None:
    stack = project.stack
    export = await create_export(project, destination("File", {"path": "slow"}))
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    end = start + timedelta(hours=1)
    await stack.pool.execute(
        """INSERT INTO events (uuid, team_id, event, distinct_id, properties, timestamp, created_at, inserted_at)
           SELECT gen_random_uuid(), $1, 'e', 'd', jsonb_build_object('pad', repeat('x', 1000)), $2, $2, $2
           FROM generate_series(1, 20000)""",
        project.id,
        start + timedelta(minutes=1),
    )
    run_id = await started_run(
        stack.pool, batch_export_id=uuid.UUID(export["id"]), workflow_id=f"{export['id']}-slow",
        workflow_run_id=str(uuid.uuid4()), data_interval_start=start, data_interval_end=end, backfill_id=None,
    )  # fmt: skip
    # A millisecond: reading 20 MB takes longer, however fast the machine.
    source = SourceDatabase(stack.pool, stack.settings.database_url, statement_timeout_seconds=0.001)
    exporter = Exporter(dataclasses.replace(stack.runtime, source=source))
    with pytest.raises(ApplicationError) as failed:
        await asyncio.wait_for(ActivityEnvironment().run(exporter.export_interval, ExportInputs(
            str(run_id), export["id"], start, end)), 60)  # fmt: skip
    assert failed.value.non_retryable and "statement timeout" in failed.value.message, failed.value
    assert "BATCH_EXPORTS_SOURCE_STATEMENT_TIMEOUT_SECONDS" in failed.value.message


async def test_what_was_a_500_is_a_4xx_without_a_traceback(project: Project, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    deep = b"[" * 50_000 + b"]" * 50_000
    export = await create_export(project, NOOP)
    capture_body = {"api_key": project.token}
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", f"/api/environments/{2**64}/batch_exports/", {}, 404),
        ("GET", f"/api/projects/{2**63}/batch_exports/", {}, 404),
        ("POST", "batch_exports/", {"data": b'{"name": NaN, "interval": "hour", "destination": {"type": "NoOp"}}'},
         400),
        ("POST", "batch_exports/", {"json": {**NOOP, "name": "a\u0000b"}}, 400),
        ("PATCH", f"batch_exports/{export['id']}/", {"json": {"name": "nul \u0000"}}, 400),
        ("POST", "batch_exports/", {"data": deep}, 400),
        ("GET", f"batch_exports/{export['id']}/logs/?search=%00", {}, 400),
        ("POST", "/batch/", {"data": b'{"api_key": "' + project.token.encode() + b'", "event": "e", "distinct_id": "d",'
                                     b' "properties": {"x": NaN}}'}, 400),
        ("POST", "/batch/", {"data": b'{"api_key": "' + project.token.encode() + b'", "event": "e", "distinct_id": "d",'
                                     b' "properties": {"x": 1e400}}'}, 400),
        ("POST", "/batch/", {"json": {**capture_body, "event": "e", "distinct_id": "d", "properties": {"k\u0000": 1}}},
         400),
        ("POST", "/batch/", {"json": {**capture_body, "event": "e\u0000", "distinct_id": "d"}}, 400),
        ("POST", "/batch/", {"data": deep}, 400),
        ("POST", "/batch/", {"json": {**capture_body, "event": "e", "distinct_id": "d", "offset": 1e300}}, 400),
        ("POST", "/batch/", {"json": {**capture_body, "sent_at": "9999-12-31T00:00:00Z",
                                      "batch": [{"event": "e", "distinct_id": "d",
                                                 "timestamp": "0001-01-01T00:00:00Z"}]}}, 400),
    ]  # fmt: skip
    for method, path, kwargs, expected in cases:
        key = None if path == "/batch/" else API_KEY
        status, body = await project.request(method, path, key=key, **kwargs)
        assert status == expected, (method, path, status, body)
        assert isinstance(body, dict) and {"type", "code", "detail", "attr"} <= set(body), body
    assert [record.getMessage() for record in caplog.records if record.exc_info] == []
    assert await project.stack.pool.fetchval("SELECT count(*) FROM events WHERE team_id = $1", project.id) == 0


async def test_json_nested_to_the_limit_is_stored_and_one_level_more_is_refused(project: Project) -> None:
    def nested(depth: int) -> dict[str, Any]:  # a one-event body whose properties take it to `depth` levels
        properties: dict[str, Any] = {"leaf": 1}
        for _ in range(depth - 2):
            properties = {"k": properties}
        return {"api_key": project.token, "event": "deep", "distinct_id": "d", "properties": properties}

    status, body = await project.request("POST", "/batch/", key=None, json=nested(255))
    assert (status, body["code"]) == (400, "invalid_payload") and "nests deeper than 254 levels" in body["detail"]
    status, _ = await project.request("POST", "/batch/", key=None, json=nested(254))
    assert status == 200
    stored = await project.stack.pool.fetchval(
        "SELECT properties::text FROM events WHERE team_id = $1 AND event = 'deep'", project.id
    )
    assert json.loads(stored) == nested(254)["properties"]


async def test_health_names_no_address(project: Project) -> None:
    dead = f"{LOOPBACK}:{free_port()}"  # no Temporal there
    async with (
        another_gateway(project.stack, temporal_address=dead) as gateway,
        aiohttp.ClientSession() as http,
        http.get(f"{gateway}/_health") as response,
    ):
        body = await response.json()
    assert (response.status, body) == (503, {"status": "unavailable", "database": "ok", "temporal": "unavailable"})
