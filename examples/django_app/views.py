"""The chat view: the reply streams as server-sent events, inside the conversation's session."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from django.http import HttpRequest, HttpResponseBadRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase

from examples.fastapi_app.app import local_model
from examples.fastapi_app.telemetry import tracer_provider
from session_mw import current_session

provider = tracer_provider("chat-django")
tracer = provider.get_tracer("examples.django_app")
turns: dict[str, int] = {}  # turns so far per conversation; a real app keeps the history


async def chat(request: HttpRequest) -> HttpResponseBase:
    if request.method != "POST":
        return HttpResponseBadRequest('POST a JSON body: {"message": "..."}\n')
    message = str(json.loads(request.body or b"{}").get("message", ""))
    session = current_session()
    assert session is not None  # the middleware opened it before this view ran
    number = turns[session.id] = turns.get(session.id, 0) + 1

    async def events() -> AsyncIterator[str]:
        # The session is current while this streams, chunk by chunk: these spans are in it.
        with tracer.start_as_current_span(
            "chat-turn", attributes={"openinference.span.kind": "CHAIN", "input.value": message}
        ) as span:
            reply = await local_model(tracer, message, number)
            for word in reply.split():
                yield f"data: {json.dumps(word + ' ')}\n\n"
            span.set_attribute("output.value", reply)
        yield "event: done\ndata: {}\n\n"

    return StreamingHttpResponse(events(), content_type="text/event-stream")
