"""One trace from an API request through the workflows it starts to their activities: the gateway's request
span, and Temporal's tracing interceptor on the client (and so on the worker built from it), exported to an
in-memory exporter."""

import uuid
from typing import Any

import aiohttp
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from api.app import create_app
from batch_exports.runtime import open_runtime
from entrypoints.embedded import LOOPBACK, free_port
from tests.support.helpers import eventually
from tests.support.stack import API_KEY, Project
from worker import build_worker

BACKFILL_ROUTE = "POST /api/environments/{project_id}/batch_exports/{batch_export_id}/backfills/"


async def test_a_backfill_request_is_one_trace_down_to_its_activities(project: Project) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = project.stack.settings.model_copy(update={"task_queue": f"traced-{uuid.uuid4().hex[:8]}"})
    async with open_runtime(settings, process="traced", tracer_provider=provider) as rt:
        runner = web.AppRunner(create_app(settings, rt), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, LOOPBACK, port).start()
        api = f"http://{LOOPBACK}:{port}/api/environments/{project.id}/batch_exports/"
        headers = {"Authorization": f"Bearer {API_KEY}"}
        try:
            async with build_worker(rt), aiohttp.ClientSession(headers=headers) as http:
                body = {"name": "traced", "interval": "hour", "paused": True,
                        "destination": {"type": "NoOp", "config": {}}}  # fmt: skip
                async with http.post(api, json=body) as response:
                    assert response.status == 201, await response.text()
                    export = await response.json()
                hour = {"start_at": "2025-03-01T10:00:00Z", "end_at": "2025-03-01T11:00:00Z"}
                async with http.post(f"{api}{export['id']}/backfills/", json=hour) as response:
                    assert response.status == 201, await response.text()
                    backfill_id = (await response.json())["backfill_id"]

                async def completed() -> bool:
                    async with http.get(f"{api}{export['id']}/backfills/{backfill_id}/") as response:
                        return (await response.json())["status"] == "Completed"  # type: ignore[no-any-return]

                await eventually(completed, within=60)
        finally:
            await runner.cleanup()

    spans = exporter.get_finished_spans()
    (request,) = [span for span in spans if span.name == BACKFILL_ROUTE]
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 201
    assert request.context is not None
    trace = [span for span in spans if span.context is not None and span.context.trace_id == request.context.trace_id]
    names = {span.name for span in trace}
    assert {
        "StartWorkflow:batch-export-backfill",
        "RunWorkflow:batch-export-backfill",
        "StartChildWorkflow:batch-export-run",
        "RunWorkflow:batch-export-run",
        "RunActivity:start-run",
        "StartActivity:export-interval",
        "RunActivity:export-interval",  # which also records how the run ended (no finish-run for a completed run)
    } <= names, names
    # Every span of the trace descends from the request's span: one tree, not pieces sharing an id.
    assert all(_descends_from(span, request, trace) for span in trace)


def _descends_from(span: ReadableSpan, root: ReadableSpan, trace: list[ReadableSpan]) -> bool:
    by_id: dict[int, Any] = {s.context.span_id: s for s in trace if s.context is not None}
    assert root.context is not None
    while span.context is not None and span.context.span_id != root.context.span_id:
        if span.parent is None or span.parent.span_id not in by_id:
            return False
        span = by_id[span.parent.span_id]
    return True
