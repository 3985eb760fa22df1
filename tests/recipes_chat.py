"""The chat service every backend recipe (docs/backends.md) serves: one FastAPI route whose turn
makes a child span (a stand-in for the model call) and streams its reply from inside a span of
its own, after the endpoint returned. Each recipe module adds its backend's set-up around it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from opentelemetry.trace import TracerProvider
from pydantic import BaseModel

from session_mw import SessionMiddleware


class Turn(BaseModel):
    message: str


#: The spans each turn makes besides the server's (and the ASGI instrumentation's send/receive).
TURN_SPANS = ("fake-llm", "stream-reply")


def chat_app(
    provider: TracerProvider,
    id_attributes: Sequence[str],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    on_turn: Callable[[str], object] | None = None,
) -> FastAPI:
    """The service, with session-mw marking the server span under ``id_attributes``; the caller
    instruments it (after this, so OTel's middleware is the outermost). ``on_turn`` is called
    with each message in the endpoint (to log it, say)."""
    app = FastAPI(lifespan=lifespan)
    app.add_middleware(SessionMiddleware, id_attributes=list(id_attributes))
    tracer = provider.get_tracer("tests.recipes_chat")

    @app.post("/chat")
    async def chat(turn: Turn) -> StreamingResponse:
        if on_turn is not None:
            on_turn(turn.message)
        with tracer.start_as_current_span(
            "fake-llm", attributes={"gen_ai.operation.name": "chat"}
        ) as llm:
            await asyncio.sleep(0.001)
            reply = f"you said {turn.message}"
            llm.set_attribute("gen_ai.response.model", "fake-echo-1")

        async def words() -> AsyncIterator[str]:
            # Runs once the endpoint has returned, while the body streams: still in the session.
            with tracer.start_as_current_span("stream-reply"):
                for word in reply.split():
                    await asyncio.sleep(0.001)
                    yield word + " "

        return StreamingResponse(words(), media_type="text/plain")

    return app
