"""OpenTelemetry traces, off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set (OpenTelemetry's own variables apply:
`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_HEADERS`, ...; spans go out as OTLP over HTTP).

One trace follows an API request through the workflows it starts to their activities: the gateway opens a
span per request (continuing a caller's `traceparent`), and Temporal's `TracingInterceptor` on the client
carries the context in workflow and activity headers; workers built from that client inherit it.
"""

import os

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"


def provider_from_environment(process: str) -> TracerProvider | None:
    """A provider exporting to the OTLP endpoint the environment names, or None when it names none."""
    if not os.environ.get(ENDPOINT_VARIABLE):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    name = os.environ.get("OTEL_SERVICE_NAME") or f"batch-exports-{process.replace(' ', '-')}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def tracer_of(provider: TracerProvider | None) -> Tracer | None:
    return provider.get_tracer("batch_exports") if provider else None


def client_interceptors(tracer: Tracer | None) -> list[Interceptor]:
    """Temporal's tracing interceptor, when tracing is on (workers built from the client inherit it)."""
    return [TracingInterceptor(tracer)] if tracer else []
