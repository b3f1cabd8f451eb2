"""A TCP proxy on loopback that passes what it is sent upstream at a set rate: a slow link to a destination.

All its connections share the rate (parts uploaded side by side do not multiply it). A test may change the
rate while data flows: lower it until the link all but stalls, or lift it (`rate = 0`).
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from entrypoints.embedded import LOOPBACK

CHUNK = 64 * 2**10


class Throttle:
    def __init__(self, upstream_port: int, rate: float) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.sent = 0
        """Bytes passed upstream so far."""
        self._rate = rate
        self._free_at = 0.0

    @property
    def rate(self) -> float:
        """Bytes per second sent upstream (0: as fast as they come)."""
        return self._rate

    @rate.setter
    def rate(self, rate: float) -> None:
        self._rate, self._free_at = rate, 0.0

    async def _pace(self, size: int) -> None:
        """Wait until the link is free, then take it for as long as `size` bytes last at the rate."""
        while self._rate:
            now = time.monotonic()
            if self._free_at <= now:
                self._free_at = now + size / self._rate
                return
            await asyncio.sleep(min(0.05, self._free_at - now))

    async def _pipe(self, source: asyncio.StreamReader, target: asyncio.StreamWriter, paced: bool) -> None:
        try:
            while data := await source.read(CHUNK):
                if paced:
                    await self._pace(len(data))
                    self.sent += len(data)
                target.write(data)
                await target.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                target.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(LOOPBACK, self.upstream_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer, True), self._pipe(up_reader, writer, False))


@contextlib.asynccontextmanager
async def throttled(upstream_port: int, rate: float) -> AsyncIterator[Throttle]:
    """A proxy to `upstream_port` at `rate` bytes per second; its own port is `.port`."""
    throttle = Throttle(upstream_port, rate)
    server = await asyncio.start_server(throttle._connection, LOOPBACK, 0)
    throttle.port = server.sockets[0].getsockname()[1]
    try:
        yield throttle
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)
