"""The LangSmith recipe (docs/backends.md), served by ``uvicorn --factory``.

LangSmith groups runs into a thread by the run metadata key ``session_id``, ``thread_id`` or
``conversation_id``, and it must be on every run of a trace, children included
(https://docs.langchain.com/langsmith/threads). Over OpenTelemetry, run metadata comes from the
span attributes prefixed ``langsmith.metadata.``
(https://docs.langchain.com/langsmith/trace-with-opentelemetry), which is how the SDK itself writes
a thread id onto spans (``langsmith/_internal/otel/_attribute_utils.py``,
``set_langsmith_metadata_attribute``; ``langsmith/_internal/voice/translated_span.py``,
``set_thread_id``). Not ``langsmith.trace.session_id``: a LangSmith "session" there is a project.

The exporter is the SDK's own, ``OtelSpanProcessor``, configured as in production by
``LANGSMITH_API_KEY``, ``LANGSMITH_PROJECT`` and ``LANGSMITH_ENDPOINT`` (the test's receiver).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider

from session_mw.otel import SessionSpanProcessor
from tests.recipes_chat import chat_app

#: The keys the recipe puts the id under: LangSmith's thread key, and OpenInference's.
ID_ATTRIBUTES = ["session.id", "langsmith.metadata.thread_id"]


def create_app() -> FastAPI:
    # langsmith[otel] needs OpenTelemetry >= 1.30: imported here, not at module level, so that
    # the lowest run (which deselects these tests) can still import this module for doctests.
    from langsmith.integrations.otel import OtelSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SessionSpanProcessor(id_attributes=ID_ATTRIBUTES))
    # Duck-typed, not a SpanProcessor subclass: strict type checkers need the ignore.
    provider.add_span_processor(OtelSpanProcessor())  # type: ignore[arg-type]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        provider.shutdown()  # flush what is still queued

    app = chat_app(provider, ID_ATTRIBUTES, lifespan)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    return app
