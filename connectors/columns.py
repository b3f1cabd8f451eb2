"""Arrow columns turned into text in native code, a whole column at a time: UUIDs, ISO 8601 timestamps and
JSON values. The export's hot path never makes a Python object per row; only the rare value that needs
JSON escaping beyond quotes and backslashes (a control character) goes through `json.dumps`.
"""

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.json_encoding import default

_UUID_GROUPS = ((0, 8), (9, 13), (14, 18), (19, 23), (24, 36))
_ISO_TEMPLATE = np.frombuffer(b"0000-00-00T00:00:00.000000Z", dtype=np.uint8)
_ISO_PAIRS = (0, 2, 5, 8, 11, 14, 17, 20, 22, 24)
"""Where each pair of digits of `YYYY-MM-DDTHH:MM:SS.ffffffZ` goes (year and fraction take two and three)."""
_TENS = np.array([48 + n // 10 for n in range(100)], dtype=np.uint8)
_ONES = np.array([48 + n % 10 for n in range(100)], dtype=np.uint8)
"""The characters of the two digits of 0 to 99: a pair of digits is two lookups."""
_MICROS_PER_DAY = 86_400_000_000


def is_extension(array_type: pa.DataType, name: str) -> bool:
    return getattr(array_type, "extension_name", None) == name


def _fixed_width_strings(chars: np.ndarray, like: pa.Array) -> pa.Array:
    """A string array from an (n, width) matrix of UTF-8 bytes, null where `like` is null."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    strings = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars)))
    if like.null_count:
        return pc.if_else(pc.is_valid(like), strings, pa.scalar(None, pa.string()))
    return strings


def uuid_strings(array: pa.Array) -> pa.Array:
    """`arrow.uuid` (16 bytes each) as the canonical `8-4-4-4-12` lowercase hex text."""
    storage = array.storage if isinstance(array, pa.ExtensionArray) else array
    n = len(storage)
    raw = storage.buffers()[1].slice(storage.offset * 16, n * 16)
    hexed = (np.frombuffer(raw.hex(), dtype=np.uint8) | 0x20).reshape(n, 32)  # Arrow's hex is upper case
    chars = np.full((n, 36), ord("-"), dtype=np.uint8)
    done = 0
    for first, last in _UUID_GROUPS:
        chars[:, first:last] = hexed[:, done : done + last - first]
        done += last - first
    return _fixed_width_strings(chars, storage)


def iso_timestamps(array: pa.Array) -> pa.Array:
    """Timestamps as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, always six fractional digits)."""
    micros = pc.cast(pc.cast(array, pa.timestamp("us", tz="UTC")), pa.int64())
    us = micros.fill_null(0).to_numpy()
    days, rest = np.divmod(us, _MICROS_PER_DAY)
    year, month, day = _civil_from_days(days)
    if len(year) and (year.min() < 1 or year.max() > 9999):  # beyond four digits: let Arrow format them
        return pc.strftime(array, "%Y-%m-%dT%H:%M:%SZ")
    seconds, fraction = np.divmod(rest, 1_000_000)
    pairs = (year // 100, year % 100, month, day, seconds // 3600, seconds // 60 % 60, seconds % 60,
             fraction // 10_000, fraction // 100 % 100, fraction % 100)  # fmt: skip
    chars = np.empty((len(_ISO_TEMPLATE), len(us)), dtype=np.uint8)  # a row per character: each written whole
    chars[:] = _ISO_TEMPLATE[:, None]
    for value, first in zip(pairs, _ISO_PAIRS, strict=True):
        chars[first], chars[first + 1] = _TENS.take(value), _ONES.take(value)
    return _fixed_width_strings(chars.T, micros)


def _civil_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Proleptic Gregorian year, month, day of days since 1970-01-01 (H. Hinnant's `civil_from_days`)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1_460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    return yoe + era * 400 + (month <= 2), month, day


def _value_bytes(strings: pa.Array) -> np.ndarray | None:
    """The bytes the (possibly sliced) string array's values span, without a copy (None: not a plain string
    array)."""
    if not (pa.types.is_string(strings.type) or pa.types.is_large_string(strings.type)):
        return None
    offsets_buffer, values_buffer = strings.buffers()[1:3]
    if values_buffer is None or len(strings) == 0:
        return np.empty(0, dtype=np.uint8)
    width = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=width)
    first, last = int(offsets[strings.offset]), int(offsets[strings.offset + len(strings)])
    return np.frombuffer(values_buffer, dtype=np.uint8)[first:last]


def _quoted(strings: pa.Array) -> pa.Array:
    """Strings as JSON strings: quotes and backslashes escaped natively, control characters by `json`. A column
    with none of them (ids, names) is only quoted: one look at its bytes spares the per-value passes."""
    data = _value_bytes(strings)
    escapes = controls_found = True
    if data is not None:
        escapes = bool(np.any((data == ord('"')) | (data == ord("\\"))))
        controls_found = bool(np.any(data < 0x20))
    escaped = pc.replace_substring(pc.replace_substring(strings, "\\", "\\\\"), '"', '\\"') if escapes else strings
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    if not controls_found:
        return quoted
    controls = pc.match_substring_regex(strings, "[\\x00-\\x1f]")
    if pc.any(controls).as_py():
        mask = controls.fill_null(False)
        replacements = [json.dumps(value, ensure_ascii=False) for value in pc.filter(strings, mask).to_pylist()]
        quoted = pc.replace_with_mask(quoted, mask, pa.array(replacements, pa.string()))
    return quoted


def json_values(array: pa.Array) -> pa.Array:
    """Each value as JSON text, null for null: numbers and booleans bare, text quoted, `arrow.json` as it is."""
    kind = array.type
    if is_extension(kind, "arrow.json"):
        return array.storage
    if is_extension(kind, "arrow.uuid"):
        return pc.binary_join_element_wise('"', uuid_strings(array), '"', "")
    if pa.types.is_timestamp(kind):
        return pc.binary_join_element_wise('"', iso_timestamps(array), '"', "")
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _quoted(array)
    if pa.types.is_floating(kind):
        finite = pc.is_finite(array)  # NaN and infinities have no JSON form
        return pc.if_else(finite, pc.cast(array, pa.string()), pa.scalar(None, pa.string()))
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind) or pa.types.is_decimal(kind):
        return pc.cast(array, pa.string())
    if pa.types.is_null(kind):
        return pa.nulls(len(array), pa.string())
    if pa.types.is_date(kind) or pa.types.is_time(kind):
        return _quoted(pc.cast(array, pa.string()))
    return pa.array([_dumps(value) for value in array.to_pylist()], pa.string())  # lists, structs: rare


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=default, ensure_ascii=False)


def python_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """The rows as Python dicts, JSON parsed: for destinations that send rows one by one (not the hot path)."""
    rows = batch.to_pylist()
    for name, field_type in zip(batch.schema.names, batch.schema.types, strict=True):
        if is_extension(field_type, "arrow.json"):
            for row in rows:
                if row[name] is not None:
                    row[name] = json.loads(row[name])
    return rows


def json_lines(batch: pa.RecordBatch) -> pa.Buffer:
    """The batch as JSON Lines (one object per row, keys in column order), in one contiguous buffer."""
    if batch.num_rows == 0:
        return pa.py_buffer(b"")
    parts: list[Any] = []
    for index, (name, column) in enumerate(zip(batch.schema.names, batch.columns, strict=True)):
        parts.append(("{" if index == 0 else ",") + json.dumps(name, ensure_ascii=False) + ":")
        parts.append(json_values(column).fill_null("null"))
    parts.append("}\n")
    lines = pc.binary_join_element_wise(*parts, "")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    first, last = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return lines.buffers()[2].slice(first, last - first)
