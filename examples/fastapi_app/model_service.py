"""The example's second service: a stand-in model server that the chat gateway calls over HTTP.

It has its own SessionMiddleware, so its spans join the conversation's session from the
``X-Session-Id`` header the gateway's httpx hooks send::

    uvicorn --factory examples.fastapi_app.model_service:create_model_service --port 8001
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from examples.fastapi_app.telemetry import tracer_provider
from session_mw import SessionMiddleware


def create_model_service(provider: TracerProvider | None = None) -> SessionMiddleware:
    provider = provider or tracer_provider("model-service")
    tracer = provider.get_tracer("examples.model_service")

    async def generate(request: Request) -> JSONResponse:
        body = await request.json()
        prompt, turn = str(body["prompt"]), int(body["turn"])
        # Continue the gateway's trace: one turn, one trace, across both services.
        with tracer.start_as_current_span(
            "fake-llm",
            context=propagate.extract(request.headers),
            attributes={
                "openinference.span.kind": "LLM",
                "llm.model_name": "fake-echo-1",
                "input.value": prompt,
            },
        ) as span:
            reply = f"Turn {turn}: you said {prompt!r}."
            span.set_attribute("output.value", reply)
        return JSONResponse({"reply": reply})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        provider.shutdown()  # flush what is still queued for Phoenix

    app = Starlette(routes=[Route("/generate", generate, methods=["POST"])], lifespan=lifespan)
    return SessionMiddleware(app)  # outermost: even its 500s carry the header
