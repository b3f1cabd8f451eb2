"""HTTP clients of destinations (aiohttp, and aiobotocore on top of it) that connect only where the policy
allows (`hosts`), to the very addresses that were checked.

Two checks, one on each side of the lookup: the resolver resolves a name once and returns only checked
numeric addresses (so the answer checked is the answer used), and the socket factory refuses any address
that is about to be connected but not allowed, which also covers numeric URLs (aiohttp never asks the
resolver about those) and every redirect hop. Redirects are not followed at all, proxies from the
environment are ignored, and nothing here reads the worker's own credentials. An answer read whole into memory
stops at a bound (`BoundedResponse`: `ClientLimits.answer_bytes`).
"""

import asyncio
import functools
import socket
import ssl
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.httpsession import AIOHTTPSession
from aiohttp.abc import AbstractResolver, ResolveResult

from connectors.destinations.base import ClientLimits
from connectors.destinations.network.hosts import AddressRefused, address_refusal


class PinnedResolver(AbstractResolver):
    """Resolves once with getaddrinfo and returns only addresses the policy allows; one refused address
    refuses the name."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
        results: list[ResolveResult] = []
        for info_family, _, proto, _, sockaddr in infos:
            if info_family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = str(sockaddr[0])
            if why := address_refusal(address, self.allow_private):
                raise AddressRefused(f"{host} ({address})", why)
            results.append(
                ResolveResult(
                    hostname=host, host=address, port=int(sockaddr[1]), family=info_family, proto=proto,
                    flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                )
            )  # fmt: skip
        if not results:
            raise OSError(f"{host} has no IP address")
        return results

    async def close(self) -> None:
        pass


def socket_factory(allow_private: bool) -> Any:
    """The last check, on the exact address a socket is about to connect to."""

    def make(addr_info: Any) -> socket.socket:
        family, kind, proto, _, sockaddr = addr_info
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise AddressRefused(sockaddr, "not an IP socket")
        if why := address_refusal(str(sockaddr[0]), allow_private):
            raise AddressRefused(sockaddr[0], why)
        return socket.socket(family, kind, proto)

    return make


def connector_args(allow_private: bool) -> dict[str, Any]:
    return {"resolver": PinnedResolver(allow_private), "socket_factory": socket_factory(allow_private)}


class AnswerTooLarge(aiohttp.ClientPayloadError):
    """A destination's answer longer than a client may read into memory."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the destination's answer is larger than the {limit} bytes a client may read "
            "(BATCH_EXPORTS_DESTINATION_MAX_ANSWER_MB)"
        )


class BoundedResponse(aiohttp.ClientResponse):
    """An answer whose `read()` (the whole body into memory) stops past `limit` bytes."""

    limit = 64 * 2**20

    async def read(self) -> bytes:
        if self._body is None:
            if self.content_length is not None and self.content_length > self.limit:
                self.close()
                raise AnswerTooLarge(self.limit)
            chunks, size = [], 0
            try:
                async for chunk in self.content.iter_chunked(2**16):
                    size += len(chunk)
                    if size > self.limit:
                        raise AnswerTooLarge(self.limit)
                    chunks.append(chunk)
            except BaseException:
                self.close()
                raise
            self._body = b"".join(chunks)
        return await super().read()


def answer_too_large(error: BaseException) -> AnswerTooLarge | None:
    """The `AnswerTooLarge` behind `error` (a client that wraps it, botocore's "connection closed"), if any."""
    seen: set[int] = set()
    found: BaseException | None = error
    while found is not None and id(found) not in seen:
        if isinstance(found, AnswerTooLarge):
            return found
        seen.add(id(found))
        kwargs = getattr(found, "kwargs", None)
        wrapped = kwargs.get("error") if isinstance(kwargs, dict) else None
        found = wrapped if isinstance(wrapped, BaseException) else (found.__cause__ or found.__context__)
    return None


def bounded(answer_bytes: int) -> type[BoundedResponse]:
    return type("BoundedResponse", (BoundedResponse,), {"limit": answer_bytes})


def http_session(
    allow_private: bool, timeout: aiohttp.ClientTimeout, answer_bytes: int = BoundedResponse.limit
) -> aiohttp.ClientSession:
    """An aiohttp session for a destination: pinned connections, no proxy from the environment, answers read
    whole only up to `answer_bytes`. Each request must pass `allow_redirects=False`."""
    connector = aiohttp.TCPConnector(**connector_args(allow_private))
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, trust_env=False, response_class=bounded(answer_bytes)
    )


class _NoRedirects:
    """An aiohttp session whose requests never follow a redirect (the answer comes back as it is), each within
    an overall deadline."""

    def __init__(self, session: aiohttp.ClientSession, call_seconds: float) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=call_seconds, sock_connect=10)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        if "timeout" in kwargs:  # botocore's own per-read override: keep it, within the deadline
            kwargs["timeout"] = aiohttp.ClientTimeout(total=self._timeout.total, sock_read=kwargs["timeout"].sock_read,
                                                      sock_connect=10)  # fmt: skip
        else:
            kwargs["timeout"] = self._timeout
        return self._session.request(*args, allow_redirects=False, **kwargs)


@functools.cache
def _verifying_context(verify: bool | str) -> ssl.SSLContext:
    """The TLS context that checks a server against the CA bundle `verify` names (True: the default one), built
    once for the process.

    aiobotocore builds one for each client (one per export), loading the bundle's certificates again: about
    35 ms of CPU each time. A context holds no credentials (no client certificate here) and may serve many
    connections at once; a changed bundle is read at the worker's next start."""
    return AIOHTTPSession(verify=verify)._build_verify_context()


class NoRedirectSession(AIOHTTPSession):
    """aiobotocore's HTTP session, with redirects left unfollowed (botocore's own S3 region redirects, which
    it computes from the answer rather than following `Location`, still work), answers bounded, and the
    process's one verifying TLS context."""

    limits = ClientLimits()

    def _build_ssl_contexts(self, proxy_url: Any) -> tuple[Any, Any]:
        if not self._verify or self._cert_file or proxy_url:  # no check, or a certificate or proxy of its own
            return super()._build_ssl_contexts(proxy_url)
        return _verifying_context(self._verify), None

    async def _get_session(self, proxy_url: Any) -> Any:
        session = await super()._get_session(proxy_url)
        session._response_class = bounded(self.limits.answer_bytes)  # aiobotocore makes it: bound its answers
        return _NoRedirects(session, self.limits.call_seconds)


def s3_config(allow_private: bool, limits: ClientLimits) -> AioConfig:
    """The aiobotocore config of a destination's S3 client: pinned connections, no redirects, each call within
    `limits` (time, answer size), no proxy from the environment (`proxies={}`: None would make botocore read
    HTTP(S)_PROXY)."""
    session_class = type("BoundedNoRedirectSession", (NoRedirectSession,), {"limits": limits})
    return AioConfig(
        connector_args=connector_args(allow_private),  # type: ignore[arg-type]
        http_session_cls=session_class,
        proxies={},
    )
