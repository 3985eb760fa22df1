"""What the tests of the web adapters share: the id they send, what an endpoint answers of its
session, one request straight through the ASGI interface, and the server span's attributes."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from session_mw import Session, current_session

Message = MutableMapping[str, Any]
SID = "chat-42"


def seen() -> dict[str, Any]:
    """What an endpoint sees of its session, returned as JSON by the test apps."""
    opened = current_session()
    assert opened is not None
    return {
        "id": opened.id,
        "attributes": dict(opened.attributes),
        "otel": otel_context.get_value("session.id"),
    }


def turn_answer(before: Session | None) -> dict[str, str | None]:
    """What an endpoint of the concurrency check (tests.servers.concurrent_turns) answers: the
    session it saw ``before`` a pause, the one current after it, and the route."""
    after = current_session()
    return {
        "before": None if before is None else before.id,
        "after": None if after is None else after.id,
        "route": None if after is None else str(after.attributes.get("http.route")),
    }


def _complete(message: Message) -> bool:
    """Whether ``message`` is the last of the answer."""
    if message["type"] == "websocket.close":
        return True
    return message["type"].endswith("response.body") and not message.get("more_body", False)


async def drive(
    app: Any,
    path: str,
    headers: list[tuple[bytes, bytes]],
    kind: str = "http",
    *,
    method: str = "GET",
    root_path: str = "",
    raw_path: bool = True,
    scope_headers: Any = None,
    denial: bool = False,
    send_fails: bool = False,
) -> list[Message]:
    """One request straight through the ASGI interface, from this task: any header bytes, every
    message kept, and afterwards nothing may be current here.

    The client goes away once the answer is complete, as uvicorn tells the app (Litestar's
    streams wait for that); with ``send_fails`` it is gone before: sending it a body fails.
    ``scope_headers`` replaces the scope's headers as they are (any iterable, say);
    ``denial``: a server that can answer a WebSocket handshake with an HTTP response."""
    sent: list[Message] = []
    scope: dict[str, Any] = {
        "type": kind,
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "scheme": "http" if kind == "http" else "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": [(b"host", b"localhost"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
        "extensions": {"websocket.http.response": {}} if denial else {},
    }
    if not raw_path:
        del scope["raw_path"]
    if scope_headers is not None:
        scope["headers"] = scope_headers
    if kind == "http":
        scope["method"] = method
    incoming = (
        [{"type": "http.request", "body": b"", "more_body": False}]
        if kind == "http"
        else [{"type": "websocket.connect"}]
    )
    answered = asyncio.Event()

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        await answered.wait()
        return {"type": f"{kind}.disconnect"}

    async def send(message: Message) -> None:
        if send_fails and message["type"] == "http.response.body" and message.get("body"):
            raise OSError("client went away")
        sent.append(message)
        if _complete(message):
            answered.set()

    try:
        await app(scope, receive, send)
    finally:
        assert current_session() is None
        assert otel_context.get_value("session.id") is None
    return sent


def server_attributes(exporter: InMemorySpanExporter) -> Mapping[str, object]:
    """The attributes of the request's server span: the one finished span without a parent."""
    [server] = [span for span in exporter.get_finished_spans() if span.parent is None]
    return server.attributes or {}
