"""A destination's endpoint, parsed once into scheme, host, port and path; anything else is refused.

Clients parse URLs their own way (Python's `urlparse`, the AWS SDK's, delta-rs's, the Azure SDK's), and a URL
that two parsers read differently (`http://127.0.0.1:18200\\@1.2.3.4/` is 1.2.3.4 to one, 127.0.0.1 to another)
would let the address checked differ from the address connected to. So an endpoint holds nothing a parser
could disagree on: no userinfo, backslash, whitespace, control or non-ASCII character, percent-encoding in the
host or an encoded delimiter in the path, query or fragment. Clients are given `ParsedEndpoint.url`, built from
the parsed parts, never the string as it was typed.

An Azure connection string is parsed the same way: its keys are `Key=value` pairs with known keys, each once,
spelled as Azure spells them (the SDK reads keys without regard to case, the last one winning).
"""

import re
from dataclasses import dataclass

from connectors.destinations.network.hosts import host_problem, literal

SCHEMES = {"http": 80, "https": 443}
_ENCODED_DELIMITERS = re.compile(r"%(2f|5c|40|3a|3f|23|25|00|2e)", re.IGNORECASE)
"""Percent-encoded `/ \\ @ : ? # % NUL .`: a delimiter one decoder sees and another does not."""


@dataclass(frozen=True)
class ParsedEndpoint:
    scheme: str
    host: str
    port: int
    path: str
    """Empty, or starting with '/'; no trailing '/'."""

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The endpoint's normalized form: the one given to clients."""
        return f"{self.scheme}://{self.authority}{self.path}"


def parse_endpoint(url: str, *, path: bool = True) -> ParsedEndpoint:
    """`url` as scheme, host, port and path (`path=False`: none allowed); ValueError saying what is wrong."""
    if any(not 0x21 <= ord(c) <= 0x7E for c in url):
        raise ValueError("must not contain whitespace, control or non-ASCII characters")
    if "\\" in url:
        raise ValueError("must not contain a backslash")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise ValueError("must start with http:// or https://")
    if "?" in rest or "#" in rest:
        raise ValueError("must not have a query (?) or a fragment (#)")
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        raise ValueError("must not contain user information (an '@' before the host)")
    if "%" in authority:
        raise ValueError("must not contain percent-encoding in its host or port")
    if _ENCODED_DELIMITERS.search(tail):
        raise ValueError("must not contain percent-encoded delimiters (such as %2f, %5c or %40)")
    if "@" in tail:
        raise ValueError("must not contain an '@'")
    host, port = _host_and_port(authority, SCHEMES[scheme.lower()])
    tail = ("/" + tail).rstrip("/") if slash else ""
    if tail and not path:
        raise ValueError("must not have a path: give scheme, host and port only")
    if "//" in tail or any(part in (".", "..") for part in tail.split("/")):
        raise ValueError("must not contain empty, '.' or '..' path segments")
    return ParsedEndpoint(scheme.lower(), host, port, tail)


def _host_and_port(authority: str, default_port: int) -> tuple[str, int]:
    if authority.startswith("["):
        host, bracket, after = authority[1:].partition("]")
        if not bracket or (after and not after.startswith(":")) or literal(host) is None:
            raise ValueError("has a malformed IPv6 address in brackets")
        port_text = after[1:] if after else ""
    else:
        host, _, port_text = authority.partition(":")
        if ":" in port_text:
            raise ValueError("has more than one ':' in its host and port (an IPv6 address goes in brackets)")
    if not host:
        raise ValueError("has no host")
    if problem := host_problem(host):
        raise ValueError(problem)
    port = default_port
    if port_text or authority.endswith(":"):
        if not port_text.isdigit() or not 0 < int(port_text) < 65536 or len(port_text) > 5:
            raise ValueError("has a port that is not a number from 1 to 65535")
        port = int(port_text)
    return host.lower(), port


AZURE_KEYS = (
    "DefaultEndpointsProtocol", "AccountName", "AccountKey", "BlobEndpoint", "EndpointSuffix",
    "SharedAccessSignature", "QueueEndpoint", "TableEndpoint", "FileEndpoint",
)  # fmt: skip
_AZURE_SPELLING = {key.lower(): key for key in AZURE_KEYS}


def connection_string_settings(connection_string: str) -> dict[str, str]:
    """An Azure connection string's settings; ValueError for a setting that is not `Key=value`, an unknown
    key, a key spelled in another case, or a key given twice."""
    settings: dict[str, str] = {}
    for part in connection_string.split(";"):
        if not part.strip():
            continue
        key, equals, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not equals or not key:
            raise ValueError("must be settings of the form Key=value separated by ';'")
        spelled = _AZURE_SPELLING.get(key.lower())
        if spelled is None:
            raise ValueError(f"has an unknown setting '{key[:40]}'; known: {', '.join(AZURE_KEYS)}")
        if spelled != key:
            raise ValueError(f"spells the setting {spelled} as '{key[:40]}': write {spelled}")
        if key in settings:
            raise ValueError(f"gives the setting {key} more than once")
        settings[key] = value
    return settings
