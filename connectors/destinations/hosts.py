"""Which hosts a destination may reach: not this network's own (loopback, private, link-local, ...)
unless `BATCH_EXPORTS_ALLOW_PRIVATE_DESTINATIONS` says so, so an export cannot be aimed inside."""

import asyncio
import ipaddress
import socket

from connectors.destinations.base import DestinationConfig, DestinationUserError


async def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []  # unresolvable now: the run will say so
    return [ipaddress.ip_address(info[4][0]) for info in infos]


async def refused(host: str, allow_private: bool) -> str | None:
    """Why `host` may not be a destination, or None."""
    if allow_private:
        return None
    for address in await _addresses(host):
        if not address.is_global:
            return (
                f"{host} is a private, loopback or otherwise internal address ({address}); destinations must be "
                "reachable on the internet (BATCH_EXPORTS_ALLOW_PRIVATE_DESTINATIONS allows others)"
            )
    return None


async def ensure_allowed_host(config: DestinationConfig, allow_private: bool) -> None:
    """Refuse (as the user's error) a destination host this service may not reach."""
    remote = config.remote_host()
    if remote and (problem := await refused(remote[0], allow_private)):
        raise DestinationUserError(problem)
