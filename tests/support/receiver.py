"""A capture endpoint that records every delivery: the HTTP destination's receiving end in the tests.

Unlike PostHog (and this service's own `/batch/`), it does not deduplicate, so a test sees each event as
often as it was sent. A test can slow it down (`delay`), have it hold batches (`open`), answer 503
(`answer`), or stop listening and drop its connections (`refuse`) and come back on the same port (`listen`).
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
    delay: float = 0.0
    """How long it takes over each batch before taking it (a slow receiver)."""
    refused: int = 0
    """Batches answered with something other than 2xx."""
    delay_started: int = 0
    """Batches it has begun to take its time over."""
    port: int = field(default_factory=free_port)
    _runner: web.AppRunner | None = None

    def __post_init__(self) -> None:
        self.open.set()

    async def batch(self, request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp has inflated a `Content-Encoding: gzip` body already
        payload = json.loads(gzip.decompress(body) if body.startswith(b"\x1f\x8b") else body)
        await self.open.wait()
        if payload.get("api_key") != self.token:
            return web.json_response({"type": "authentication_error", "detail": "invalid token"}, status=401)
        if self.delay:
            self.delay_started += 1
            await asyncio.sleep(self.delay)
        if self.answer >= 300:
            self.refused += 1
            return web.json_response({"detail": "not now"}, status=self.answer)
        self.posts += 1
        self.deliveries += [event["uuid"] for event in payload["batch"]]
        return web.json_response({"status": 1})

    async def listen(self) -> None:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/batch/", self.batch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, LOOPBACK, self.port).start()
        self.url = f"http://{LOOPBACK}:{self.port}/batch/"

    async def refuse(self) -> None:
        """Let held batches go, stop listening, and drop the connections open now."""
        self.open.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


@contextlib.asynccontextmanager
async def running_receiver(token: str) -> AsyncIterator[Receiver]:
    receiver = Receiver(token)
    await receiver.listen()
    try:
        yield receiver
    finally:
        await receiver.refuse()
