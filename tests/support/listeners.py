"""Places on loopback that record who reached them, and a resolver the test controls: the far ends a hostile
config points at, so a test can say that nothing was sent there (or what was)."""

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from entrypoints.embedded import LOOPBACK, free_port


@dataclass
class Listener:
    """A TCP port that accepts connections, counts them, keeps what they sent, and answers nothing."""

    host: str
    port: int
    connections: int = 0
    received: bytearray = field(default_factory=bytearray)


@contextlib.asynccontextmanager
async def listening(host: str = LOOPBACK, port: int | None = None) -> AsyncIterator[Listener]:
    listener = Listener(host, port or free_port())

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener.connections += 1
        with contextlib.suppress(OSError):
            while data := await asyncio.wait_for(reader.read(65536), 5):
                listener.received += data
        writer.close()

    server = await asyncio.start_server(accept, listener.host, listener.port)
    try:
        yield listener
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """`app` served on a free loopback port; yields its URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def redirecting(status: int, location: str) -> AsyncIterator[str]:
    """An HTTP server on loopback that answers every request with a redirect to `location`; yields its URL."""

    async def redirect(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=status, headers={"Location": location})

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_route("*", "/{tail:.*}", redirect)
    async with serving(app) as url:
        yield url


@dataclass
class Resolver:
    """Answers for one name: `first` for the first lookup, `then` for every later one (a rebinding DNS)."""

    name: str
    first: str
    then: str
    lookups: int = 0

    def answer(self) -> str:
        self.lookups += 1
        return self.first if self.lookups == 1 else self.then


@contextlib.contextmanager
def resolving(name: str, first: str, then: str) -> Iterator[Resolver]:
    """For the running event loop (and every other of its kind: `_replaced`), `name` resolves as `Resolver` says
    (other names as usual): every client of this process that resolves through a loop (aiohttp, asyncpg, the
    address checks) sees these answers."""
    loop = asyncio.get_running_loop()
    resolver = Resolver(name, first, then)
    usual = type(loop).getaddrinfo

    async def getaddrinfo(self: asyncio.AbstractEventLoop, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != name:
            return await usual(self, host, port, *args, **kwargs)
        address = resolver.answer()
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sockaddr = (address, int(port or 0), 0, 0) if family == socket.AF_INET6 else (address, int(port or 0))
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)]

    with _replaced(loop, "getaddrinfo", getaddrinfo):
        yield resolver


@contextlib.contextmanager
def _replaced(loop: asyncio.AbstractEventLoop, method: str, replacement: Any) -> Iterator[None]:
    """`<method>` of every event loop of `loop`'s class is `replacement` for a while, then what it was (guards nest:
    each puts back its own). Every loop: the gateway runs destination checks on a loop of their own (`api.checks`)."""
    cls = type(loop)
    before = cls.__dict__.get(method)
    setattr(cls, method, replacement)
    try:
        yield
    finally:
        if before is None:
            delattr(cls, method)
        else:
            setattr(cls, method, before)


LOCAL_NAMES = {"localhost"}
"""Names the machine answers itself (/etc/hosts): the only names `loopback_only` lets the system resolve."""


@dataclass
class Tripwire:
    blocked: list[Any] = field(default_factory=list)
    """Connections refused: any address not on loopback."""
    lookups: list[str] = field(default_factory=list)
    """Names it answered as unknown instead of asking the system's resolver (which would ask a DNS server)."""


@contextlib.contextmanager
def loopback_only() -> Iterator[Tripwire]:
    """For the running event loop (and every other of its kind: `_replaced`), a connection to anything but loopback
    fails before a packet leaves, and a
    name other than the machine's own (`LOCAL_NAMES`, numeric addresses) does not resolve, without a DNS query:
    both are recorded. The guard of tests that feed clients addresses they must never reach (never the
    behaviour under test: that is what the clients' own checks must show)."""
    loop = asyncio.get_running_loop()
    tripwire = Tripwire()
    usual = type(loop).sock_connect
    usual_lookup = type(loop).getaddrinfo

    async def getaddrinfo(self: asyncio.AbstractEventLoop, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if isinstance(name, str) and name not in LOCAL_NAMES:
            try:
                ipaddress.ip_address(name.split("%")[0])
            except ValueError:
                tripwire.lookups.append(name)
                raise socket.gaierror(socket.EAI_NONAME, f"the test does not resolve {name}") from None
        return await usual_lookup(self, host, port, *args, **kwargs)

    async def sock_connect(self: asyncio.AbstractEventLoop, sock: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if not isinstance(host, str) or not ipaddress.ip_address(host.split("%")[0]).is_loopback:
            tripwire.blocked.append(address)
            raise OSError(f"the test refused a connection to {address}")
        await usual(self, sock, address)

    with _replaced(loop, "sock_connect", sock_connect), _replaced(loop, "getaddrinfo", getaddrinfo):
        yield tripwire
