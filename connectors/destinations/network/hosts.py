"""Which addresses a destination may reach, and the one way a host becomes addresses to connect to.

Unless `BATCH_EXPORTS_ALLOW_PRIVATE_DESTINATIONS`, only global unicast addresses are reached: not loopback,
private, link-local, multicast, reserved, nor any IPv6 form that embeds one of those (IPv4-mapped and
-compatible, NAT64, 6to4, Teredo). Either way, a host is a DNS name or a numeric address, never a socket
path, and it resolves once: every address it resolves to is checked, and a client connects to those checked
addresses only (`egress` does the same for HTTP clients), so no second lookup can answer differently.
A database of this service (`Context.protected_databases`) is never a destination, whatever the setting.
"""

import asyncio
import errno
import ipaddress
import re
import socket

from connectors.destinations.base import Context, DestinationConfig, DestinationUserError, Endpoint, ProtectedDatabase

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
"""RFC 6052's well-known prefix: an IPv4 address in the last 32 bits (DNS64 networks use it for the internet)."""
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIXTOFOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_MORE_V6 = tuple(ipaddress.ip_network(n) for n in ("3fff::/20", "5f00::/16"))  # documentation, SRv6
_MORE_V4 = tuple(ipaddress.ip_network(n) for n in ("192.0.0.0/24", "192.88.99.0/24"))  # IETF protocols, 6to4 relays

_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}\.?$){_LABEL}(\.{_LABEL})*\.?$")
_NUMERIC_LAST_LABEL = re.compile(r"(^|\.)(0x[0-9a-f]*|[0-9]+)\.?$", re.IGNORECASE)
"""No top-level domain is numeric: such a name is an odd spelling of an IPv4 address (`127.1`, `0x7f.1`)."""

POLICY_SETTING = "BATCH_EXPORTS_ALLOW_PRIVATE_DESTINATIONS"


class AddressRefused(OSError):
    """An address the policy refuses: raised where a client is about to connect (see `egress`)."""

    def __init__(self, address: object, why: str) -> None:
        super().__init__(errno.EACCES, f"refused to connect to {address}: {why}")


def refusal(address: str) -> str | None:
    """Why a numeric address is not on the internet (so a destination may not reach it), or None."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not a numeric address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded: ipaddress.IPv4Address | None = None
        if ip.ipv4_mapped is not None:
            embedded = ip.ipv4_mapped
        elif ip in _IPV4_COMPATIBLE:
            return "an IPv4-compatible, unspecified or loopback IPv6 address"
        elif ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip in _NAT64_LOCAL:
            return "a local-use NAT64 address"
        elif ip in _SIXTOFOUR:
            embedded = ip.sixtofour
        elif ip in _TEREDO:
            return "a Teredo address"
        if embedded is not None:
            why = refusal(str(embedded))
            return f"an address that embeds {embedded}, {why}" if why else None
        if ip not in _GLOBAL_UNICAST_V6 or not ip.is_global or any(ip in net for net in _MORE_V6):
            return "a private, loopback or otherwise internal address"
        return None
    if not ip.is_global or ip.is_multicast or any(ip in net for net in _MORE_V4):
        return "a private, loopback or otherwise internal address"
    return None


def address_refusal(address: str, allow_private: bool) -> str | None:
    """`refusal` under the setting: with private destinations allowed, any numeric address passes."""
    if allow_private:
        try:
            ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return "not a numeric address"
        return None
    return refusal(address)


def literal(host: str) -> IP | None:
    """`host` as a numeric address, when it is one in canonical form."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def host_problem(host: str) -> str | None:
    """Why `host` is not a DNS name or a numeric address (a socket path, a list, an odd spelling), or None."""
    if literal(host) is not None:
        return None
    if not _HOSTNAME.match(host) or _NUMERIC_LAST_LABEL.search(host):
        return f"'{host[:100]}' is not a host name or an IP address"
    return None


class HostRefused(DestinationUserError):
    """A destination host the policy refuses, that does not resolve, or that is not a host; `field` names it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


async def resolve(host: str, port: int, *, allow_private: bool, field: str = "host") -> list[str]:
    """The numeric addresses a client may connect to for `host`, every one checked; HostRefused otherwise.

    One refused address refuses the host: a name answering with both public and internal addresses is
    one to distrust, not to pick from.
    """
    if problem := host_problem(host):
        raise HostRefused(f"{problem}: give a DNS name or an IP address", field)
    if (ip := literal(host)) is not None:
        addresses = [str(ip)]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            if isinstance(error, socket.gaierror) and error.errno == socket.EAI_AGAIN:
                raise  # the resolver is unavailable for now: worth another attempt
            raise HostRefused(f"{host} does not resolve to an address", field) from None
        families = (socket.AF_INET, socket.AF_INET6)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos if info[0] in families))
        if not addresses:
            raise HostRefused(f"{host} does not resolve to an IP address", field)
    refused = [(a, why) for a in addresses if (why := address_refusal(a, allow_private))]
    if refused:
        what = (
            f"{host} is {refused[0][1]}"
            if literal(host) is not None
            else f"{host} resolves to {', '.join(f'{a} ({why})' for a, why in refused)}"
        )
        raise HostRefused(
            f"{what}; destinations must be reachable on the internet ({POLICY_SETTING} allows others)", field
        )
    return addresses


def _unmapped(address: str) -> IP:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip


def _same_machine(a: str, b: str) -> bool:
    """Whether two addresses reach the same host: equal, or both this machine's (loopback, unspecified)."""
    x, y = _unmapped(a), _unmapped(b)
    return x == y or all(ip.is_loopback or ip.is_unspecified for ip in (x, y))


async def own_database_at(
    addresses: list[str], port: int, protected: tuple[ProtectedDatabase, ...], database: str | None = None
) -> bool:
    """Whether `addresses:port` (with `database`, when given) is one of the service's own databases."""
    for own in protected:
        if own.port != port or (database is not None and own.database != database):
            continue
        try:
            own_addresses = await resolve(own.host, own.port, allow_private=True)
        except (HostRefused, OSError):
            own_addresses = []
        if not own_addresses or any(_same_machine(a, b) for a in addresses for b in own_addresses):
            return True
    return False


async def _protected(endpoint: Endpoint, addresses: list[str], context: Context) -> bool:
    return await own_database_at(addresses, endpoint.port, context.protected_databases, endpoint.database)


async def allowed_addresses(config: DestinationConfig, context: Context) -> list[str]:
    """The checked addresses of the destination's endpoint (none for a local destination)."""
    endpoint = config.endpoint()
    if endpoint is None:
        return []
    addresses = await resolve(endpoint.host, endpoint.port, allow_private=context.allow_private, field=endpoint.field)
    if endpoint.database is not None and await _protected(endpoint, addresses, context):
        raise HostRefused(
            f"{endpoint.host}:{endpoint.port}/{endpoint.database} is a database of this service itself; "
            "it cannot be a destination",
            endpoint.field,
        )
    return addresses


async def ensure_allowed_host(config: DestinationConfig, context: Context) -> None:
    """Refuse (as the user's error, naming the field) a destination endpoint this service may not reach."""
    await allowed_addresses(config, context)
