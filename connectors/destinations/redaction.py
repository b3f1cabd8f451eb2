"""Secrets out of messages: every value of a config's secret fields, as it is and as a server or library may
echo it escaped, is replaced by `[redacted]`.

The escaped forms are a fixed list of strings computed from the secret (`echoes`), each removed by plain
replacement: no pattern built from a secret, so no secret and no message can make redaction slow. They cover
JSON (Python's, with `/` escaped as `\\/`, with every character as `\\uXXXX` in either case, Go's `\\u003c` for
`<>&`, and JSON inside JSON), Python's `repr`, and percent-encoding (with or without `/`, `+` for a space, either
case, and encoded twice).
"""

import functools
import json
import re
from urllib.parse import quote, quote_plus

SHORT_SECRET = 6
"""A secret shorter than this is redacted only where it stands alone (not inside a longer word)."""
_GO_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def _utf16_units(text: str) -> list[int]:
    data = text.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def _json_forms(secret: str) -> set[str]:
    forms = {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms |= {form.replace("/", "\\/") for form in forms}
    forms |= {"".join(_GO_HTML.get(c, c) for c in form) for form in forms}
    every = "".join(f"\\u{unit:04x}" for unit in _utf16_units(secret))
    return forms | {every, every.upper().replace("\\U", "\\u")}


def _percent_forms(secret: str) -> set[str]:
    once = {quote(secret, safe=""), quote(secret, safe="/"), quote_plus(secret, safe="")}
    forms = once | {quote(form, safe="") for form in once}
    return forms | {re.sub(r"%(?:25)?[0-9A-F]{2}", lambda m: m[0].lower(), form) for form in forms}


@functools.lru_cache(maxsize=256)
def echoes(secret: str) -> tuple[str, ...]:
    """`secret` and its escaped forms, longest first."""
    first = _json_forms(secret) | {repr(secret)[1:-1], ascii(secret)[1:-1]}
    nested = {json.dumps(form)[1:-1] for form in first} | {form.replace("\\", "\\\\") for form in first}
    nested |= {form.replace("/", "\\/") for form in nested}
    forms = {secret} | first | nested | _percent_forms(secret)
    return tuple(sorted(forms, key=len, reverse=True))


@functools.lru_cache(maxsize=256)
def _standing_alone(secret: str) -> re.Pattern[str]:
    """A short secret's forms where none is part of a longer word."""
    return re.compile(rf"(?<!\w)(?:{'|'.join(re.escape(form) for form in echoes(secret))})(?!\w)")


def redact(message: str, secrets: list[str]) -> str:
    """`message` without any of `secrets`: each replaced by `[redacted]` wherever it occurs, as it is or escaped
    (`echoes`); a short one where it is not part of a longer word, so that a user called `ed` leaves 'redacted'
    readable."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        if len(secret) >= SHORT_SECRET:
            for form in echoes(secret):
                message = message.replace(form, "[redacted]")
        else:
            message = _standing_alone(secret).sub("[redacted]", message)
    return message
