"""What a request brings in, bounded: its body and its query string.

A body arrives as sent (aiohttp's own inflation is off: it inflates on the event loop and ahead of need), at
most `BATCH_EXPORTS_MAX_BODY_MB` of it; a gzip (or deflate) body is inflated in a thread, as a stream that
stops past the same limit, and at most `INFLATIONS_AT_ONCE` bodies inflate at a time in a process, so many
small bombs cannot add up. JSON is parsed strictly: no NaN or Infinity, no number out of a float's range,
no NUL character and no unpaired surrogate in any string (PostgreSQL could store none of them), no
nesting deeper than `MAX_DEPTH` levels. An integer beyond 64 bits is read as the nearest float (as a
JavaScript client reads it). A query string or path with NUL is refused too.
"""

import asyncio
import concurrent.futures
import functools
import weakref
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web

GZIP_MAGIC = b"\x1f\x8b"
INFLATIONS_AT_ONCE = 2
INFLATE_STEP = 2**20
PARSE_INLINE_BYTES = 256 * 2**10
"""Bodies up to this size are parsed on the event loop (a fraction of a millisecond); larger ones in a thread."""
MAX_DEPTH = 254
"""How deeply a body may nest: orjson's encoder refuses deeper values, and encoding the value again (in native
code, about a tenth of what parsing costs) is how the depth is measured."""

T = TypeVar("T")
_REQUEST_WORK = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="gateway-request")
"""The gateway's own threads for a request's CPU work (inflating, parsing, validating a large body). The
process's default executor is shared with whatever else runs there (a worker's destination clients in `make dev`
and the tests, each blocking a thread on the network): filled by them, it would hold every request that inflates.
"""


async def off_the_loop(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` on the gateway's own request threads, the event loop serving meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(_REQUEST_WORK, functools.partial(function, *args))


_slots: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = weakref.WeakKeyDictionary()


class BodyRejected(Exception):
    """A body that cannot be taken: `status` (400, 413, 415), `code` and `detail` for the error response."""

    def __init__(self, status: int, detail: str, code: str) -> None:
        super().__init__(detail)
        self.status, self.detail, self.code = status, detail, code


def inflate(data: bytes, limit: int, wbits: int = 16 + zlib.MAX_WBITS) -> bytes:
    """One or more concatenated gzip members (or zlib streams), inflated to at most `limit` bytes."""
    out: list[bytes] = []
    size, rest = 0, data
    while rest:
        inflater = zlib.decompressobj(wbits=wbits)
        pending = rest
        try:
            while pending and not inflater.eof:
                piece = inflater.decompress(pending, INFLATE_STEP)
                size += len(piece)
                if size > limit:
                    raise BodyRejected(413, f"The body inflates to more than {limit // 2**20} MiB.", "too_large")
                out.append(piece)
                pending = inflater.unconsumed_tail
        except zlib.error as error:
            raise BodyRejected(400, f"The body is not valid compressed data: {error}", "parse_error") from None
        if not inflater.eof:
            raise BodyRejected(400, "The compressed body is truncated.", "parse_error")
        rest = inflater.unused_data
        if rest and not (wbits > zlib.MAX_WBITS and rest.startswith(GZIP_MAGIC)):
            raise BodyRejected(400, "The body has bytes after its compressed data.", "parse_error")
    return b"".join(out)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, inflated when it is compressed (by `Content-Encoding`, or bare gzip as PostHog's
    `?compression=gzip-js` sends it), at most `limit` bytes either way."""
    try:
        raw = await request.read()  # aiohttp refuses more than client_max_size bytes of it as sent
    except web.HTTPRequestEntityTooLarge:
        raise BodyRejected(413, f"The body exceeds {limit // 2**20} MiB.", "too_large") from None
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip") or (encoding == "identity" and raw.startswith(GZIP_MAGIC)):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS
    elif encoding == "identity":
        return raw
    else:
        raise BodyRejected(415, f"Content-Encoding '{encoding[:40]}' is not supported; use gzip.", "unsupported")
    loop = asyncio.get_running_loop()
    slots = _slots.setdefault(loop, asyncio.Semaphore(INFLATIONS_AT_ONCE))
    async with slots:
        return await off_the_loop(inflate, raw, limit, wbits)


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def loads(data: bytes) -> Any:
    """Strict JSON (see the module); BodyRejected(400) for anything else."""
    try:  # orjson refuses NaN, Infinity, numbers beyond a float, unpaired surrogates and nesting past 1,024
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise BodyRejected(400, f"The body is not valid JSON: {_reason(error)}.", "parse_error") from None
    try:
        orjson.dumps(value)
    except orjson.JSONEncodeError:
        raise BodyRejected(400, f"The body is not acceptable JSON: it nests deeper than {MAX_DEPTH} levels.",
                           "parse_error") from None  # fmt: skip
    # The parser lets `\u0000` through: the walk looks for it only when the bytes show one may be there.
    if b"\\u0000" in data and _has_nul(value):
        detail = "a string holds a NUL character (\\u0000), which cannot be stored"
        raise BodyRejected(400, f"The body is not acceptable JSON: {detail}.", "parse_error")
    return value


def _reason(error: orjson.JSONDecodeError) -> str:
    where = f"line {error.lineno} column {error.colno}"
    if "infinity" in error.msg:  # orjson: "number is infinity when parsed as double"
        return f"a number is out of range ({where})"
    if error.doc.startswith(("NaN", "Infinity"), error.pos):  # `pos` counts characters of `doc`
        return f"NaN and Infinity are not JSON numbers ({where})"
    return f"{error.msg} ({where})"


async def read_json(request: web.Request, limit: int) -> Any:
    body = await read_body(request, limit)
    if len(body) <= PARSE_INLINE_BYTES:
        return loads(body)
    return await off_the_loop(loads, body)


@web.middleware
async def refuse_nul(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A path or query string with NUL (which no stored text may hold) is a 400 before any handler runs."""
    if "\x00" in request.path or any("\x00" in key or "\x00" in value for key, value in request.query.items()):
        body = {"type": "validation_error", "code": "invalid_input", "attr": None,
                "detail": "The path or query string holds a NUL character."}  # fmt: skip
        return web.json_response(body, status=400)
    return await handler(request)
