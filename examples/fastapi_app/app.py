"""A multi-turn chat service on FastAPI whose turns session-mw groups into sessions.

Run it with ``scripts/example fastapi`` (port 8000). Spans go to the console, or to Phoenix when
``PHOENIX_COLLECTOR_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_ENDPOINT``) is set::

    curl -sN -X POST localhost:8000/chat -H 'Content-Type: application/json' -d '{"message": "hi"}'
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from pydantic import BaseModel

from session_mw import SessionMiddleware, current_session
from session_mw.otel import SessionSpanProcessor

PROJECT = "session-mw-demo"


class Turn(BaseModel):
    message: str


def tracer_provider(exporter: SpanExporter | None = None) -> TracerProvider:
    """Console by default; OTLP to Phoenix (or any collector) when its endpoint is set."""
    provider = TracerProvider(resource=Resource({"openinference.project.name": PROJECT}))
    provider.add_span_processor(SessionSpanProcessor())
    phoenix = os.environ.get("PHOENIX_COLLECTOR_ENDPOINT")
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif phoenix or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        endpoint = f"{phoenix.rstrip('/')}/v1/traces" if phoenix else None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    else:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    return provider


async def fake_llm(tracer: trace.Tracer, prompt: str, turn: int) -> AsyncIterator[str]:
    """Stands in for a model call: an LLM span, and the reply streamed word by word."""
    with tracer.start_as_current_span(
        "fake-llm",
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "fake-echo-1",
            "input.value": prompt,
        },
    ) as span:
        reply = f"Turn {turn}: you said {prompt!r}."
        for word in reply.split():
            await asyncio.sleep(0.005)
            yield word + " "
        span.set_attribute("output.value", reply)


def create_app(provider: TracerProvider | None = None) -> FastAPI:
    tracer = (provider or tracer_provider()).get_tracer("examples.fastapi_app")
    turns: dict[str, int] = {}  # turns so far per conversation; a real app keeps history

    app = FastAPI(title="session-mw chat example")
    app.add_middleware(SessionMiddleware)

    @app.post("/chat")
    async def chat(turn: Turn) -> StreamingResponse:
        session = current_session()
        assert session is not None  # the middleware opened it before this endpoint ran
        number = turns[session.id] = turns.get(session.id, 0) + 1

        async def events() -> AsyncIterator[str]:
            # The session stays open while this streams: these spans are in it.
            with tracer.start_as_current_span(
                "chat-turn",
                attributes={"openinference.span.kind": "CHAIN", "input.value": turn.message},
            ) as span:
                words = []
                async for word in fake_llm(tracer, turn.message, number):
                    words.append(word)
                    yield f"data: {json.dumps(word)}\n\n"
                span.set_attribute("output.value", "".join(words).strip())
            yield "event: done\ndata: {}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
