"""ClickHouse's HTTP interface: the query in the body, its parameters and settings in the URL, the answer
streamed back.

Every value from outside is a query parameter (`{name:Type}` in the SQL, `param_name` in the URL), never SQL
text. Each query carries its limits as settings: `max_execution_time` and `max_memory_usage`. The server is
the operator's, so the destinations' address policy does not apply; TLS is verified as usual.

A record stream (`FORMAT ArrowStream`) is read in a thread, by pyarrow straight from the socket. A stream
cut in the middle (the server restarted, the connection dropped) breaks the chunked encoding, and an error
the server met after it had begun answering follows the Arrow data as text: both are raised, never taken for
the end of the data.
"""

import datetime as dt
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import requests
import urllib3

CONNECT_SECONDS = 10.0
_CODE = re.compile(rb"Code: (\d+)\.")


@dataclass(frozen=True)
class ClickHouseServer:
    url: str
    """`http(s)://host:port` of its HTTP interface."""
    user: str
    password: str = field(repr=False)
    database: str = "default"
    statement_timeout_seconds: float = 0
    """`max_execution_time` of each query (0: the server's own)."""
    max_memory_bytes: int = 0
    """`max_memory_usage` of each query (0: the server's own)."""

    def settings(self) -> dict[str, str]:
        settings = {}
        if self.statement_timeout_seconds:
            settings["max_execution_time"] = f"{self.statement_timeout_seconds:g}"
        if self.max_memory_bytes:
            settings["max_memory_usage"] = str(self.max_memory_bytes)
        return settings


class ClickHouseError(Exception):
    """ClickHouse refused or failed a query: its exception code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    TIMEOUT_CODES = frozenset({159, 160})  # TIMEOUT_EXCEEDED, TOO_SLOW

    @property
    def timed_out(self) -> bool:
        return self.code in self.TIMEOUT_CODES


class ClickHouseCut(Exception):
    """The answer stopped in the middle: the connection dropped or the server went away."""


class Params:
    """Bound parameters of a ClickHouse query being built: each value becomes `{pN:Type}` in the SQL and
    `param_pN` in the URL, in ClickHouse's text form for that type."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def __call__(self, value: Any, type_: str) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = text_of(value)
        return f"{{{name}:{type_}}}"


def text_of(value: Any) -> str:
    """`value` as a query parameter's text (the escaped form ClickHouse parses for the parameter's type)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, list | tuple):
        return "[" + ",".join(_quoted(item) for item in value) + "]"
    if isinstance(value, uuid.UUID | int | float):
        return str(value)
    return _escaped(str(value))


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _quoted(value: Any) -> str:
    if isinstance(value, str):
        return "'" + _escaped(value).replace("'", "\\'") + "'"
    return text_of(value)


class ClickHouse:
    """Queries to one server, over a session of kept connections."""

    def __init__(self, server: ClickHouseServer) -> None:
        self.server = server
        self._http = requests.Session()
        self._http.auth = (server.user, server.password)
        self._http.trust_env = False  # no proxy or .netrc from the worker's environment

    def post(self, sql: str, params: Mapping[str, str], fmt: str, timeout: float | None = None) -> requests.Response:
        """The answer to `sql`, its body not read yet; a refused query raises `ClickHouseError`."""
        url_params = {"database": self.server.database, "default_format": fmt, **self.server.settings()}
        url_params.update({f"param_{name}": value for name, value in params.items()})
        try:
            response = self._http.post(self.server.url, params=url_params, data=sql.encode(), stream=True,
                                       timeout=(CONNECT_SECONDS, timeout), allow_redirects=False)  # fmt: skip
        except requests.ConnectionError as error:
            raise ClickHouseCut(f"ClickHouse did not answer at {self.server.url}: {_reason(error)}") from None
        if response.status_code != 200:
            code = int(response.headers.get("X-ClickHouse-Exception-Code") or 0)
            message = response.text.strip()[:2000] or f"HTTP {response.status_code}"
            response.close()
            raise ClickHouseError(code, message)
        return response

    def rows(self, sql: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """A small answer, as rows (`JSONEachRow`)."""
        with self.post(sql, params, "JSONEachRow", timeout=self.server.statement_timeout_seconds or None) as answer:
            try:
                return [requests.compat.json.loads(line) for line in answer.iter_lines() if line]
            except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
                raise ClickHouseCut(f"the answer from ClickHouse was cut: {_reason(error)}") from None

    def close(self) -> None:
        self._http.close()


class ArrowQuery:
    """One `FORMAT ArrowStream` query, read in the reader's thread (see `read_ahead.Query`)."""

    def __init__(self, clickhouse: ClickHouse, sql: str, params: Mapping[str, str]) -> None:
        self.clickhouse, self.sql, self.params = clickhouse, sql, params
        self._response: requests.Response | None = None
        self._lock = threading.Lock()
        self._cancelled = False

    def batches(self) -> Iterator[pa.RecordBatch]:
        response = self.clickhouse.post(self.sql, self.params, "ArrowStream")
        with self._lock:
            self._response = response
            if self._cancelled:
                response.close()
        body = _Remembered(response.raw)
        try:
            with pa.ipc.open_stream(body) as reader:
                yield from reader
            rest = response.raw.read(2000)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
            raise ClickHouseCut(f"the answer from ClickHouse was cut in the middle: {_reason(error)}") from None
        except pa.ArrowInvalid:  # not Arrow: an error the server wrote after it had begun answering
            rest = body.last + response.raw.read(2000)
        if rest.strip():
            raise _late_error(rest)

    def cancel(self) -> None:
        """Closing the connection ends the query: ClickHouse stops a query whose client went away."""
        with self._lock:
            self._cancelled = True
            if self._response is not None:
                self._response.close()

    def end(self, clean: bool) -> None:
        with self._lock:
            if self._response is not None and not clean:
                self._response.close()

    async def lost(self) -> str | None:
        return None  # a dropped connection is noticed by the next read


class _Remembered:
    """A body read by pyarrow, its last bytes kept: where Arrow data stops and an error's text begins."""

    def __init__(self, raw: Any) -> None:
        self.raw, self.last = raw, b""

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.raw.read(size)
        self.last = (self.last + data)[-4096:]
        return data

    @property
    def closed(self) -> bool:
        return bool(self.raw.closed)


def _late_error(text: bytes) -> ClickHouseError:
    start = match.start() if (match := _CODE.search(text)) else 0
    message = text[start:].decode(errors="replace").strip()[:2000]
    return ClickHouseError(int(match[1]) if match else 0, f"ClickHouse failed in the middle of the answer: {message}")


def _reason(error: BaseException) -> str:
    """The last cause in a chain of wrapped errors (requests wraps urllib3, which wraps the socket's)."""
    while error.__context__ is not None and not isinstance(error, OSError):
        error = error.__context__
    return str(error) or type(error).__name__
