"""Destinations that misbehave, on loopback: one that answers every request with a body of any size, one that
dribbles its headers, one that keeps a secret and counts who asked for it (also over TLS)."""

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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


def self_signed(directory: Path) -> ssl.SSLContext:
    """A server TLS context for 127.0.0.1 with a certificate of its own (clients must skip verification)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


@contextlib.asynccontextmanager
async def answering_tls(body: bytes, directory: Path) -> AsyncIterator[FarEnd]:
    """`answering`, over TLS (https://127.0.0.1:port)."""
    end = FarEnd("")

    async def answer(request: web.Request) -> web.Response:
        end.hits += 1
        return web.Response(body=body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port, ssl_context=self_signed(directory)).start()
    end.url = f"https://{LOOPBACK}:{port}"
    try:
        yield end
    finally:
        await runner.cleanup()
