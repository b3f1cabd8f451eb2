"""Every destination client under a hostile config or a hostile far end: clients in native code and vendor SDKs
(pyarrow's S3, delta-rs, pyiceberg, the Azure SDK) connect only through the service's egress and its policy;
endpoints are parsed once; redirects are refused; answers are bounded in size and time; Iceberg catalogs are
per project. Everything stays on loopback: an address that must not be reached is refused before any
connection, and the listeners count what reached them.
"""

import asyncio
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from deltalake import DeltaTable

from connectors.destinations import Context, parse_config, run_step
from connectors.destinations.base import ClientLimits
from connectors.destinations.object_stores.azure_blob import DESTINATION as AZURE
from connectors.destinations.object_stores.azure_blob import AzureBlobConfig
from connectors.destinations.tables.delta_lake import DeltaLakeConfig
from connectors.destinations.tables.iceberg import ALLOWED_PREFIX, IcebergConfig, LocationFileIO
from connectors.destinations.tables.location import check_writable, locate
from entrypoints.azurite import ACCOUNT, KEY, Azurite
from entrypoints.embedded import LOOPBACK
from tests.support.destinations import azure_container, bucket, lake_config
from tests.support.far_ends import answering, answering_huge, answering_tls, dribbling
from tests.support.helpers import capture, create_export, event, runs_until, trigger_for_last_hour
from tests.support.listeners import listening, loopback_only, redirecting, resolving
from tests.support.seaweed import SeaweedS3
from tests.support.stack import Project

INTERNAL_ANSWER = b'{"AccessKeyId": "ASIAINTERNAL", "SecretAccessKey": "internal-secret-never-shown"}'
LAKES = ["Iceberg", "DeltaLake"]


def destination(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"name": kind, "interval": "hour", "destination": {"type": kind, "config": config}}


def lake(endpoint: str, **fields: Any) -> dict[str, Any]:
    return {"storage": "S3Compatible", "bucket_name": "bucket", "endpoint_url": endpoint, "aws_access_key_id": "k",
            "aws_secret_access_key": "s", "table_name": "events", **fields}  # fmt: skip


def azure(connection_string: str) -> dict[str, Any]:
    return {"container_name": "exports", "connection_string": connection_string}


async def check(project: Project, kind: str, config: dict[str, Any], step: int) -> dict[str, Any]:
    body = {"step": step, "destination": {"type": kind, "config": config}}
    status, answer = await project.request("POST", "batch_exports/run_test_step_new/", json=body)
    assert status == 200, answer
    return dict(answer["result"])


def context_of(project: Project, **changes: Any) -> Context:
    return dataclasses.replace(project.stack.runtime.destinations.for_project(project.id), **changes)


# Endpoints are parsed once.


async def test_an_endpoint_is_scheme_host_port_and_path_and_nothing_else(project: Project) -> None:
    """Two parsers read `http://127.0.0.1:PORT\\@1.2.3.4/` differently (1.2.3.4 for Python, 127.0.0.1 for pyarrow
    and delta-rs, which panics on it): every such spelling is a 400 naming the field, and nothing connects."""
    async with listening() as internal:
        at = f"{internal.host}:{internal.port}"
        spellings = [
            f"http://{at}\\@1.2.3.4/", f"http://{at}%5c@1.2.3.4/", f"http://{at}%5C@1.2.3.4", f"http://user:pw@{at}",
            f"http://1.2.3.4@{at}/", f"http://{internal.host}%2f:{internal.port}", f"http://{at}/%40x",
            f"http://{at}/a%2fb", f"http://{at} /", f"http://{at}/\tx", f"http://{at}?x=1", f"http://{at}#f",
            f"http://{at}/\u00e9", f"http://{internal.host}:{internal.port}:1", f"http://[::1:{internal.port}",
        ]  # fmt: skip
        for spelling in spellings:
            for kind, config in [
                ("Iceberg", lake(spelling)),
                ("DeltaLake", lake(spelling)),
                ("S3Compatible", {"bucket_name": "bucket", "endpoint_url": spelling, "aws_access_key_id": "k",
                                  "aws_secret_access_key": "s"}),
                ("AzureBlob", {"container_name": "exports", "account_name": "acct", "account_key": "a2V5",
                               "endpoint_url": spelling}),
            ]:  # fmt: skip
                status, error = await project.request("POST", "batch_exports/", json=destination(kind, config))
                assert (status, error["attr"]) == (400, "destination__config__endpoint_url"), (kind, spelling, error)
            step = {"step": 1, "destination": {"type": "DeltaLake", "config": lake(spelling)}}
            status, error = await project.request("POST", "batch_exports/run_test_step_new/", json=step)
            assert (status, error["attr"]) == (400, "config__endpoint_url"), (spelling, error)
        assert internal.connections == 0
    # A plain endpoint (a trailing slash, an explicit port, a name) is still one.
    for fine in ("http://127.0.0.1:9000/", "https://s3.example.com", "http://[::1]:9000"):
        config = {"bucket_name": "bucket", "endpoint_url": fine, "aws_access_key_id": "k", "aws_secret_access_key": "s"}
        assert parse_config("S3Compatible", config).endpoint() is not None


async def test_an_azure_connection_string_names_one_endpoint(project: Project, azurite: Azurite) -> None:
    """The SDK reads keys without regard to case and the last one wins; the policy read the exact key. A second,
    case-variant or repeated key is now a 400, and nothing reaches the endpoint it named."""
    async with answering(INTERNAL_ANSWER) as internal:
        base = f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY}"
        for connection_string in [
            f"{base};BlobEndpoint={azurite.endpoint_url};blobendpoint={internal.url}/{ACCOUNT}",
            f"{base};BlobEndpoint={azurite.endpoint_url};BLOBENDPOINT={internal.url}/{ACCOUNT}",
            f"{base};BlobEndpoint={azurite.endpoint_url};BlobEndpoint={internal.url}/{ACCOUNT}",
            f"{base};blobendpoint={internal.url}/{ACCOUNT}",
            f"{base};accountname=other;BlobEndpoint={azurite.endpoint_url}",
            f"{base};BlobEndpoint={internal.url}\\@1.2.3.4/{ACCOUNT}",
            f"{base};BlobEndpoint={internal.url}/{ACCOUNT};Unknown=1",
        ]:
            status, error = await project.request("POST", "batch_exports/", json=destination("AzureBlob", azure(
                connection_string)))  # fmt: skip
            assert (status, error["attr"]) == (400, "destination__config__connection_string"), error
            assert KEY not in json.dumps(error)
            body = {"step": 1, "destination": {"type": "AzureBlob", "config": azure(connection_string)}}
            status, error = await project.request("POST", "batch_exports/run_test_step_new/", json=body)
            assert status == 400, error
        assert internal.hits == 0
    # The one endpoint a connection string names is the one written to (the SDK is given it, parsed).
    container = await azure_container(azurite, project)
    config = {"container_name": container, "connection_string": f"{base};BlobEndpoint={azurite.endpoint_url}/"}
    assert await check(project, "AzureBlob", config, 1) == {"status": "Passed", "message": None}


# Clients in native code and vendor SDKs connect only through the egress.


async def test_native_clients_connect_only_through_the_egress_and_its_policy(
    project: Project, s3: Any, s3_service: SeaweedS3, azurite: Azurite
) -> None:
    """pyarrow's S3 filesystem, delta-rs and pyiceberg reach a destination only through the proxy: pointed at a
    loopback listener with private destinations refused (called directly, past the save-time check), they are
    refused by the proxy and nothing reaches the listener. Allowed, their connections are the proxy's."""
    egress = project.stack.runtime.egress
    assert egress is not None
    internet_only = context_of(project, allow_private=False)
    async with listening() as internal:
        endpoint = f"http://{internal.host}:{internal.port}"
        delta = DeltaLakeConfig.model_validate(lake(endpoint))
        iceberg = IcebergConfig.model_validate(lake(endpoint))
        with loopback_only() as tripwire:
            for config in (delta, iceberg):
                location = locate(config, internet_only)
                with pytest.raises(Exception) as raised:
                    await asyncio.to_thread(check_writable, location)
                assert "private, loopback or otherwise internal" in str(raised.value), raised.value
            location = locate(delta, internet_only)
            with pytest.raises(OSError):
                options = location.delta_storage_options()
                await asyncio.to_thread(DeltaTable, location.child("events"), storage_options=options)
            assert location.route is not None and "refused to connect" in (location.route.refusal() or "")
            # pyiceberg's FileIO builds its own pyarrow filesystem, from the properties it is given.
            location = locate(iceberg, internet_only)
            io = LocationFileIO({**location.iceberg_properties(), ALLOWED_PREFIX: location.uri + "/"})
            with pytest.raises(OSError):
                await asyncio.to_thread(lambda: io.new_output(location.child("probe")).create().close())
            assert location.route is not None and "refused to connect" in (location.route.refusal() or "")
        assert internal.connections == 0 and tripwire.blocked == []

    # Allowed: the checks pass, and every connection they made was the proxy's.
    name = await bucket(s3, project)
    for kind in LAKES:
        before = egress.connections
        for step in (1, 2) if kind == "Iceberg" else (0, 1):
            assert await check(project, kind, lake_config(s3_service, name, table_name="t"), step) == {
                "status": "Passed", "message": None}  # fmt: skip
        assert egress.connections > before, kind

    # The proxy serves only its own process: no credentials, or the wrong secret, is a 407 and goes nowhere.
    route = egress.route(context_of(project))
    at = f"127.0.0.1:{egress.port}"
    async with answering(b"ok") as target, aiohttp.ClientSession() as http:
        for proxy in (f"http://{at}", f"http://{route.name}:wrong@{at}", f"http://nobody:{egress.secret}@{at}"):
            async with http.get(target.url, proxy=proxy) as answer:
                assert answer.status == 407
        assert target.hits == 0
        async with http.get(target.url, proxy=route.url) as answer:
            assert (answer.status, await answer.read(), target.hits) == (200, b"ok", 1)


@pytest.mark.parametrize(("kind", "step"), [("Iceberg", 1), ("Iceberg", 2), ("DeltaLake", 0), ("DeltaLake", 1)])
async def test_the_address_the_egress_checked_is_the_address_connected_to(
    project: Project, kind: str, step: int
) -> None:
    """A name that resolves to an internet address for the save-time check, then to loopback (DNS rebinding): the
    native client never resolves it (the proxy does, once, and refuses loopback), so nothing reaches loopback and
    nothing leaves the machine."""
    async with listening() as internal:
        config = parse_config(kind, lake(f"http://rebind.test:{internal.port}"))
        context = context_of(project, allow_private=False)
        with loopback_only() as tripwire, resolving("rebind.test", first="93.184.215.14", then=LOOPBACK) as dns:
            problem = await run_step(kind, config, context, step)
        assert problem is not None and "refused to connect" in problem, problem
        assert dns.lookups >= 2 and tripwire.blocked == [] and tripwire.lookups == [], (dns.lookups, tripwire)
        assert internal.connections == 0


async def test_a_tls_tunnel_through_the_egress_obeys_the_policy(project: Project, tmp_path: Path) -> None:
    """TLS clients ask the proxy for a CONNECT tunnel: it reaches an allowed address, and is refused (before any
    connection) where the policy refuses it."""
    egress = project.stack.runtime.egress
    assert egress is not None
    async with answering_tls(b"through the tunnel", tmp_path) as server, aiohttp.ClientSession() as http:
        allowed = egress.route(context_of(project))
        async with http.get(f"{server.url}/x", proxy=allowed.url, ssl=False) as answer:
            assert (answer.status, await answer.read()) == (200, b"through the tunnel")
        assert server.hits == 1 and allowed.connections == 1
        refused = egress.route(context_of(project, allow_private=False))
        with loopback_only() as tripwire, pytest.raises(aiohttp.ClientHttpProxyError):
            async with http.get(f"{server.url}/x", proxy=refused.url, ssl=False):
                pass
        assert server.hits == 1 and tripwire.blocked == []
        assert "private, loopback or otherwise internal" in (refused.refusal() or ""), refused.refusals


async def test_the_azure_client_connects_only_where_the_policy_allows(project: Project) -> None:
    """The Azure SDK connects through the pinned session: with private destinations refused, a loopback endpoint
    (given past the save-time check) is refused where the socket is made."""
    async with answering(INTERNAL_ANSWER) as internal:
        config = AzureBlobConfig(container_name="exports", account_name="acct", account_key="a2V5",
                                 endpoint_url=f"{internal.url}/acct")  # fmt: skip
        with loopback_only() as tripwire, pytest.raises(Exception) as raised:
            await AZURE.steps[0].run(config, context_of(project, allow_private=False))
        assert "refused to connect" in str(raised.value), raised.value
        assert internal.hits == 0 and tripwire.blocked == []


# Redirects stay refused everywhere.


@pytest.mark.parametrize("kind", [*LAKES, "AzureBlob"])
async def test_redirects_are_refused_by_every_client(project: Project, kind: str) -> None:
    async with answering(INTERNAL_ANSWER) as internal:
        target = f"{internal.url}/latest/meta-data/iam/security-credentials/role"
        async with redirecting(307, target) as redirector:
            if kind == "AzureBlob":
                config = {"container_name": "exports", "account_name": "acct", "account_key": "a2V5",
                          "endpoint_url": f"{redirector}/acct"}  # fmt: skip
                steps = [0, 1]
            else:
                config = lake(redirector)
                steps = [1, 2] if kind == "Iceberg" else [0, 1]
            for step in steps:
                result = await check(project, kind, config, step)
                assert result["status"] == "Failed", (step, result)
                assert "redirect" in result["message"] and "not followed" in result["message"], (step, result)
                assert "internal-secret" not in result["message"] and "ASIA" not in result["message"], result
        assert internal.hits == 0


# Bounds on every client.


def rss_growth_during() -> Any:
    """A context manager sampling this process's resident memory; `.growth` is the peak above the start, in MiB."""

    class Sampler:
        growth = 0.0

        async def __aenter__(self) -> "Sampler":
            self.process = psutil.Process()
            self.before = self.process.memory_info().rss
            self.peak = self.before
            self.task = asyncio.create_task(self._sample())
            return self

        async def _sample(self) -> None:
            while True:
                self.peak = max(self.peak, self.process.memory_info().rss)
                await asyncio.sleep(0.02)

        async def __aexit__(self, *exc: object) -> None:
            self.task.cancel()
            self.growth = (self.peak - self.before) / 2**20

    return Sampler()


@pytest.mark.parametrize("kind", ["S3Compatible", "Iceberg", "DeltaLake", "AzureBlob"])
async def test_a_huge_answer_is_not_read_into_memory(project: Project, kind: str) -> None:
    """An endpoint that answers every request 200 with 300 MB: the clients stop reading at the bound (lowered to
    8 MiB here), the check says so, and the worker's memory stays put."""
    limits = ClientLimits(call_seconds=60, check_seconds=60, answer_bytes=8 * 2**20)
    context = context_of(project, limits=limits)
    async with answering_huge(300 * 2**20) as huge:
        if kind == "AzureBlob":
            raw = {"container_name": "exports", "account_name": "acct", "account_key": "a2V5",
                   "endpoint_url": f"{huge.url}/acct"}  # fmt: skip
        elif kind == "S3Compatible":
            raw = {"bucket_name": "bucket", "endpoint_url": huge.url, "aws_access_key_id": "k",
                   "aws_secret_access_key": "s"}  # fmt: skip
        else:
            raw = lake(huge.url)
        config = parse_config(kind, raw)
        async with rss_growth_during() as memory:
            problem = await run_step(kind, config, context, 1 if kind == "Iceberg" else 0)
        assert problem is not None and "larger than" in problem, problem
        assert len(problem) <= 500
        print(f"{kind}: {memory.growth:.0f} MiB more at the peak, {huge.sent / 2**20:.0f} MiB sent")
        assert memory.growth < 100, f"{memory.growth:.0f} MiB more while a 300 MB answer was refused"
        assert huge.sent < 300 * 2**20 * max(1, huge.hits), (huge.sent, huge.hits)


async def test_a_dribbling_azure_endpoint_ends_at_the_deadline(project: Project) -> None:
    """One header every second never trips a read timeout; the call's overall deadline ends it."""
    limits = ClientLimits(call_seconds=3, check_seconds=20, answer_bytes=2**20)
    async with dribbling(every_seconds=1) as slow:
        config = parse_config("AzureBlob", {"container_name": "exports", "account_name": "acct", "account_key": "a2V5",
                                            "endpoint_url": f"{slow.url}/acct"})  # fmt: skip
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with asyncio.timeout(30):
            problem = await run_step("AzureBlob", config, context_of(project, limits=limits), 0)
        took = loop.time() - began
    assert problem is not None and "did not answer within 3 s" in problem, problem
    assert took < 10, took


async def test_a_dribbling_s3_endpoint_ends_at_the_call_deadline(project: Project) -> None:
    limits = ClientLimits(call_seconds=2, check_seconds=60, answer_bytes=2**20)
    async with dribbling(every_seconds=0.5) as slow:
        config = parse_config("S3Compatible", {"bucket_name": "bucket", "endpoint_url": slow.url,
                                               "aws_access_key_id": "k", "aws_secret_access_key": "s"})  # fmt: skip
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with asyncio.timeout(90):
            problem = await run_step("S3Compatible", config, context_of(project, limits=limits), 0)
        took = loop.time() - began
    assert problem is not None and "timeout" in problem.lower() and "CHECK_TIMEOUT" not in problem, problem
    assert took < 30, took  # botocore's own retries, each ended at 2 s


async def test_a_dribbling_table_endpoint_ends_at_the_check_deadline(project: Project) -> None:
    limits = ClientLimits(call_seconds=3, check_seconds=8, answer_bytes=2**20)
    async with dribbling(every_seconds=1) as slow:
        loop = asyncio.get_running_loop()
        for kind in LAKES:
            began = loop.time()
            async with asyncio.timeout(60):
                config = parse_config(kind, lake(slow.url))
                problem = await run_step(kind, config, context_of(project, limits=limits), 1)
            assert problem is not None, kind
            assert loop.time() - began < 12, (kind, loop.time() - began, problem)


# Iceberg catalogs are per project.


async def test_another_project_on_the_same_bucket_learns_nothing_of_a_table(
    project: Project, s3: Any, s3_service: SeaweedS3, caplog: pytest.LogCaptureFixture
) -> None:
    name = await bucket(s3, project)
    config = lake_config(s3_service, name, prefix="lake", table_name="events")
    export = await create_export(project, destination("Iceberg", config))
    await capture(project, [event("e", "someone")])
    await trigger_for_last_hour(project, export)
    await runs_until(project, export["id"], lambda rs: len(rs) == 1 and rs[0]["status"] == "Completed", 60)
    metadata = await project.stack.pool.fetchval(
        "SELECT metadata_location FROM iceberg_catalog.iceberg_tables WHERE metadata_location LIKE $1",
        f"s3://{name}/lake/%",
    )
    assert metadata is not None
    file_name = metadata.rsplit("/", 1)[1]

    other = await project.stack.new_project()
    bogus = {**config, "aws_access_key_id": "AKIABOGUS", "aws_secret_access_key": "bogus-secret"}
    caplog.set_level(logging.DEBUG)
    said = [await check(other, "Iceberg", bogus, step) for step in range(3)]
    assert said[2]["status"] == "Failed", said
    shown = json.dumps(said) + "\n".join(r.getMessage() for r in caplog.records)
    table_uuid = file_name.split("-", 1)[1].removesuffix(".metadata.json")
    assert file_name not in shown and table_uuid not in shown, said
    # The owner still reaches its table.
    assert await check(project, "Iceberg", config, 2) == {"status": "Passed", "message": None}

    # A table in the location-keyed catalog of before becomes the project's whose keys read it, and no one else's.
    pool = project.stack.pool
    legacy = f"s3://{name}/lake at {config['endpoint_url']}"
    row = "SELECT catalog_name FROM iceberg_catalog.iceberg_tables WHERE metadata_location = $1"
    mine = await pool.fetchval(row, metadata)
    assert mine.startswith(f"project {project.id}: ")
    await pool.execute("UPDATE iceberg_catalog.iceberg_tables SET catalog_name = $1 WHERE metadata_location = $2",
                       legacy, metadata)  # fmt: skip
    again = await check(other, "Iceberg", bogus, 2)
    assert again["status"] == "Failed" and file_name not in json.dumps(again) and table_uuid not in json.dumps(again)
    assert await pool.fetchval(row, metadata) == legacy
    assert await check(project, "Iceberg", config, 2) == {"status": "Passed", "message": None}
    assert await pool.fetchval(row, metadata) == mine
