"""Destinations that misbehave, on loopback: one that answers every request with a body of any size, one that
dribbles its headers, one that keeps a secret and counts who asked for it."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from entrypoints.embedded import LOOPBACK, free_port
from tests.support.listeners import serving


@dataclass
class FarEnd:
    url: str
    hits: int = 0
    sent: int = 0
    """Bytes of body written (a huge answer stops early when the client hangs up)."""


@contextlib.asynccontextmanager
async def answering(body: bytes, status: int = 200) -> AsyncIterator[FarEnd]:
    """Answers every request with `body` (an internal service's secret, say), counting the requests."""
    end = FarEnd("")

    async def answer(request: web.Request) -> web.Response:
        end.hits += 1
        return web.Response(status=status, body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with serving(app) as url:
        end.url = url
        yield end


@contextlib.asynccontextmanager
async def answering_huge(size: int, declared: bool = False) -> AsyncIterator[FarEnd]:
    """Answers every request 200 with `size` bytes streamed (without a Content-Length unless `declared`)."""
    end = FarEnd("")
    chunk = b"x" * 2**20

    async def answer(request: web.Request) -> web.StreamResponse:
        end.hits += 1
        await request.read()
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/xml"})
        if declared:
            response.content_length = size
        await response.prepare(request)
        with contextlib.suppress(ConnectionError, RuntimeError):
            while end.sent < size * end.hits:
                await response.write(chunk)
                end.sent += len(chunk)
        return response

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_route("*", "/{tail:.*}", answer)
    async with serving(app) as url:
        end.url = url
        yield end


@contextlib.asynccontextmanager
async def dribbling(every_seconds: float) -> AsyncIterator[FarEnd]:
    """Starts every answer and then sends one more header line every `every_seconds`, never ending the head."""
    end = FarEnd(f"http://{LOOPBACK}:{free_port()}")
    port = int(end.url.rsplit(":", 1)[1])

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        end.hits += 1
        with contextlib.suppress(OSError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\n")
            n = 0
            while True:
                writer.write(f"X-Dribble-{n}: {n}\r\n".encode())
                await writer.drain()
                n += 1
                await asyncio.sleep(every_seconds)
        writer.close()

    server = await asyncio.start_server(answer, LOOPBACK, port)
    try:
        yield end
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1)
