"""OpenInference for real: the instrumented openai client, a local OpenAI-compatible server, and
no span processor: session.id reaches the LLM span through the OTel context key alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from openai import AsyncOpenAI
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from session_mw import SessionMiddleware
from tests.servers import free_port, running


@pytest.fixture(scope="module")
def model_url() -> Iterator[str]:
    port = free_port()
    command = ["uvicorn", "tests.apps:fake_openai", "--host", "127.0.0.1", "--port", str(port)]
    with running([*command, "--log-level", "warning"], port) as url:
        yield url + "/v1"


@pytest.fixture
def instrumented() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # deliberately without SessionSpanProcessor
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        instrumentor.uninstrument()


def chat_app(model_url: str, **options: Any) -> FastAPI:
    """A chat endpoint calling the model through the instrumented openai client."""
    app = FastAPI()

    @app.post("/chat")
    async def chat(body: dict[str, Any]) -> dict[str, Any]:
        async with AsyncOpenAI(base_url=model_url, api_key="local-test") as client:
            completion = await client.chat.completions.create(
                model="fake-model", messages=[{"role": "user", "content": body["message"]}]
            )
        return {"reply": completion.choices[0].message.content}

    app.add_middleware(SessionMiddleware, **options)
    return app


def test_llm_span_gets_the_session_through_the_context_key(
    model_url: str, instrumented: InMemorySpanExporter
) -> None:
    client = TestClient(chat_app(model_url, user_id=lambda scope: "user-1"))
    first = client.post("/chat", json={"message": "hello"}, headers={"X-Session-Id": "conv-1"})
    second = client.post("/chat", json={"message": "again"})
    assert first.json() == {"reply": "You said: hello"}
    llm_spans = [s for s in instrumented.get_finished_spans() if s.attributes]
    assert len(llm_spans) == 2
    sessions = [s.attributes["session.id"] for s in llm_spans]  # type: ignore[index]
    assert sessions == ["conv-1", second.headers["x-session-id"]]
    for span in llm_spans:
        assert span.attributes["openinference.span.kind"] == "LLM"  # type: ignore[index]
        assert span.attributes["user.id"] == "user-1"  # type: ignore[index]
        assert "url.path" in str(span.attributes["metadata"])  # type: ignore[index]


def test_concurrent_conversations_keep_their_sessions(
    model_url: str, instrumented: InMemorySpanExporter
) -> None:
    import httpx

    app = chat_app(model_url)

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            await asyncio.gather(
                *(
                    http.post("/chat", json={"message": f"m{n}"}, headers={"X-Session-Id": f"c{n}"})
                    for n in range(10)
                )
            )

    asyncio.run(run())
    by_session = {
        s.attributes["session.id"]: s.attributes["llm.input_messages.0.message.content"]  # type: ignore[index]
        for s in instrumented.get_finished_spans()
    }
    assert by_session == {f"c{n}": f"m{n}" for n in range(10)}


def test_the_session_reaches_an_otlp_backend_with_no_span_processor(model_url: str) -> None:
    # Arize's set-up: OpenInference instrumentors exporting over OTLP, no SessionSpanProcessor.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from tests.otlp import receiver

    with receiver() as (url, received):
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(f"{url}/v1/traces")))
        instrumentor = OpenAIInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        try:
            client = TestClient(chat_app(model_url, user_id=lambda scope: "user-1"))
            for conversation in ("conv-1", "conv-2"):
                client.post("/chat", json={"message": "hi"}, headers={"X-Session-Id": conversation})
        finally:
            instrumentor.uninstrument()
            provider.shutdown()  # flushes the batch to the receiver
    assert [(name, a["session.id"], a["user.id"]) for name, a in received.spans] == [
        ("ChatCompletion", "conv-1", "user-1"),
        ("ChatCompletion", "conv-2", "user-1"),
    ]
