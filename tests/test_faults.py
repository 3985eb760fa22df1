"""Faults: clients that vanish mid-stream, crashing apps and exporters. The session always
closes, the OTel context detaches cleanly, and the next request is clean."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import MutableMapping, Sequence
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from session_mw import SessionMiddleware, current_session
from session_mw.otel import SessionSpanProcessor
from tests.servers import free_port, running


def test_client_dropping_the_socket_mid_stream_under_uvicorn() -> None:
    port = free_port()
    command = ["uvicorn", "tests.apps:fault_app", "--host", "127.0.0.1", "--port", str(port)]
    with running([*command, "--log-level", "warning"], port) as url:
        for n in range(3):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                request = f"GET /stream HTTP/1.1\r\nHost: x\r\nX-Session-Id: gone-{n}\r\n\r\n"
                sock.sendall(request.encode())
                received = b""
                while b"chunk 2 " not in received:
                    received += sock.recv(4096)
                assert f"session gone-{n}".encode() in received
            # The socket is closed while the server still streams.
        deadline = time.monotonic() + 15
        while True:
            state = httpx.get(f"{url}/state").json()
            if len(state["after"]) == 3 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        fresh = httpx.get(f"{url}/turn/1")
        state = httpx.get(f"{url}/state").json()
    assert state["after"][:3] == [None, None, None]  # every dropped stream closed its session
    assert state["detach_errors"] == []
    assert fresh.text == fresh.headers["x-session-id"]
    assert fresh.text not in {"gone-0", "gone-1", "gone-2"}


@pytest.mark.anyio
async def test_send_raising_detaches_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    async def broken(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            raise ConnectionResetError("peer went away")

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            scope = {"type": "http", "path": "/", "method": "GET", "headers": []}
            with pytest.raises(ConnectionResetError):
                await SessionMiddleware(app)(scope, receive, broken)
            assert current_session() is None
    assert "Failed to detach context" not in caplog.text


class BrokenExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise ConnectionError("collector unreachable")

    def shutdown(self) -> None:
        pass


def test_crashing_span_exporter_does_not_leak_or_fail_requests(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(BrokenExporter()))
    tracer = provider.get_tracer("t")

    async def endpoint(request: Request) -> PlainTextResponse:
        with tracer.start_as_current_span("work"):
            await asyncio.sleep(0)
        return PlainTextResponse(current_session().id)  # type: ignore[union-attr]

    app = SessionMiddleware(Starlette(routes=[Route("/", endpoint)]))
    with caplog.at_level(logging.ERROR):
        responses = [TestClient(app).get("/", headers={"X-Session-Id": f"s{n}"}) for n in range(3)]
    assert [r.text for r in responses] == ["s0", "s1", "s2"]
    assert "Exception while exporting Span" in caplog.text  # the SDK says so, the app goes on
    assert current_session() is None
    provider.shutdown()
