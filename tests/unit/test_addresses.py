"""Which addresses a destination may reach, in every spelling, and which strings are hosts at all."""

import pytest

from connectors.destinations.base import Endpoint, redact
from connectors.destinations.network.hosts import address_refusal, host_problem, refusal

REFUSED = [
    "127.0.0.1", "127.0.0.2", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "239.255.255.250", "255.255.255.255", "192.0.0.9", "192.88.99.1", "192.0.2.1", "198.18.0.1",
    "::1", "::", "::127.0.0.1", "::8.8.8.8", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::7f00:1",
    "64:ff9b::a00:1", "64:ff9b:1::1", "2002:7f00:1::", "2002:a00:1::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "fec0::1", "ff02::1", "ff0e::1", "2001:db8::1",
    "3fff::1", "5f00::1",
]  # fmt: skip
"""Loopback, private, link-local, shared, multicast, reserved and documentation addresses, and the IPv6 forms that
embed one (IPv4-compatible, -mapped, NAT64, 6to4, Teredo); Python calls several of them global."""

ALLOWED = ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1"]


@pytest.mark.parametrize("address", REFUSED)
def test_internal_addresses_are_refused(address: str) -> None:
    assert refusal(address) is not None
    assert address_refusal(address, allow_private=False) is not None
    assert address_refusal(address, allow_private=True) is None  # the setting lets them through


@pytest.mark.parametrize("address", ALLOWED)
def test_internet_addresses_are_allowed(address: str) -> None:
    assert refusal(address) is None


@pytest.mark.parametrize(
    "host",
    ["/var/run/postgresql", "/tmp", "@abstract", "", "a,b", "host name", "127.1", "0x7f.0.0.1", "2130706433",
     "017700000001", "x" * 254, "-leading.example.com", "a..b", "db.example.com/path", "user@db.example.com"],
)  # fmt: skip
def test_only_names_and_numeric_addresses_are_hosts(host: str) -> None:
    assert host_problem(host) is not None


@pytest.mark.parametrize("host", ["db.example.com", "localhost", "db_1.internal", "xn--bcher-kva.example", "::1",
                                  "10.0.0.1", "2001:db8::1", "example.com."])  # fmt: skip
def test_names_and_addresses_are_hosts(host: str) -> None:
    assert host_problem(host) is None


def test_an_endpoint_of_a_url_has_its_port() -> None:
    assert Endpoint.of_url("https://s3.example.com", "endpoint_url") == Endpoint("s3.example.com", "endpoint_url", 443)
    assert Endpoint.of_url("http://[::1]:9000/x", "url") == Endpoint("::1", "url", 9000)
    assert Endpoint.of_url("http://h:99999/", "url").port == 0  # not a port: refused by the checks


def test_redaction_removes_every_secret_value() -> None:
    message = 'password authentication failed for user "exporter_1" (password hunter2-long, user ed): ed edited'
    shown = redact(message, ["exporter_1", "hunter2-long", "ed"])
    assert "exporter_1" not in shown and "hunter2-long" not in shown
    assert shown.count("[redacted]") == 4 and "edited" in shown  # a short secret only where it stands alone
    assert redact("nothing to hide", []) == "nothing to hide"
