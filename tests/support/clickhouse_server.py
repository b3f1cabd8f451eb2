"""A stand-in for ClickHouse's HTTP layer with the real ClickHouse engine behind it (chdb), for the tests.

No ClickHouse server installs on these machines; the engine does (`chdb`: ClickHouse's own code as a library,
MergeTree storage on disk). This process serves the part of ClickHouse's HTTP interface the ClickHouse source
uses, and nothing more:
- the query in the body (after a `query` URL parameter, if any), `database`, `default_format`, `param_<name>`
  for `{name:Type}` parameters, and any other URL parameter as a setting of that query (`max_execution_time`,
  `max_memory_usage`...);
- basic auth (or the `X-ClickHouse-User`/`X-ClickHouse-Key` headers) for one user;
- errors as ClickHouse sends them: a status, `X-ClickHouse-Exception-Code`, and the message as the body;
- the answer streamed with chunked encoding as the engine produces it; `ArrowStream` as one Arrow IPC stream
  (the engine's blocks rewritten into it as they come).
The source under test is written for a real ClickHouse server; `BATCH_EXPORTS_TEST_CLICKHOUSE_URL` runs the
same tests against one.

Run: `python -m tests.support.clickhouse_server PORT DATA_DIR USER PASSWORD`. Queries run one at a time, in one
engine session (as the tests need, not as a server would).
"""

import asyncio
import base64
import concurrent.futures
import io
import re
import sys
import threading
from collections.abc import Generator, Iterator

import pyarrow as pa
from aiohttp import web
from chdb import session as chdb_session

_CODE = re.compile(r"Code: (\d+)\.")
_STATUS = {62: 400, 27: 400, 6: 400, 53: 400, 47: 404, 60: 404, 81: 404, 159: 500, 241: 500, 516: 403}
"""ClickHouse's HTTP status for some exception codes: a syntax or parameter error is the client's (400), an
unknown column, table or database is not found (404), a failed login is forbidden (403); the rest are 500."""
_STREAMED = re.compile(r"\s*(\(\s*)*(SELECT|WITH)\b", re.IGNORECASE)
_OWN_PARAMETERS = {"query", "database", "default_format", "user", "password", "query_id", "session_id"}


class Engine:
    """The engine, used by one query at a time."""

    def __init__(self, path: str) -> None:
        self.session = chdb_session.Session(path)
        self.lock = threading.Lock()

    def run(
        self, sql: str, fmt: str, database: str, params: dict[str, str], settings: dict[str, str]
    ) -> Generator[bytes, None, None]:
        """The answer's bytes as the engine produces them (a `ChdbError` before the first, on a bad query)."""
        with self.lock:
            self.session.query(f"USE {_identifier(database)}")
            for name in settings:
                self.session.query(f"SET {_identifier(name)} = {{value:String}}", params={"value": settings[name]})
            try:
                if not _STREAMED.match(sql):  # the engine streams only queries; a statement's answer comes whole
                    yield self.session.query(sql, fmt, params=params).bytes()
                else:  # a stream left unread (its reader went away) is cancelled, so the session can go on
                    with self.session.send_query(sql, fmt, params=params) as stream:
                        if fmt == "ArrowStream":
                            yield from _arrow_stream(stream)
                        else:
                            yield from (chunk.bytes() for chunk in stream)
            finally:
                for name in settings:
                    self.session.query(f"SET {_identifier(name)} = DEFAULT")


def _identifier(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not an identifier: {name!r}")
    return name


def _arrow_stream(chunks: Iterator[object]) -> Iterator[bytes]:
    """The engine's Arrow blocks (each chunk a stream of its own) as one IPC stream, written as they come."""
    sink, writer = io.BytesIO(), None
    for chunk in chunks:
        data = chunk.bytes()  # type: ignore[attr-defined]
        if not data:
            continue
        table = pa.ipc.open_stream(data).read_all()
        writer = writer or pa.ipc.new_stream(sink, table.schema)
        for batch in table.to_batches():
            writer.write_batch(batch)
        yield _drained(sink)
    if writer is not None:
        writer.close()
        yield _drained(sink)


def _drained(sink: io.BytesIO) -> bytes:
    written = sink.getvalue()
    sink.seek(0)
    sink.truncate()
    return written


def error_response(message: str) -> web.Response:
    code = int(match[1]) if (match := _CODE.search(message)) else 1002
    return web.Response(status=_STATUS.get(code, 500), text=message.rstrip() + "\n",
                        headers={"X-ClickHouse-Exception-Code": str(code)})  # fmt: skip


async def ping(_: web.Request) -> web.Response:
    return web.Response(text="Ok.\n")


def application(engine: Engine, user: str, password: str) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        given = (request.headers.get("X-ClickHouse-User"), request.headers.get("X-ClickHouse-Key"))
        if (auth := request.headers.get("Authorization", "")).startswith("Basic "):
            name, _, key = base64.b64decode(auth[6:]).decode().partition(":")
            given = (name, key)
        if given != (user, password):
            return error_response(
                f"Code: 516. DB::Exception: {given[0]}: Authentication failed. (AUTHENTICATION_FAILED)"
            )
        query = request.query.get("query", "") + ("\n" if "query" in request.query else "") + await request.text()
        params = {k.removeprefix("param_"): v for k, v in request.query.items() if k.startswith("param_")}
        settings = {k: v for k, v in request.query.items() if k not in _OWN_PARAMETERS and not k.startswith("param_")}
        answer = engine.run(query, request.query.get("default_format", "TabSeparated"),
                            request.query.get("database", "default"), params, settings)  # fmt: skip
        loop = asyncio.get_running_loop()
        # The answer's steps run on a thread of their own, in turn, and so does its close, whatever ends the
        # request (a reader that went away mid-stream): closing it gives the engine back to the next query, which
        # would otherwise wait for the collector to find the abandoned answer.
        steps = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse-answer")
        try:
            try:
                first = await loop.run_in_executor(steps, next, answer, None)
            except Exception as error:  # the engine refused the query: nothing was sent yet
                return error_response(str(error))
            response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            chunk = first
            while chunk is not None:
                if chunk:
                    await response.write(chunk)
                try:
                    chunk = await loop.run_in_executor(steps, next, answer, None)
                except Exception as error:  # mid-stream, as ClickHouse does: the message in the body, then the end
                    await response.write(f"\nCode: {error}\n".encode())
                    break
            await response.write_eof()
            return response
        finally:
            steps.submit(answer.close)  # after any step still running
            steps.shutdown(wait=False)

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_route("*", "/", handle)
    app.router.add_get("/ping", ping)
    return app


def main() -> None:
    port, path, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    web.run_app(application(Engine(path), user, password), host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
