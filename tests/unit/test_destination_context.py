"""The generic context destinations are given names nothing of one destination; what the operator set for a
particular one travels by name (`Context.setting`)."""

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

from batch_exports.runtime import Runtime
from batch_exports.settings import Settings
from connectors.destinations import DESTINATIONS, Context
from connectors.destinations.tables import iceberg


def test_the_context_has_no_field_of_one_destination() -> None:
    """`files_root` stays: the local storage of every destination that writes on File storage (File, and the
    tables on it), narrowed to the project's directory by `for_project`."""
    words = {d.type.lower() for d in DESTINATIONS if d.type != "File"} | {"delta", "azure", "catalog", "warehouse"}
    fields = [f.name for f in dataclasses.fields(Context)]
    assert [name for name in fields if any(word in name.lower() for word in words)] == []


def test_a_destination_setting_is_read_by_name_and_a_missing_one_is_the_services_error() -> None:
    context = Context(Path("/nowhere"), False, destination_settings={"iceberg_catalog_url": "postgresql://db/x"})
    assert context.setting("iceberg_catalog_url") == "postgresql://db/x"
    assert dataclasses.replace(context, project_id=1).for_project(2).setting("iceberg_catalog_url")
    with pytest.raises(RuntimeError, match="snowflake_url"):
        context.setting("snowflake_url")


@pytest.mark.parametrize(
    ("catalog", "expected"), [(None, "postgresql://meta/db"), ("postgresql://catalog/c", "postgresql://catalog/c")]
)
def test_the_service_gives_iceberg_its_catalog(catalog: str | None, expected: str) -> None:
    settings = Settings(database_url="postgresql://meta/db", iceberg_catalog_url=catalog)
    context = Runtime.destinations.fget(SimpleNamespace(settings=settings, egress=None))  # type: ignore[attr-defined]
    assert context.setting(iceberg.CATALOG_SETTING) == expected
