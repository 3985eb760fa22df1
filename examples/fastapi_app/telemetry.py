"""Tracing set-up shared by the example's two services: console by default, Phoenix when asked."""

from __future__ import annotations

import os

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

from session_mw.otel import SessionSpanProcessor

PROJECT = "session-mw-demo"


def tracer_provider(service: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """Spans of ``service``, with the session on every one of them, in the Phoenix project
    ``PHOENIX_PROJECT_NAME`` (``session-mw-demo`` by default).

    They go to ``exporter`` when given; else over OTLP to Phoenix when
    ``PHOENIX_COLLECTOR_ENDPOINT`` (or to any collector when ``OTEL_EXPORTER_OTLP_ENDPOINT``) is
    set; else to the console.
    """
    project = os.environ.get("PHOENIX_PROJECT_NAME", PROJECT)
    resource = Resource({"service.name": service, "openinference.project.name": project})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SessionSpanProcessor())
    phoenix = os.environ.get("PHOENIX_COLLECTOR_ENDPOINT")
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif phoenix or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        # Imported only when used: the console needs no OTLP exporter installed.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        endpoint = f"{phoenix.rstrip('/')}/v1/traces" if phoenix else None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    else:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    return provider
