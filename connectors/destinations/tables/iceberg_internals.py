"""The one private part of pyiceberg this service relies on, behind a function of its own: a release that
renames or changes it breaks `tests/unit/test_library_internals.py`, not an export.

pyiceberg checks, before it writes files itself, that an Arrow schema fits the table's
(`_check_pyarrow_schema_compatible`: a type that cannot be promoted, a timestamp unit it does not take). The
Iceberg destination writes its files itself, so it asks the same question through `schema_conflict`.
"""

import pyarrow as pa
from pyiceberg.io.pyarrow import _check_pyarrow_schema_compatible
from pyiceberg.schema import Schema
from pyiceberg.typedef import TableVersion


def schema_conflict(table: Schema, files: pa.Schema, format_version: TableVersion = 2) -> str | None:
    """Why files of Arrow schema `files` do not fit a table of schema `table` (pyiceberg's first line), or None."""
    try:
        _check_pyarrow_schema_compatible(table, files, format_version=format_version)
    except ValueError as error:
        return str(error).splitlines()[0]
    return None
