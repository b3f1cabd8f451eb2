"""Log lines as text or, with `BATCH_EXPORTS_LOG_FORMAT=json`, one JSON object per line that carries the ids
it concerns: `batch_export_id`, `run_id` (the run's row), `backfill_id`, `workflow_id`, `workflow_run_id`.

The ids come from a context that activities (`ActivityLogContext`, from their inputs) and gateway requests
(from the route) bind, and from the details the Temporal SDK attaches to its activity and workflow loggers.
"""

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from batch_exports.settings import Settings

IDS = ("batch_export_id", "run_id", "backfill_id")
"""The ids bound from an activity's input or a request's route, when they are there."""

_context: ContextVar[dict[str, str]] = ContextVar("batch_exports_log_context", default={})  # noqa: B039 (never mutated)


@contextlib.contextmanager
def log_context(**ids: object) -> Iterator[None]:
    """Lines logged inside the block (and in tasks and threads it starts) carry these ids (None ones are left out)."""
    token = _context.set({**_context.get(), **{name: str(value) for name, value in ids.items() if value is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_ids() -> dict[str, str]:
    return dict(_context.get())


def _temporal_ids(record: logging.LogRecord) -> dict[str, Any]:
    """What the Temporal SDK's activity and workflow loggers attach, under our names."""
    ids: dict[str, Any] = {}
    if isinstance(activity := getattr(record, "temporal_activity", None), dict):
        ids.update(
            workflow_id=activity.get("workflow_id"),
            workflow_run_id=activity.get("workflow_run_id"),
            workflow_type=activity.get("workflow_type"),
            activity_type=activity.get("activity_type"),
            attempt=activity.get("attempt"),
        )
    if isinstance(workflow := getattr(record, "temporal_workflow", None), dict):
        ids.update(
            workflow_id=workflow.get("workflow_id"),
            workflow_run_id=workflow.get("run_id"),
            workflow_type=workflow.get("workflow_type"),
            attempt=workflow.get("attempt"),
        )
    return {key: value for key, value in ids.items() if value is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the ids it concerns, and any exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context.get(),
            **_temporal_ids(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()  # in native code: the gateway writes one a request


ACCESS_LOGGER = "aiohttp.access"
"""The gateway's access log: one line per request (address, time, request line, status, size, referer, agent)."""


def configure(settings: Settings) -> None:
    """Send every log line to stderr, as text or JSON (`log_format`), from `log_level` up.

    The access log goes through no filter a library attached: the Snowflake connector, once imported, hangs its
    secret-masking filter on aiohttp's loggers, which ran eight regular expressions over every access line (0.12
    ms of the gateway's 2.7 per page of runs); the line carries no secret (the API takes none in a query string,
    and logs no header but the referer and user agent)."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
    logging.getLogger(ACCESS_LOGGER).filters.clear()


class ActivityLogContext(Interceptor):
    """Binds the ids an activity's input carries (`batch_export_id`, `run_id`, `backfill_id`) around its run."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityInbound(next)


class _ActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        first = input.args[0] if input.args else None
        with log_context(**{name: getattr(first, name, None) for name in IDS}):
            return await self.next.execute_activity(input)
