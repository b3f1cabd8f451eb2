"""The libraries' parts the table destinations use beyond their documented API: each in one adapter, and this
test fails loudly when a release moves or changes one."""

import ast
import inspect
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake.transaction import RemoveAction
from pyiceberg.io import pyarrow as pyiceberg_pyarrow
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StringType, TimestamptzType

import connectors
from connectors.destinations.tables.iceberg_internals import schema_conflict

ADAPTERS = {"connectors/destinations/tables/iceberg_internals.py"}
"""The only modules of the destinations that may import a library's private name."""
TABLE = Schema(
    NestedField(1, "distinct_id", StringType(), required=False),
    NestedField(2, "person_version", LongType(), required=False),
    NestedField(3, "_inserted_at", TimestamptzType(), required=False),
)


def test_pyiceberg_still_has_the_schema_check_with_the_arguments_it_is_given() -> None:
    check = pyiceberg_pyarrow._check_pyarrow_schema_compatible
    parameters = inspect.signature(check).parameters
    assert list(parameters)[:2] == ["requested_schema", "provided_schema"]
    assert "format_version" in parameters


def test_a_schema_that_fits_is_no_conflict() -> None:
    files = pa.schema([("distinct_id", pa.string()), ("person_version", pa.int64()),
                       ("_inserted_at", pa.timestamp("us", tz="UTC"))])  # fmt: skip
    assert schema_conflict(TABLE, files) is None
    assert schema_conflict(TABLE, files.remove(1), format_version=2) is None  # a column the files lack


@pytest.mark.parametrize(
    ("column", "kind"), [("person_version", pa.string()), ("distinct_id", pa.int64()), ("_inserted_at", pa.string())]
)
def test_a_schema_that_does_not_fit_is_named(column: str, kind: pa.DataType) -> None:
    files = pa.schema([("distinct_id", pa.string()), ("person_version", pa.int64()),
                       ("_inserted_at", pa.timestamp("us", tz="UTC"))])  # fmt: skip
    files = files.set(files.get_field_index(column), pa.field(column, kind))
    conflict = schema_conflict(TABLE, files)
    assert conflict and "\n" not in conflict


def test_deltalake_keeps_remove_actions_public_with_the_fields_given() -> None:
    action = RemoveAction(path="day=2026-01-01/part-1.parquet", data_change=True,
                          partition_values={"day": "2026-01-01"}, deletion_timestamp=1, size=10)  # fmt: skip
    assert (action.path, action.data_change, action.size) == ("day=2026-01-01/part-1.parquet", True, 10)


def test_no_other_destination_module_imports_a_librarys_private_name() -> None:
    root = Path(connectors.__file__).parent.parent
    found = []
    for path in sorted((root / "connectors" / "destinations").rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.module.startswith("connectors"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private or any(part.startswith("_") for part in node.module.split(".")):
                    found.append(f"{relative}: from {node.module} import {', '.join(a.name for a in node.names)}")
            elif isinstance(node, ast.Import):
                found += [f"{relative}: import {a.name}" for a in node.names if "._" in a.name]
    assert [line for line in found if line.split(":")[0] not in ADAPTERS] == []
    assert found, "the adapter's own import is found: the search works"
