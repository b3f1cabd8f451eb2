"""The native column-to-text conversions agree with Python's own, for any value (hypothesis)."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from connectors.columns import iso_timestamps, json_lines, uuid_strings

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]))  # any text PostgreSQL can hold but \0
texts = texts.filter(lambda t: "\0" not in t)
moments = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999))
json_documents = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=10,
)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def sliced(array: pa.Array, skip: int) -> pa.Array:
    """The array with its first `skip` values sliced off: offsets must be honoured."""
    return array.slice(min(skip, len(array)))


@given(st.lists(st.uuids() | st.none()), st.integers(0, 3))
def test_uuids_as_text(values: list[uuid.UUID | None], skip: int) -> None:
    array = pa.array([v.bytes if v else None for v in values], pa.binary(16))
    strings = uuid_strings(sliced(pa.ExtensionArray.from_storage(pa.uuid(), array), skip))
    assert strings.to_pylist() == [str(v) if v else None for v in values[skip:]]


@given(st.lists(moments | st.none()), st.integers(0, 3))
def test_timestamps_as_iso_8601(values: list[datetime | None], skip: int) -> None:
    aware = [v.replace(tzinfo=UTC) if v else None for v in values]
    strings = iso_timestamps(sliced(pa.array(aware, pa.timestamp("us", tz="UTC")), skip))
    assert strings.to_pylist() == [iso(v) if v else None for v in aware[skip:]]


rows = st.fixed_dictionaries(
    {
        "text": texts | st.none(),
        "number": st.integers(-(2**63), 2**63 - 1) | st.none(),
        "ratio": st.floats(allow_nan=False, allow_infinity=False) | st.none(),
        "flag": st.booleans() | st.none(),
        "document": json_documents,
        "at": moments | st.none(),
    }
)


@given(st.lists(rows, max_size=20), st.integers(0, 3))
def test_json_lines_parse_back_to_the_rows(values: list[dict], skip: int) -> None:
    columns = {
        "text": pa.array([r["text"] for r in values], pa.string()),
        "number": pa.array([r["number"] for r in values], pa.int64()),
        "ratio": pa.array([r["ratio"] for r in values], pa.float64()),
        "flag": pa.array([r["flag"] for r in values], pa.bool_()),
        "document": pa.ExtensionArray.from_storage(
            pa.json_(), pa.array([json.dumps(r["document"]) for r in values], pa.string())
        ),
        "at": pa.array([r["at"].replace(tzinfo=UTC) if r["at"] else None for r in values], pa.timestamp("us", "UTC")),
    }
    batch = pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns)).slice(min(skip, len(values)))
    text = json_lines(batch).to_pybytes().decode()
    lines = text.split("\n")  # a newline inside a value is escaped: only lines end with one
    assert lines.pop() == "" and len(lines) == batch.num_rows
    for line, row in zip(lines, values[skip:], strict=True):
        parsed = json.loads(line)
        assert list(parsed) == list(columns)
        at = row["at"]
        expected = {**row, "at": iso(at.replace(tzinfo=UTC)) if at else None}
        assert parsed == expected


def test_timestamps_before_1970_and_around_leap_days() -> None:
    moments = [EPOCH - timedelta(microseconds=1), datetime(2000, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)]
    assert iso_timestamps(pa.array(moments, pa.timestamp("us", tz="UTC"))).to_pylist() == [
        "1969-12-31T23:59:59.999999Z",
        "2000-02-29T23:59:59.999999Z",
    ]
