"""The export's fields are declared once (`batch_exports/exports/export.py`): the create body, the stored export
and the API's answer all follow that one list."""

import ast
import uuid
from datetime import UTC, datetime
from pathlib import Path

from api import openapi as oa
from batch_exports.exports.export import BatchExport, ExportFields
from batch_exports.exports.validation import BatchExportIn
from connectors.destinations import parse_config

PACKAGE = Path(__file__).parents[2] / "batch_exports" / "exports"
ABOVE = ("api", "activities", "workflows", "entrypoints", "batch_exports.store", "batch_exports.services",
         "batch_exports.temporal", "batch_exports.telemetry", "batch_exports.runtime")  # fmt: skip


def test_the_export_package_imports_nothing_that_depends_on_it() -> None:
    """Storage, services and the API use the export; the export knows none of them."""
    imported = {
        (path.name, node.module if isinstance(node, ast.ImportFrom) else alias.name)
        for path in PACKAGE.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert len(imported) > 10  # the walk sees the imports
    above = [(name, module) for name, module in imported if any(f"{module}.".startswith(f"{a}.") for a in ABOVE)]
    assert above == []


def shown(model: type[BatchExport]) -> set[str]:
    return {name for name, field in model.model_fields.items() if not field.exclude}


def test_the_api_answers_every_field_of_a_saved_export_but_its_bookkeeping() -> None:
    assert set(oa.BatchExport.model_fields) - {"latest_runs"} == shown(BatchExport)


def test_the_create_body_takes_exactly_the_fields_a_client_sets() -> None:
    assert list(BatchExportIn.model_fields) == list(ExportFields.model_fields)
    document = BatchExportIn.model_json_schema()
    assert list(document["properties"]) == list(ExportFields.model_fields)


def saved(**fields: object) -> BatchExport:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    return BatchExport.model_validate(
        {"id": uuid.uuid4(), "team_id": 7, "destination_id": uuid.uuid4(), "deleted": False, "schema_": None,
         "created_at": now, "last_updated_at": now, "last_paused_at": now, "name": "weekly", "interval": "week",
         "paused": True, "start_at": now, "end_at": datetime(2025, 1, 1, tzinfo=UTC), "timezone": "Europe/Berlin",
         "offset_day": 3, "offset_hour": 5, **fields}
    )  # fmt: skip


def test_a_saved_export_as_a_body_gives_back_every_field_it_was_set_with() -> None:
    """What a PATCH merges into: a field left out of it would be reset by every update."""
    config = parse_config("File", {"path": "out", "include_events": ["$pageview"]})
    events = saved(
        destination={"type": "File", "config": config}, hogql_query="SELECT event AS name FROM events",
        filters=[{"key": "$browser", "value": ["Chrome"], "operator": "exact", "type": "event"}],
    )  # fmt: skip
    persons = saved(destination={"type": "File", "config": config}, model="persons")
    set_apart = {  # every field is off its default in one of them, so a field the body drops is seen
        name for export in (events, persons) for name, value in export.plain_fields().items()
        if value != ExportFields.model_fields[name].default
    }  # fmt: skip
    assert set_apart == set(ExportFields.model_fields) - {"destination"}
    for export in (events, persons):
        again = BatchExportIn.model_validate(export.as_input())
        assert again.plain_fields() == export.plain_fields()
        assert again.destination.parsed() == config
