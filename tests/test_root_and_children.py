"""Root and children both: with OpenTelemetry's own instrumentation making the server span (the
trace root, from which Phoenix builds a session's turns), the root and every child (an LLM
call, a tool call, spans made in a streamed body and in a background task) carry the id under
every configured name."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import StreamingResponse
from flask import Flask, Response, stream_with_context
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.testclient import TestClient

from session_mw import SessionMiddleware
from session_mw.flask import SessionMiddleware as FlaskSessionMiddleware
from session_mw.otel import SessionSpanProcessor

NAMES = [["session.id", "gen_ai.conversation.id"], ["session.id", "wandb.thread_id"]]


def traced(names: list[str]) -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SessionSpanProcessor(names))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def assert_every_span_carries(spans: tuple[ReadableSpan, ...], sid: str, names: list[str]) -> None:
    # The instrumentation's server span is a trace root. (Spans made while Flask or Django
    # stream a body are roots of their own: their instrumentations have ended the server span's
    # context by then. They are in the conversation all the same.)
    (root,) = [span for span in spans if span.kind is SpanKind.SERVER]
    assert root.parent is None
    for span in spans:
        attributes = dict(span.attributes or {})
        for name in names:
            assert attributes.get(name) == sid, (span.name, name)
    others = {"session.id", "gen_ai.conversation.id", "wandb.thread_id"} - set(names)
    assert not any(name in (span.attributes or {}) for span in spans for name in others)


@pytest.mark.parametrize("names", NAMES, ids=["default", "weave"])
def test_fastapi(names: list[str]) -> None:
    provider, exporter = traced(names)
    tracer = provider.get_tracer("app")
    app = FastAPI()

    def remember() -> None:
        with tracer.start_as_current_span("background task"):
            pass

    @app.post("/chat/{cid}")
    async def chat(cid: str, background: BackgroundTasks) -> StreamingResponse:
        with tracer.start_as_current_span("llm"), tracer.start_as_current_span("tool"):
            pass
        background.add_task(remember)

        async def chunks() -> AsyncIterator[str]:
            for n in range(2):
                with tracer.start_as_current_span(f"chunk {n}"):
                    yield f"{n}\n"

        return StreamingResponse(chunks())

    app.add_middleware(SessionMiddleware, id_attributes=names)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    try:
        TestClient(app).post("/chat/1", headers={"X-Session-Id": "conv-1"})
    finally:
        FastAPIInstrumentor.uninstrument_app(app)
    spans = exporter.get_finished_spans()
    made = {span.name for span in spans}
    assert {"llm", "tool", "chunk 0", "chunk 1", "background task", "POST /chat/{cid}"} <= made
    assert_every_span_carries(spans, "conv-1", names)


@pytest.mark.parametrize("names", NAMES, ids=["default", "weave"])
def test_flask(names: list[str]) -> None:
    provider, exporter = traced(names)
    tracer = provider.get_tracer("app")
    app = Flask(__name__)

    @app.post("/chat/<cid>")
    def chat(cid: str) -> Response:
        with tracer.start_as_current_span("llm"), tracer.start_as_current_span("tool"):
            pass

        def chunks() -> Iterator[str]:
            for n in range(2):
                with tracer.start_as_current_span(f"chunk {n}"):
                    yield f"{n}\n"

        return Response(stream_with_context(chunks()))

    FlaskSessionMiddleware(app, id_attributes=names)
    instrumentor = FlaskInstrumentor()
    instrumentor.instrument_app(app, tracer_provider=provider)  # type: ignore[no-untyped-call]
    try:
        response = app.test_client().post("/chat/1", headers={"X-Session-Id": "conv-1"})
        assert response.get_data(as_text=True) == "0\n1\n"
    finally:
        instrumentor.uninstrument_app(app)  # type: ignore[no-untyped-call]
    spans = exporter.get_finished_spans()
    assert {"llm", "tool", "chunk 0", "chunk 1"} <= {s.name for s in spans}
    assert_every_span_carries(spans, "conv-1", names)


@pytest.mark.above_floors  # opentelemetry-instrumentation-django needs OpenTelemetry API >= 1.28
@pytest.mark.parametrize("names", NAMES, ids=["default", "weave"])
def test_django(names: list[str]) -> None:
    from django.test import Client, override_settings
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    import tests.test_django  # noqa: F401  (sets Django up with the test project)
    from tests.django_project import views

    provider, exporter = traced(names)
    views.PROVIDER = provider
    instrumentor = DjangoInstrumentor()
    instrumentor.instrument(tracer_provider=provider)  # prepends its middleware to MIDDLEWARE
    try:
        with override_settings(SESSION_MW_ID_ATTRIBUTES=names):
            response: Any = Client().get("/traced-stream/", headers={"X-Session-Id": "conv-1"})
            assert b"".join(response.streaming_content).count(b"conv-1") == 2
    finally:
        instrumentor.uninstrument()
        views.PROVIDER = None
    spans = exporter.get_finished_spans()
    assert {"llm", "tool", "chunk 0", "chunk 1"} <= {span.name for span in spans}
    assert_every_span_carries(spans, "conv-1", names)
