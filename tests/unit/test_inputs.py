"""Request bodies: strict JSON, and inflation that stops at the limit."""

import gzip
import zlib

import pytest

from api.inputs import BodyRejected, inflate, loads


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"[NaN]", "NaN and Infinity are not JSON numbers"),
        (b"[Infinity]", "NaN and Infinity are not JSON numbers"),
        ('["\u00e9", -Infinity]'.encode(), "NaN and Infinity are not JSON numbers (line 1 column 8)"),
        (b"[1e400]", "out of range"),
        (b'{"a": -1E+0309 }', "out of range"),
        (b"[" + b"9" * 400 + b".0]", "out of range"),
        (b'["a\\u0000b"]', "NUL"),
        (b'{"k\\u0000": 1}', "NUL"),
        (b'["\\ud800"]', "not valid JSON"),
        (b"[" * 50_000 + b"]" * 50_000, "not valid JSON"),
        (b"[" * 255 + b"]" * 255, "nests deeper than 254 levels"),
        (b'{"a": ' * 255 + b"1" + b"}" * 255, "nests deeper than 254 levels"),
        (b"\xef\xbb\xbf{}", "not valid JSON"),
        ('{"a": 1}'.encode("utf-16"), "not valid JSON"),
        (b'["\xff"]', "not valid JSON"),
        (b'["a\x00b"]', "not valid JSON"),
        (b"[" + b"1" * 5000 + b"]", "not valid JSON"),
    ],
)
def test_json_the_store_could_not_hold_is_refused(data: bytes, says: str) -> None:
    with pytest.raises(BodyRejected) as refused:
        loads(data)
    assert refused.value.status == 400 and says in refused.value.detail, refused.value.detail


def test_ordinary_json_passes() -> None:
    assert loads(b'{"a": [1, 2.5, "Infinity", "4e123", "\\\\u0000", null, true], "b": 1e300}') == {
        "a": [1, 2.5, "Infinity", "4e123", "\\u0000", None, True],
        "b": 1e300,
    }


def test_json_nests_up_to_the_limit() -> None:
    assert loads(b"[" * 254 + b"]" * 254) is not None


def test_integers_beyond_64_bits_are_read_as_floats() -> None:
    assert loads(b"[18446744073709551615, 18446744073709551616]") == [2**64 - 1, float(2**64)]


def test_inflation_stops_past_the_limit() -> None:
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join(deflater.compress(bytes(2**20)) for _ in range(64)) + deflater.flush()  # 64 MiB of zeros
    with pytest.raises(BodyRejected) as refused:
        inflate(bomb, 2**20)
    assert refused.value.status == 413


def test_inflation_takes_every_member_and_nothing_else() -> None:
    assert inflate(gzip.compress(b"ab") + gzip.compress(b"cd"), 100) == b"abcd"
    assert inflate(zlib.compress(b"plain zlib"), 100, wbits=zlib.MAX_WBITS) == b"plain zlib"
    for broken in (gzip.compress(b"abc")[:-3], gzip.compress(b"abc") + b"trailing", b"\x1f\x8bnot gzip"):
        with pytest.raises(BodyRejected) as refused:
            inflate(broken, 100)
        assert refused.value.status == 400
