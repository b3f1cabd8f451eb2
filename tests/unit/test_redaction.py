"""Redaction: a secret is removed from a message as it is and in every escaped form a server may echo it in."""

import json
import time
from urllib.parse import quote, quote_plus

from hypothesis import given
from hypothesis import strategies as st

from connectors.destinations.redaction import redact


def echoes(secret: str) -> list[str]:
    """A secret as servers and libraries echo it: raw, JSON (Python's, with `/` escaped, every character as
    `\\uXXXX`, nested twice), percent-encoded (once, twice, form-encoded)."""
    as_json = json.dumps(secret)[1:-1]
    return [
        secret,
        as_json,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        as_json.replace("/", "\\/"),
        "".join(f"\\u{unit:04X}" for unit in _utf16(secret)),
        json.dumps(as_json)[1:-1],
        quote(secret, safe=""),
        quote(quote(secret, safe=""), safe=""),
        quote_plus(secret),
    ]


def _utf16(text: str) -> list[int]:
    data = text.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def test_the_escaped_forms_of_a_token_are_redacted() -> None:
    token = "tok/LEAK/3e1x"
    every = "".join(f"\\u{ord(c):04x}" for c in token)
    for echoed in ("tok\\/LEAK\\/3e1x", every, every.upper().replace("\\U", "\\u"), "tok%2FLEAK%2F3e1x",
                   "tok%2fLEAK%2f3e1x", "tok%252FLEAK%252F3e1x", 'tok\\\\\\/LEAK\\\\\\/3e1x'):  # fmt: skip
        assert redact(f'{{"detail": "bad token {echoed}"}}', [token]) == '{"detail": "bad token [redacted]"}'


@given(
    secret=st.text(st.characters(exclude_categories=["Cs"]), min_size=6, max_size=40),
    before=st.text(max_size=10),
    after=st.text(max_size=10),
)
def test_no_echo_of_a_secret_survives(secret: str, before: str, after: str) -> None:
    for echoed in echoes(secret):
        shown = redact(f"{before}<{echoed}>{after}", [secret])
        assert f"<{echoed}>" not in shown and "[redacted]" in shown, (echoed, shown)


def test_a_short_secret_only_where_it_stands_alone() -> None:
    assert redact('user "ed" (\\u0065\\u0064) edited', ["ed"]) == 'user "[redacted]" ([redacted]) edited'


def test_no_secret_or_message_makes_redaction_slow() -> None:
    """Forms are replaced as plain strings: a secret and a message built to make a pattern backtrack take no
    longer than any other."""
    secret = "\\" * 500 + "%25" * 300
    started = time.monotonic()
    shown = redact("\\" * 20_000 + "%25" * 20_000 + "\\u005c" * 5_000, [secret])
    assert time.monotonic() - started < 1, "redaction took too long"
    assert len(shown) > 0
