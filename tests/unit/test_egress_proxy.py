"""The egress proxy's small rules: how much of an answer a route may read, what the client is told of an answer's
head, and that the process's secret is redacted wherever a client quotes its proxy URL."""

from connectors.destinations.network.proxy import EgressProxy, _answer_limit, _relayed_head


def test_a_ranged_read_may_read_its_range_and_anything_else_the_bound() -> None:
    assert _answer_limit("GET", [("range", "bytes=100-199")], 10**6) == 100
    assert _answer_limit("GET", [("range", "bytes=100-")], 10**6) == 10**6
    assert _answer_limit("GET", [], 10**6) == 10**6
    assert _answer_limit("PUT", [("range", "bytes=0-9")], 10**6) == 10**6


def test_the_client_is_told_the_connection_closes_after_the_answer() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n"
    assert _relayed_head(head) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"


def test_the_proxy_secret_is_redacted() -> None:
    proxy = EgressProxy()
    quoted = f"error sending request via http://r1:{proxy.secret}@127.0.0.1:4242"
    assert proxy.secret not in proxy.redact(quoted) and "[redacted]" in proxy.redact(quoted)
