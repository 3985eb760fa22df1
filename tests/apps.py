"""Apps that the integration tests serve with real servers (``uvicorn tests.apps:asgi_app``)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
from werkzeug.serving import run_simple

from session_mw import SessionMiddleware, current_session
from session_mw.flask import SessionMiddleware as FlaskSessionMiddleware

asgi_app = FastAPI()
asgi_app.add_middleware(SessionMiddleware)


@asgi_app.get("/turn/{conversation_id}")
async def turn(conversation_id: str) -> dict[str, str | None]:
    """Answers the session id seen before and after awaiting, while other requests run."""
    before = current_session()
    await asyncio.sleep(random.uniform(0, 0.02))
    after = current_session()
    return {
        "before": None if before is None else before.id,
        "after": None if after is None else after.id,
        "route": None if after is None else str(after.attributes.get("http.route")),
    }


wsgi_app = Flask(__name__)
FlaskSessionMiddleware(wsgi_app)


@wsgi_app.get("/turn/<conversation_id>")
def wsgi_turn(conversation_id: str) -> dict[str, str | None]:
    """The WSGI twin of ``turn``: a blocking sleep while other threads serve other sessions."""
    before = current_session()
    time.sleep(random.uniform(0, 0.02))
    after = current_session()
    return {
        "before": None if before is None else before.id,
        "after": None if after is None else after.id,
        "route": None if after is None else str(after.attributes.get("http.route")),
        "thread": threading.current_thread().name,
    }


if __name__ == "__main__":  # python -m tests.apps PORT: Werkzeug's threaded server
    run_simple("127.0.0.1", int(sys.argv[1]), wsgi_app, threaded=True)


fake_openai = FastAPI()


@fake_openai.post("/v1/chat/completions")
async def completions(body: dict[str, Any]) -> dict[str, Any]:
    """A tiny OpenAI-compatible chat-completions endpoint: echoes the last user message."""
    text = f"You said: {body['messages'][-1]['content']}"
    return {
        "id": "chatcmpl-local",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6},
    }


class Recorder:
    """Outermost ASGI wrapper for the fault tests: what is current once session-mw returned,
    and every 'Failed to detach context' OpenTelemetry logs, answered at /state."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.after: list[str | None] = []
        self.detach_errors: list[str] = []
        recorder = self

        class Errors(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                recorder.detach_errors.append(record.getMessage())

        logging.getLogger("opentelemetry.context").addHandler(Errors())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/state":
            body = json.dumps({"after": self.after, "detach_errors": self.detach_errors})
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body.encode()})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                opened = current_session()
                self.after.append(None if opened is None else opened.id)


async def slow_stream(request: Request) -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for n in range(200):
            yield f"chunk {n} of session {current_session().id}\n".encode()  # type: ignore[union-attr]
            await asyncio.sleep(0.01)

    return StreamingResponse(chunks())


async def turn_plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse(current_session().id)  # type: ignore[union-attr]


fault_app = Recorder(
    SessionMiddleware(
        Starlette(routes=[Route("/stream", slow_stream), Route("/turn/{x}", turn_plain)])
    )
)


def mcp_issuing_ids() -> Any:
    """The MCP example with the default ``issue_ids=True``: the server's id must still win."""
    from examples.mcp_server.app import create_app

    return create_app(issue_ids=True)


def mcp_with_openinference_instrumentor() -> Any:
    """The MCP example in a server instrumented by openinference-instrumentation-mcp."""
    from openinference.instrumentation.mcp import MCPInstrumentor

    from examples.mcp_server.app import create_app

    MCPInstrumentor().instrument()
    return create_app()


def fastmcp_app() -> Any:
    """The MCP example's two tools on FastMCP, whose app is its own."""
    from fastmcp import FastMCP

    server = FastMCP("session-mw chat tools")
    turns: dict[str, int] = {}

    @server.tool
    def session_id() -> str:
        opened = current_session()
        return "" if opened is None else opened.id

    @server.tool
    def chat(message: str) -> str:
        key = session_id()
        turns[key] = turns.get(key, 0) + 1
        return f"Turn {turns[key]}: you said {message!r}."

    return SessionMiddleware(server.http_app(), header_name="Mcp-Session-Id", issue_ids=False)


def langfuse_chat() -> Any:
    """The FastAPI example as a Langfuse user runs it: Langfuse's client (configured by the
    LANGFUSE_* environment) makes the tracer provider, ``add_session_processor()`` puts the session
    on it, and an ``@observe``-decorated function answers inside the example's requests."""
    from langfuse import Langfuse, observe
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from examples.fastapi_app.app import create_app
    from session_mw.otel import add_session_processor

    Langfuse()
    # session.id alone: Langfuse exports every span that carries a gen_ai.* attribute, and
    # gen_ai.conversation.id on every span would export the HTTP spans too.
    provider = add_session_processor(id_attributes=["session.id"])
    assert isinstance(trace.get_tracer_provider(), TracerProvider)
    app = create_app(provider, user_id=user_header, id_attributes=["session.id"])

    @observe(as_type="generation")
    def generate(message: str) -> str:
        return message.upper()

    @observe()
    def answer(message: str) -> str:
        return generate(message)

    @app.post("/ask")
    def ask(body: dict[str, str]) -> dict[str, str]:
        return {"reply": answer(body["message"])}

    return app


def user_header(scope: Any) -> str | None:
    """The user id an ASGI request names in its ``X-User`` header."""
    return dict(scope["headers"]).get(b"x-user", b"").decode() or None
