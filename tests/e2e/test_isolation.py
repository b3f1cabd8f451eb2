"""One tenant cannot starve the others (issue 20, findings 5 and 6): destination checks run on threads of their
own, within a deadline; a project has at most so many exports.

Everything stays on loopback: the "dead" destination is a port here that accepts connections and never answers.
"""

import asyncio
import contextlib
import gzip
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from entrypoints.embedded import LOOPBACK, free_port
from tests.support.helpers import another_gateway, eventually
from tests.support.listeners import loopback_only
from tests.support.stack import API_KEY, Project


@dataclass
class Silent:
    """A loopback port that accepts connections, reads what they send, and never answers."""

    port: int
    connections: int = 0
    open: list[asyncio.StreamWriter] = field(default_factory=list)


@contextlib.asynccontextmanager
async def silent() -> AsyncIterator[Silent]:
    """A `Silent` port until the block ends; then every connection is closed, so clients stuck on it return."""
    far = Silent(free_port())

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        far.connections += 1
        far.open.append(writer)
        with contextlib.suppress(OSError):
            while await reader.read(65536):
                pass

    server = await asyncio.start_server(accept, LOOPBACK, far.port)
    try:
        yield far
    finally:
        server.close()
        for writer in far.open:
            writer.close()
        await server.wait_closed()


async def call(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, Any, float]:
    """Status, JSON body and seconds taken of one request."""
    began = time.monotonic()
    async with http.request(method, url, **kwargs) as response:
        return response.status, await response.json(), time.monotonic() - began


# Finding 5: destination checks never hold the threads capture and request parsing use.


async def test_checks_against_a_dead_endpoint_end_at_their_deadline_and_capture_goes_on(project: Project) -> None:
    """Eight Delta Lake checks against an endpoint that never answers (pyarrow's S3 client blocks a thread on each),
    then a one-event gzip `/batch/`: the capture answers at once, four checks end at their 3 s deadline, and the
    other four are refused at once (429), the gateway running four at a time."""
    async with (
        silent() as far,
        another_gateway(project.stack, max_concurrent_checks=4, check_timeout_seconds=3) as gateway,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http,
    ):
        lake = {"storage": "S3Compatible", "bucket_name": "lake", "endpoint_url": f"http://{LOOPBACK}:{far.port}",
                "aws_access_key_id": "key", "aws_secret_access_key": "secret", "table_name": "events"}  # fmt: skip
        step = {"step": 0, "destination": {"type": "DeltaLake", "config": lake}}
        url = f"{gateway}/api/projects/{project.id}/batch_exports/run_test_step_new/"
        checks = [asyncio.create_task(call(http, "POST", url, json=step)) for _ in range(8)]
        await eventually(lambda: _reached(far, 1), within=10, every=0.05)  # the checks block on it
        await asyncio.sleep(0.5)

        body = gzip.compress(
            json.dumps({"api_key": project.token, "batch": [{"event": "e", "distinct_id": "d"}]}).encode()
        )
        status, _, took = await call(http, "POST", f"{gateway}/batch/", data=body, headers={"Content-Encoding": "gzip"})
        assert status == 200 and took < 2, (status, took)

        answers = await asyncio.gather(*checks)
    ran = [(body, took) for status, body, took in answers if status == 200]
    refused = [(body, took) for status, body, took in answers if status == 429]
    assert (len(ran), len(refused)) == (4, 4), answers
    for body, took in ran:
        assert body["result"]["status"] == "Failed" and 2.5 < took < 6, (body, took)
        assert "did not finish within 3 s (BATCH_EXPORTS_CHECK_TIMEOUT_SECONDS)" in body["result"]["message"]
    for body, took in refused:
        assert took < 2 and "BATCH_EXPORTS_MAX_CONCURRENT_CHECKS" in body["detail"], (body, took)


async def test_the_loopback_guard_of_the_tests_covers_the_checks_own_loop(project: Project) -> None:
    """Checks run on a loop of their own; the tests' guard (no DNS query, nothing but loopback) holds there too."""
    http = {"type": "HTTP", "config": {"url": "http://nowhere.invalid/batch/", "token": "t"}}
    with loopback_only() as tripwire:
        status, body = await project.request(
            "POST", "batch_exports/run_test_step_new/", json={"step": 0, "destination": http}
        )
    assert status == 200 and body["result"]["status"] == "Failed", body
    assert tripwire.lookups == ["nowhere.invalid"] and tripwire.blocked == []


# Finding 6: a cap on a project's exports, and on its export attempts in a worker.


async def test_a_project_has_at_most_its_cap_of_exports(project: Project) -> None:
    file = {"name": "capped", "interval": "hour", "paused": True, "destination": {"type": "File", "config": {}}}
    async with (
        another_gateway(project.stack, max_exports_per_project=2) as gateway,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http,
    ):
        url = f"{gateway}/api/projects/{project.id}/batch_exports/"
        created = []
        for n in range(2):
            status, export, _ = await call(http, "POST", url, json={**file, "destination": _file(f"capped-{n}")})
            assert status == 201, export
            created.append(export)
        status, error, _ = await call(http, "POST", url, json={**file, "destination": _file("one-too-many")})
        assert (status, error["type"], error["code"]) == (400, "validation_error", "max_exports_per_project"), error
        assert "BATCH_EXPORTS_MAX_EXPORTS_PER_PROJECT" in error["detail"] and "(2)" in error["detail"], error
        async with http.delete(f"{url}{created[0]['id']}/") as deleted:
            assert deleted.status == 204
        status, export, _ = await call(http, "POST", url, json={**file, "destination": _file("after-a-delete")})
        assert status == 201, export  # deleted exports do not count


def _file(path: str) -> dict[str, Any]:
    return {"type": "File", "config": {"path": path}}


async def _reached(far: Silent, connections: int) -> bool:
    return far.connections >= connections
