"""A PostgreSQL server that refuses TLS ('N' to SSLRequest), then asks for the password in clear: the downgrade a
hostile server tries. It records what reaches it.

    python -m tests.support.no_tls_postgres ADDRESS ALLOW_PRIVATE

serves on ADDRESS, has the Postgres destination connect to it (private destinations allowed or not), and prints
`{"error", "ssl_requests", "passwords"}` as JSON.
"""

import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from connectors.destinations.base import Context
from connectors.destinations.warehouses.postgres import PostgresConfig, connect
from entrypoints.embedded import free_port

SSL_REQUEST = 80877103
CLEARTEXT_PASSWORD = 3


@dataclass
class NoTlsServer:
    ssl_requests: int = 0
    passwords: list[str] = field(default_factory=list)
    sessions: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.sessions.add(task)
        try:
            body = await self._startup(reader)
            if int.from_bytes(body[:4], "big") == SSL_REQUEST:
                self.ssl_requests += 1
                writer.write(b"N")
                await writer.drain()
                body = await self._startup(reader)
            writer.write(b"R" + (8).to_bytes(4, "big") + CLEARTEXT_PASSWORD.to_bytes(4, "big"))
            await writer.drain()
            tag = await reader.readexactly(1)
            length = int.from_bytes(await reader.readexactly(4), "big")
            message = await reader.readexactly(length - 4)
            if tag == b"p":
                self.passwords.append(message.rstrip(b"\0").decode(errors="replace"))
            fields = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"
            writer.write(b"E" + (len(fields) + 4).to_bytes(4, "big") + fields)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _startup(reader: asyncio.StreamReader) -> bytes:
        length = int.from_bytes(await reader.readexactly(4), "big")
        return await reader.readexactly(length - 4)


async def main(address: str, allow_private: bool) -> dict[str, object]:
    server, port = NoTlsServer(), free_port()
    listening = await asyncio.start_server(server.handle, address, port)
    config = PostgresConfig(host=address, port=port, database="d", table_name="t", user="u", password="pw-in-clear")
    error = ""
    try:
        conn = await connect(config, Context(files_root=Path("/nonexistent"), allow_private=allow_private))
        await conn.close()
    except Exception as failure:
        error = f"{type(failure).__name__}: {failure}"
    finally:
        listening.close()
        if server.sessions:  # each ends at the client's close
            await asyncio.wait(server.sessions, timeout=5)
    return {"error": error, "ssl_requests": server.ssl_requests, "passwords": server.passwords}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2] == "true"))))
