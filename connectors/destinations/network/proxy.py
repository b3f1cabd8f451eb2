"""The service's own egress: a forward proxy on loopback through which destination clients in native code
(pyarrow's S3 filesystem, delta-rs's object store, pyiceberg's FileIO) make every connection.

Those clients resolve names, follow redirects and read answers their own way, out of the service's reach. Given
this proxy, they do none of it themselves: each connection (a `CONNECT` tunnel for TLS, a plain request with an
absolute URL otherwise) names its host, and the proxy resolves it once, checks every address with the same
policy as every other client (`hosts`: private addresses unless allowed, never the service's own databases) and
connects to a checked address. A redirect's new connection is a new request to the proxy, checked again; a plain
answer that redirects is refused outright (502), so no redirect is ever followed. A plain answer's body is
bounded (`ClientLimits.answer_bytes`, or the range a ranged read asked for) and must arrive within the call's
deadline; a tunnel ends after a call's deadline without a byte either way, and a check's tunnels at the check's
deadline. Inside a tunnel the proxy sees only TLS: there the bounds are the deadlines.

The proxy listens on 127.0.0.1 only and serves only its own process: every request carries a `Route`'s name and
the process's secret (`Proxy-Authorization`), so no other local program can use it as a relay. A route is one
client's way out (one check, one export attempt): its policy, its limits, and what the proxy refused it, so an
error can say why (`refusal`).
"""

import asyncio
import base64
import contextlib
import hmac
import itertools
import logging
import secrets
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from connectors.destinations.base import ClientLimits, Context, ProtectedDatabase
from connectors.destinations.network.endpoints import parse_endpoint
from connectors.destinations.network.hosts import HostRefused, own_database_at, resolve

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
HEAD_BYTES = 64 * 1024
"""The longest request or answer head (request line or status line, and headers)."""
CHUNK = 64 * 1024
CONNECT_SECONDS = 10.0
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "proxy-authenticate", "te",
              "trailer", "upgrade", "host"}  # fmt: skip


class Refused(Exception):
    """What the proxy will not do for a route (the message says why, and is the route's refusal)."""


@dataclass(eq=False)
class Route:
    """One client's way through the proxy: `url` (credentials included) is the proxy URL to give it."""

    proxy: "EgressProxy"
    name: str
    allow_private: bool
    limits: ClientLimits
    protected: tuple[ProtectedDatabase, ...]
    deadline: float | None = None
    refusals: list[str] = field(default_factory=list)
    timeouts: list[str] = field(default_factory=list)
    connections: int = 0
    _open: set[asyncio.StreamWriter] = field(default_factory=set)
    _closed: bool = False

    @property
    def url(self) -> str:
        return f"http://{self.name}:{self.proxy.secret}@{LOOPBACK}:{self.proxy.port}"

    def refusal(self) -> str | None:
        """The first thing the proxy refused this route, if any."""
        return self.refusals[0] if self.refusals else None

    def refuse(self, why: str) -> Refused:
        """Record (the first few) and raise: a refusal the user must act on (policy, redirect, size)."""
        if len(self.refusals) < 10:
            self.refusals.append(why)
        logger.info("egress refused: %s", why)
        return Refused(why)

    def late(self, why: str) -> Refused:
        """A deadline passed: not the user's to fix (a later attempt may do better), so not a refusal."""
        self.timeouts.append(why)
        return Refused(why)

    def close(self) -> None:
        """End every connection of the route, and refuse new ones."""
        self._closed = True
        for writer in list(self._open):
            writer.close()


class EgressProxy:
    """The proxy: `start()` it on the event loop that serves it, give clients a `route(...).url`."""

    def __init__(self) -> None:
        self.secret = secrets.token_urlsafe(24)
        self.port = 0
        self.connections = 0
        """Connections accepted from clients that gave a route's credentials (for tests and metrics)."""
        self._routes: weakref.WeakValueDictionary[str, Route] = weakref.WeakValueDictionary()
        self._names = itertools.count()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._accept, LOOPBACK, 0, limit=HEAD_BYTES)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for route in list(self._routes.values()):
                route.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

    def redact(self, message: str) -> str:
        """`message` without the proxy's secret (a client may quote the proxy URL it was given)."""
        return message.replace(self.secret, "[redacted]")

    def route(self, context: Context) -> Route:
        """A new route with `context`'s policy, limits and deadline. It lasts as long as the caller keeps it (a
        weak reference here), and may be asked for from any thread."""
        name = f"r{next(self._names)}x{secrets.token_hex(4)}"
        route = Route(self, name, context.allow_private, context.limits, context.protected_databases, context.deadline)
        self._routes[name] = route
        if context.deadline is not None:  # (a route may be asked for from a thread)
            self._loop.call_soon_threadsafe(self._loop.call_at, context.deadline, route.close)
        return route

    # Serving.

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        route: Route | None = None
        try:
            try:
                async with asyncio.timeout(CONNECT_SECONDS):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, TimeoutError):
                return
            method, target, headers = _request_head(head)
            route = self._authorized(headers)
            if route is None:
                challenge = [("Proxy-Authenticate", 'Basic realm="egress"')]
                writer.write(_answer(407, "give the proxy's credentials", challenge))
                return
            if route._closed:
                raise route.late("the check's deadline passed")
            self.connections += 1
            route.connections += 1
            route._open.add(writer)
            if method == "CONNECT":
                await self._tunnel(route, target, reader, writer)
            else:
                await self._forward(route, method, target, headers, reader, writer)
        except Refused as refused:
            with contextlib.suppress(OSError, RuntimeError):
                writer.write(_answer(502, str(refused), [("X-Batch-Exports-Egress", "refused")]))
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError):
            pass
        finally:
            if route is not None:
                route._open.discard(writer)
            writer.close()

    def _authorized(self, headers: list[tuple[str, str]]) -> Route | None:
        given = next((v for k, v in headers if k == "proxy-authorization"), "")
        scheme, _, encoded = given.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            name, _, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(secret.encode(), self.secret.encode()):
            return None
        return self._routes.get(name)

    async def _connect(self, route: Route, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to a checked address of `host` (resolved once, here)."""
        try:
            addresses = await resolve(host, port, allow_private=route.allow_private, field="endpoint")
        except HostRefused as error:
            raise route.refuse(f"refused to connect to {host}: {error}") from None
        if await own_database_at(addresses, port, route.protected):
            raise route.refuse(f"refused to connect to {host}:{port}: a database of this service itself")
        failure: Exception | None = None
        for address in addresses:
            try:
                async with asyncio.timeout(CONNECT_SECONDS):
                    upstream = await asyncio.open_connection(address, port, limit=HEAD_BYTES)
                route._open.add(upstream[1])
                return upstream
            except (OSError, TimeoutError) as error:
                failure = error
        raise OSError(f"cannot connect to {host}:{port}: {failure}")

    async def _tunnel(
        self, route: Route, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            parsed = parse_endpoint(f"https://{target}", path=False)
        except ValueError as error:
            raise route.refuse(f"refused a tunnel to {target[:100]}: it {error}") from None
        up_reader, up_writer = await self._connect(route, parsed.host, parsed.port)
        try:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await _relay_both(reader, writer, up_reader, up_writer, route.limits.call_seconds)
        finally:
            route._open.discard(up_writer)
            up_writer.close()

    async def _forward(
        self,
        route: Route,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """One plain request (the client's connection closes after it): sent to a checked address, its answer
        passed back unless it redirects or is larger than the route may read."""
        scheme, _, rest = target.partition("://")
        authority, slash, tail = rest.partition("/")
        try:
            if scheme.lower() != "http":
                raise ValueError("is not an http:// URL")
            parsed = parse_endpoint(f"http://{authority}", path=False)
        except ValueError as error:
            raise route.refuse(f"refused a request to {target[:100]}: it {error}") from None
        up_reader, up_writer = await self._connect(route, parsed.host, parsed.port)
        pump = asyncio.create_task(_pump(reader, up_writer))
        head_sent = False
        try:
            kept = [(k, v) for k, v in headers if k not in HOP_BY_HOP]
            lines = [f"{method} {slash or '/'}{tail} HTTP/1.1", f"Host: {parsed.authority}",
                     *(f"{k}: {v}" for k, v in kept), "Connection: close"]  # fmt: skip
            up_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            async with asyncio.timeout(route.limits.call_seconds):
                status, answer_headers, head = await _answer_head(up_reader, writer)
                location = next((v for k, v in answer_headers if k == "location"), None)
                if 300 <= status < 400 and location is not None:
                    raise route.refuse(
                        f"the destination answered {status}, a redirect to {location[:200]}; redirects are not followed"
                    )
                limit = _answer_limit(method, headers, route.limits.answer_bytes)
                length = next((v for k, v in answer_headers if k == "content-length"), None)
                if length is not None and (not length.strip().isdigit() or int(length) > limit):
                    raise route.refuse(_too_large(length, limit))
                writer.write(_relayed_head(head))
                head_sent = True
                if method == "HEAD" or status in (204, 304):
                    return
                sent = await _relay_body(up_reader, writer, int(length) if length is not None else None, limit)
            if sent > limit:
                route.refuse(_too_large(f"more than {limit}", limit))
        except TimeoutError:
            late = route.late(
                f"the destination did not answer within {route.limits.call_seconds:g} s "
                "(BATCH_EXPORTS_DESTINATION_CALL_TIMEOUT_SECONDS)"
            )
            if not head_sent:
                raise late from None
        finally:
            pump.cancel()
            route._open.discard(up_writer)
            up_writer.close()


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[EgressProxy]:
    proxy = EgressProxy()
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


def route_for(context: Context) -> Route:
    """The way out for a client in native code: fails closed when the process has no proxy."""
    egress = context.egress
    if not isinstance(egress, EgressProxy):
        raise RuntimeError("this process has no egress proxy: a destination client in native code cannot connect")
    return egress.route(context)


# HTTP/1.1, as little of it as a proxy needs.


def _request_head(head: bytes) -> tuple[str, str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError("not HTTP/1")
    return method.upper(), target, _headers(lines[1:])


def _headers(lines: list[str]) -> list[tuple[str, str]]:
    found = []
    for line in lines:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or name != name.strip():
            raise ValueError("a malformed header")
        found.append((name.lower(), value.strip()))
    return found


async def _answer_head(
    up_reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[int, list[tuple[str, str]], bytes]:
    """The final answer's status, headers and head (interim 1xx answers passed to the client)."""
    while True:
        head = await up_reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        if status == 100 or status in range(102, 200):
            writer.write(head)
            continue
        if status == 101:
            raise ValueError("protocol upgrades are not relayed")
        return status, _headers(lines[1:]), head


def _relayed_head(head: bytes) -> bytes:
    """The answer's head for the client: the connection closes after it."""
    lines = head.decode("latin-1").split("\r\n")
    kept = [line for line in lines[1:] if line and line.partition(":")[0].strip().lower() not in HOP_BY_HOP]
    return ("\r\n".join([lines[0], *kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1")


def _answer_limit(method: str, headers: list[tuple[str, str]], default: int) -> int:
    """How much of an answer the route may read: the range a ranged GET asked for, else `default`."""
    requested = next((v for k, v in headers if k == "range"), "")
    unit, _, spans = requested.partition("=")
    first, dash, last = spans.partition("-")
    if method == "GET" and unit.strip() == "bytes" and dash and first.isdigit() and last.isdigit():
        return max(0, int(last) - int(first) + 1)
    return default


def _too_large(length: str, limit: int) -> str:
    return (
        f"the destination's answer ({length} bytes) is larger than the {limit} bytes a client may read "
        "(BATCH_EXPORTS_DESTINATION_MAX_ANSWER_MB)"
    )


def _answer(status: int, message: str, headers: list[tuple[str, str]]) -> bytes:
    body = message.encode()
    reason = {407: "Proxy Authentication Required", 502: "Bad Gateway"}[status]
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: text/plain; charset=utf-8", f"Content-Length: {len(body)}",
             "Connection: close", *(f"{k}: {v}" for k, v in headers)]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The request's body, as the client sends it, until it stops."""
    with contextlib.suppress(OSError, RuntimeError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()


async def _relay_body(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, length: int | None, limit: int
) -> int:
    """Pass on `length` bytes (or up to the end), stopping once past `limit`; the bytes passed."""
    sent = 0
    while length is None or sent < length:
        data = await reader.read(CHUNK if length is None else min(CHUNK, length - sent))
        if not data:
            break
        sent += len(data)
        if sent > limit:
            break
        writer.write(data)
        await writer.drain()
    return sent


async def _relay_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
    idle_seconds: float,
) -> None:
    """Bytes both ways until both ends are done, or until nothing moved either way for `idle_seconds`."""
    loop = asyncio.get_running_loop()
    last = [loop.time()]

    async def one_way(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            while data := await src.read(CHUNK):
                last[0] = loop.time()
                dst.write(data)
                await dst.drain()
            if dst.can_write_eof():
                dst.write_eof()

    both: Any = asyncio.gather(one_way(reader, up_writer), one_way(up_reader, writer))
    while not both.done():
        await asyncio.wait([both], timeout=max(0.1, last[0] + idle_seconds - loop.time()))
        if not both.done() and loop.time() - last[0] >= idle_seconds:
            both.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await both
            return
