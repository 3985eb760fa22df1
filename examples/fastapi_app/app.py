"""A multi-turn chat service on FastAPI whose turns session-mw groups into sessions.

Run it with ``scripts/example fastapi`` (port 8000), then::

    curl -sN -X POST localhost:8000/chat -H 'Content-Type: application/json' -d '{"message": "hi"}'

Spans go to the console, or to Phoenix when ``PHOENIX_COLLECTOR_ENDPOINT`` (or any collector when
``OTEL_EXPORTER_OTLP_ENDPOINT``) is set. With ``MODEL_URL`` set, the model runs in a second
service (``model_service.py``) reached over HTTP; the session goes along in ``X-Session-Id``.
With ``CELERY_BROKER_URL`` set, ``POST /summary`` has a Celery worker summarise the conversation
(``tasks.py``), in the conversation's session.

The chat page, ``static/chat.html``, is served at ``/``: there the browser keeps the session in
the ``chat_session`` cookie, with no script needed. ``CHAT_ALLOWED_ORIGINS`` (comma-separated)
lets pages on other origins call the API; they send ``X-Session-Id`` back themselves.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, StreamingResponse
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel

from examples.fastapi_app.telemetry import tracer_provider
from session_mw import SessionMiddleware, current_session
from session_mw.clients import httpx_async_event_hooks
from session_mw.otel import ID_ATTRIBUTES

if TYPE_CHECKING:
    from celery import Celery

CHAT_PAGE = Path(__file__).parent / "static" / "chat.html"


class Turn(BaseModel):
    message: str


async def local_model(tracer: trace.Tracer, prompt: str, turn: int) -> str:
    """Stands in for a model call made in-process: an LLM span around a canned reply."""
    with tracer.start_as_current_span(
        "fake-llm",
        attributes={
            "openinference.span.kind": "LLM",
            "llm.model_name": "fake-echo-1",
            "input.value": prompt,
        },
    ) as span:
        await asyncio.sleep(0.005)
        reply = f"Turn {turn}: you said {prompt!r}."
        span.set_attribute("output.value", reply)
        return reply


async def remote_model(client: httpx.AsyncClient, prompt: str, turn: int) -> str:
    """The model in the second service: the hooks add X-Session-Id, inject() the trace."""
    headers: dict[str, str] = {}
    propagate.inject(headers)
    response = await client.post(
        "/generate", json={"prompt": prompt, "turn": turn}, headers=headers
    )
    response.raise_for_status()
    return str(response.json()["reply"])


def create_app(
    provider: TracerProvider | None = None,
    model_url: str | None = None,
    user_id: Callable[[Any], object] | None = None,
    celery: Celery | None = None,
    id_attributes: Sequence[str] = ID_ATTRIBUTES,
) -> FastAPI:
    provider = provider or tracer_provider("chat-gateway")
    if celery is None and os.environ.get("CELERY_BROKER_URL"):
        # Imported only when used: the demo needs neither Celery nor a broker.
        from examples.fastapi_app.tasks import celery_app as celery  # noqa: PLC0415
    tracer = provider.get_tracer("examples.fastapi_app")
    model_url = model_url or os.environ.get("MODEL_URL")
    client = httpx.AsyncClient(base_url=model_url or "", event_hooks=httpx_async_event_hooks())
    history: dict[str, list[str]] = {}  # the user's messages so far, per conversation

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await client.aclose()
        provider.shutdown()  # flush what is still queued for Phoenix

    app = FastAPI(title="session-mw chat example", lifespan=lifespan)
    # Browser pages on other origins (static/chat.html) may call the API: CHAT_ALLOWED_ORIGINS.
    origins = [o for o in os.environ.get("CHAT_ALLOWED_ORIGINS", "").split(",") if o]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["POST"],
            allow_headers=["Content-Type", "X-Session-Id"],
        )
    # Added last, so outermost: it appends X-Session-Id to CORS's exposed headers. The cookie
    # carries the session for pages on this origin that never touch the header.
    app.add_middleware(
        SessionMiddleware, cookie_name="chat_session", user_id=user_id, id_attributes=id_attributes
    )

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return CHAT_PAGE.read_text()

    @app.post("/chat")
    async def chat(turn: Turn) -> StreamingResponse:
        session = current_session()
        assert session is not None  # the middleware opened it before this endpoint ran
        messages = history.setdefault(session.id, [])
        messages.append(turn.message)
        number = len(messages)

        async def events() -> AsyncIterator[str]:
            # The session stays open while this streams: these spans are in it.
            with tracer.start_as_current_span(
                "chat-turn",
                attributes={"openinference.span.kind": "CHAIN", "input.value": turn.message},
            ) as span:
                if model_url:
                    reply = await remote_model(client, turn.message, number)
                else:
                    reply = await local_model(tracer, turn.message, number)
                for word in reply.split():
                    await asyncio.sleep(0.005)
                    yield f"data: {json.dumps(word + ' ')}\n\n"
                span.set_attribute("output.value", reply)
            yield "event: done\ndata: {}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    if celery is not None:
        publisher = celery  # bound for the closure: the type checker narrows it

        @app.post("/summary", status_code=202)
        async def summary() -> dict[str, str]:
            session = current_session()
            assert session is not None
            # Published in the session (asyncio.to_thread copies the context): the worker's
            # spans join the conversation's.
            result = await asyncio.to_thread(
                publisher.send_task, "chat.summarize", args=[history.get(session.id, [])]
            )
            return {"task_id": str(result.id)}

    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
