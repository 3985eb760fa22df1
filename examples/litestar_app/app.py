"""A multi-turn chat service on Litestar whose turns session-mw groups into sessions.

Run it with ``python -m examples.litestar_app.app`` (uvicorn, port 8004), then::

    curl -sN -X POST localhost:8004/chat -H 'Content-Type: application/json' -d '{"message": "hi"}'

The response carries ``X-Session-Id`` (and the ``chat_session`` cookie); send either back to
continue the conversation. Spans go to the console, or to Phoenix when
``PHOENIX_COLLECTOR_ENDPOINT`` is set.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Request, post
from litestar.response import ServerSentEvent, ServerSentEventMessage
from opentelemetry.sdk.trace import TracerProvider

from examples.fastapi_app.app import local_model
from examples.fastapi_app.telemetry import tracer_provider
from session_mw import current_session
from session_mw.litestar import SessionPlugin


def create_app(provider: TracerProvider | None = None) -> Litestar:
    provider = provider or tracer_provider("chat-litestar")
    tracer = provider.get_tracer("examples.litestar_app")
    turns: dict[str, int] = {}  # turns so far per conversation; a real app keeps the history

    @post("/chat")
    async def chat(request: Request[Any, Any, Any]) -> ServerSentEvent:
        message = str((await request.json()).get("message", ""))
        session = current_session()
        assert session is not None  # the plugin opened it before this handler ran
        number = turns[session.id] = turns.get(session.id, 0) + 1

        async def events() -> AsyncIterator[ServerSentEventMessage]:
            # The session stays open while this streams: these spans are in it.
            with tracer.start_as_current_span(
                "chat-turn",
                attributes={"openinference.span.kind": "CHAIN", "input.value": message},
            ) as span:
                reply = await local_model(tracer, message, number)
                for word in reply.split():
                    yield ServerSentEventMessage(data=json.dumps(word + " "))
                span.set_attribute("output.value", reply)
            yield ServerSentEventMessage(event="done", data="{}")

        return ServerSentEvent(events())

    async def flush() -> None:
        provider.shutdown()  # what is still queued for Phoenix

    return Litestar(
        route_handlers=[chat],
        # The plugin: the middleware on every route, and the header on Litestar's own 404s.
        plugins=[SessionPlugin(cookie_name="chat_session")],
        on_shutdown=[flush],
    )


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "8004")))
