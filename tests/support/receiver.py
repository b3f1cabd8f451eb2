"""A capture endpoint that records every delivery: the HTTP destination's receiving end in the tests.

Unlike PostHog (and this service's own `/batch/`), it does not deduplicate, so a test sees each event as
often as it was sent.
"""

import asyncio
import contextlib
import gzip
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from entrypoints.embedded import LOOPBACK, free_port


@dataclass
class Receiver:
    token: str
    url: str = ""
    deliveries: list[str] = field(default_factory=list)
    """Every event uuid received, in order, repeats included."""
    posts: int = 0
    answer: int = 200
    """What it answers a batch with the right token (set it to 503 to refuse for a while)."""
    open: asyncio.Event = field(default_factory=asyncio.Event)
    """Cleared, it holds every batch (a receiver that does not answer) until it is set again."""

    def __post_init__(self) -> None:
        self.open.set()

    async def batch(self, request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp has inflated a `Content-Encoding: gzip` body already
        payload = json.loads(gzip.decompress(body) if body.startswith(b"\x1f\x8b") else body)
        await self.open.wait()
        if payload.get("api_key") != self.token:
            return web.json_response({"type": "authentication_error", "detail": "invalid token"}, status=401)
        if self.answer >= 300:
            return web.json_response({"detail": "not now"}, status=self.answer)
        self.posts += 1
        self.deliveries += [event["uuid"] for event in payload["batch"]]
        return web.json_response({"status": 1})


@contextlib.asynccontextmanager
async def running_receiver(token: str) -> AsyncIterator[Receiver]:
    receiver = Receiver(token)
    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/batch/", receiver.batch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    receiver.url = f"http://{LOOPBACK}:{port}/batch/"
    try:
        yield receiver
    finally:
        receiver.open.set()  # nothing held past the test
        await runner.cleanup()
