"""The OpenAPI 3 document of the gateway, served at `/api/schema/`, built from the routes themselves.

Each handler is decorated with `@operation(...)`, naming its query parameters, its body model and its
responses; `document(app)` walks the router, so every route is in the document.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, RootModel, TypeAdapter

from batch_exports.runs import run as runs
from batch_exports.store.logs import Level
from connectors.destinations import TYPES
from connectors.destinations.integrations import KINDS
from contracts.intervals import Interval
from contracts.statuses import BackfillStatus

H = TypeVar("H", bound=Callable[..., Any])


# Response shapes (what the handlers return; kept beside the document that promises them).
class Error(BaseModel):
    type: Literal["validation_error", "authentication_error", "invalid_request", "server_error"]
    code: str
    detail: str
    attr: str | None


class Destination(BaseModel):
    type: str = Field(json_schema_extra={"enum": list(TYPES)})
    config: dict[str, Any] = Field(description="The config, without its secret fields.")


RUN_API_NAMES = {"batch_export_id": "batch_export", "backfill_id": "backfill", "replaced_run_id": "replaced_run"}
"""The run's fields PostHog names otherwise; the others show under the run domain's names."""


class Run(runs.Run):
    # The run domain's one shape, as the API shows it (three fields under PostHog's names).
    model_config = ConfigDict(alias_generator=lambda name: RUN_API_NAMES.get(name, name), populate_by_name=True)


class BatchExport(BaseModel):
    id: UUID
    team_id: int
    name: str
    model: str
    destination: Destination
    interval: Interval
    paused: bool
    created_at: datetime
    last_updated_at: datetime
    last_paused_at: datetime | None
    start_at: datetime | None
    end_at: datetime | None
    hogql_query: str | None
    filters: list[dict[str, Any]] | None
    schema_: dict[str, Any] | None = Field(alias="schema")
    timezone: str
    offset_day: int | None
    offset_hour: int | None
    latest_runs: list[Run] = Field(default_factory=list, description="The 10 newest runs (single export only).")

    model_config = {"populate_by_name": True}


class ExportPage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[BatchExport]


class RunPage(BaseModel):
    next: str | None
    previous: str | None
    results: list[Run]


class Progress(BaseModel):
    total_runs: int | None
    finished_runs: int
    progress: float | None


class Backfill(BaseModel):
    id: UUID
    status: BackfillStatus
    start_at: datetime | None
    end_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    last_updated_at: datetime
    team: int = Field(description="The project (PostHog's name for it).")
    team_id: int
    batch_export: UUID
    total_records_count: int | None
    progress: Progress


class BackfillPage(BaseModel):
    next: str | None
    previous: str | None
    results: list[Backfill]


class LogEntry(BaseModel):
    timestamp: datetime
    level: Level
    message: str
    instance_id: str | None
    log_source_id: UUID


class Logs(BaseModel):
    count: int = Field(description="How many entries this page holds (PostHog's page shape; one page).")
    next: None = None
    previous: None = None
    results: list[LogEntry]


class Paused(BaseModel):
    paused: bool
    backfill_id: UUID | None = None


class BackfillCreated(BaseModel):
    backfill_id: UUID
    start_at: datetime | None = Field(None, description="The start it runs from (the one chosen for a null start_at).")
    end_at: datetime | None = Field(None, description="The end it runs to (the last whole interval for a null end_at).")
    start_from_data: bool | None = Field(None, description="start_at was null: it starts at the first data.")


class EstimateDay(BaseModel):
    day: str = Field(description="A day (YYYY-MM-DD) in the export's timezone.")
    records: int
    bytes: int


class BackfillEstimate(BaseModel):
    start_at: datetime | None
    end_at: datetime | None
    intervals: int = Field(description="Intervals the backfill would run.")
    intervals_with_data: int
    records: int = Field(description="Records it would export, counted (not read).")
    bytes: int = Field(description="About how many bytes: records times the bytes per record of recent runs.")
    estimated_seconds: float | None = Field(description="From the export's recent runs; null before its first.")
    days: list[EstimateDay]


class Cancelled(BaseModel):
    cancelled: bool
    status: str | None = Field(None, description="With a 202: the status as it stands (the stop takes longer).")


class Deleting(BaseModel):
    deleted: bool
    stopping_runs: list[UUID] = Field(description="Runs still stopping when the wait ended (a 202).")


class StepInfo(BaseModel):
    name: str
    description: str


class Steps(BaseModel):
    steps: list[StepInfo]


class StepOutcome(BaseModel):
    status: Literal["Passed", "Failed"]
    message: str | None


class StepResult(BaseModel):
    name: str
    description: str
    result: StepOutcome


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unavailable"]
    temporal: Literal["ok", "unavailable"]


class Captured(BaseModel):
    status: int


class BackfillOrEstimate(RootModel[BackfillCreated | BackfillEstimate]):
    """`{"backfill_id"}`, or with `dry_run` the estimate of that backfill."""


class Unpaused(RootModel[Paused | BackfillEstimate]):
    """`{"paused": false}` (with the backfill's id), or with `dry_run` the estimate of that backfill."""


class Integration(BaseModel):
    id: UUID
    team_id: int
    kind: str = Field(json_schema_extra={"enum": list(KINDS)})
    display_name: str
    config: dict[str, Any] = Field(description="Where its secrets go (readable); never the secrets.")
    created_at: datetime
    last_updated_at: datetime


class IntegrationPage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[Integration]


class ExportRef(BaseModel):
    id: UUID
    name: str


class IntegrationInUse(Error):
    batch_exports: list[ExportRef] = Field(description="The live exports that name it.")


class NotificationTarget(BaseModel):
    id: UUID
    kind: Literal["webhook", "email"]
    display: str = Field(description="The address without its secret parts (a webhook's path is not shown).")
    created_at: datetime


class NotificationTargets(BaseModel):
    results: list[NotificationTarget]


# Request shapes that are not the export body itself.
class BackfillIn(BaseModel):
    start_at: str | None = Field(
        description="ISO 8601 date-time with offset, or a date for daily and weekly exports; null: the start of the "
        "first interval holding data for the export's model and filters."
    )
    end_at: str | None = Field(description="As start_at; not in the future; null: the last whole interval now.")


class UnpauseIn(BaseModel):
    backfill: bool = Field(False, description="Also backfill the intervals missed while paused.")


class IntegrationIn(BaseModel):
    kind: str = Field(json_schema_extra={"enum": list(KINDS)}, description=", ".join(
        f"{k.name}: {k.description} config {list(k.config_fields)}, sensitive_config {list(k.secret_fields)}"
        for k in KINDS.values()))  # fmt: skip
    display_name: str | None = Field(None, max_length=400)
    config: dict[str, Any] = Field(default_factory=dict)
    sensitive_config: dict[str, Any] = Field(default_factory=dict, description="Write-only: never returned.")


class IntegrationPatch(BaseModel):
    display_name: str | None = Field(None, max_length=400)
    config: dict[str, Any] | None = Field(None, description="Merged over the stored config.")
    sensitive_config: dict[str, Any] | None = Field(
        None, description="Merged over the stored secrets (null removes one); all of them again when config moves."
    )


class NotificationTargetIn(BaseModel):
    kind: Literal["webhook", "email"]
    url: str | None = Field(None, description="webhook: an http(s) URL the address policy allows.")
    format: Literal["json", "slack"] | None = Field(None, description="webhook: json (default) or slack.")
    address: str | None = Field(None, description="email: one address.")


class StepIn(BaseModel):
    step: int = Field(0, ge=0)
    destination: dict[str, Any] | None = Field(
        None, description="Merged over the saved destination before the check (a new host needs its secrets)."
    )


class UnsavedStepIn(BaseModel):
    step: int = Field(0, ge=0)
    destination: dict[str, Any]


@dataclass(frozen=True)
class Query:
    name: str
    schema: dict[str, Any]
    description: str = ""
    repeatable: bool = False


@dataclass(frozen=True)
class Operation:
    summary: str
    responses: dict[int, type[BaseModel] | None]
    query: tuple[Query, ...] = ()
    body: type[BaseModel] | dict[str, Any] | None = None
    auth: Literal["key", "token", "none"] = "key"


def operation(
    summary: str,
    responses: dict[int, type[BaseModel] | None],
    *,
    query: tuple[Query, ...] = (),
    body: type[BaseModel] | dict[str, Any] | None = None,
    auth: Literal["key", "token", "none"] = "key",
) -> Callable[[H], H]:
    def mark(handler: H) -> H:
        handler.__openapi__ = Operation(summary, responses, query, body, auth)  # type: ignore[attr-defined]
        return handler

    return mark


DATETIME = {"type": "string", "format": "date-time"}
LIMIT = Query("limit", {"type": "integer", "minimum": 1, "maximum": 1000})
CURSOR = Query("cursor", {"type": "string"}, "An opaque cursor from a `next` or `previous` URL.")

_STATUS_TEXT = {200: "OK", 201: "Created", 204: "No content", 400: "Bad request", 401: "Unauthenticated",
                403: "Missing scope", 404: "Not found", 405: "Method not allowed", 409: "In use", 413: "Too large",
                429: "Too many", 503: "Temporal or the database is unavailable"}  # fmt: skip


def _schema_of(model: type[BaseModel] | dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    if isinstance(model, dict):
        return model
    schema = TypeAdapter(model).json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation_id(method: str, path: str) -> str:
    words = path.strip("/").replace("{", "").replace("}", "").replace("/", "_")
    return f"{method.lower()}_{words}"


def document(app: web.Application) -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    error_ref = _schema_of(Error, components)
    infos = [route.resource.get_info() for route in app.router.routes() if route.resource is not None]
    slashed = {info.get("formatter") or info.get("path") for info in infos}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        op: Operation | None = getattr(route.handler, "__openapi__", None)
        if path is None or op is None or route.method == "HEAD" or f"{path}/" in slashed:
            continue  # a route without its trailing slash is the same operation as the one with it
        parameters: list[dict[str, Any]] = []
        for name in ("project_id", "batch_export_id", "id"):
            if "{" + name + "}" in path:
                path_schema = {"type": "integer"} if name == "project_id" else {"type": "string", "format": "uuid"}
                parameters.append({"name": name, "in": "path", "required": True, "schema": path_schema})
        for q in op.query:
            schema = {"type": "array", "items": q.schema} if q.repeatable else q.schema
            parameter: dict[str, Any] = {"name": q.name, "in": "query", "schema": schema}
            parameter["description"] = q.description
            if q.repeatable:
                parameter["explode"] = True
            parameters.append(parameter)
        responses: dict[str, Any] = {}
        for status, model in op.responses.items():
            described: dict[str, Any] = {"description": _STATUS_TEXT.get(status, "")}
            if model is not None:
                described["content"] = {"application/json": {"schema": _schema_of(model, components)}}
            responses[str(status)] = described
        errors = [400, 404, 405, 413, 503] if op.auth != "none" else []  # 503: the database is down
        if op.auth == "key":
            errors += [401, 403]
        for status in errors:
            responses.setdefault(str(status), {"description": _STATUS_TEXT[status],
                                               "content": {"application/json": {"schema": error_ref}}})  # fmt: skip
        entry: dict[str, Any] = {
            "operationId": _operation_id(route.method, path),
            "summary": op.summary,
            "parameters": parameters,
            "responses": responses,
        }
        if op.auth == "key":
            entry["security"] = [{"PersonalApiKey": []}]
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema_of(op.body, components)}},
            }
        paths.setdefault(path, {})[route.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Batch exports on Temporal",
            "version": "1.0.0",
            "description": "PostHog's batch-export API, on Temporal.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"PersonalApiKey": {"type": "http", "scheme": "bearer"}},
        },
    }
