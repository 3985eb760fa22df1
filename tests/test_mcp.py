"""MCP servers: one session per MCP client session, the id the server issued.

The official SDK's ``MCPServer.streamable_http_app()`` (examples/mcp_server) wrapped in
``SessionMiddleware(app, header_name="Mcp-Session-Id", issue_ids=False)``, driven by the SDK's own
streamable-HTTP client: under uvicorn for what goes over the wire, in-process for the spans.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client import streamable_http
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette

from examples.fastapi_app.telemetry import tracer_provider
from examples.mcp_server.app import create_app
from tests.servers import free_port, running

# The MCP SDK 2 needs OpenTelemetry API >= 1.28 and pydantic >= 2.12: not installable at the floors.
pytestmark = pytest.mark.above_floors

# Handshake-era MCP (initialize, then Mcp-Session-Id on every request): the protocol that has
# sessions. The SDK's default, "auto", speaks 2026-07-28 to a 2.x server: one self-contained
# request per call, no Mcp-Session-Id (see test_stateless_protocol_runs_without_a_session).
LEGACY = "legacy"
MCP_SESSION_ID = "mcp-session-id"


class Exchange:
    """Every HTTP request an MCP client makes, as its own httpx2 event hooks see them."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str | None, str | None]] = []

    async def record(self, response: httpx2.Response) -> None:
        request = response.request
        self.seen.append(
            (
                request.method,
                response.status_code,
                request.headers.get(MCP_SESSION_ID),
                response.headers.get(MCP_SESSION_ID),
            )
        )

    def client(self, **kwargs: Any) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(event_hooks={"response": [self.record]}, timeout=30, **kwargs)


async def conversation(url: str, exchange: Exchange, *, calls: int = 2, **client: Any) -> list[str]:
    """One MCP client session: initialize, ``calls`` tool calls, then its closing DELETE."""
    async with (
        exchange.client(**client) as http,
        # Looked up on the module at each call: instrumentors wrap it there.
        Client(
            streamable_http.streamable_http_client(url, http_client=http), mode=LEGACY
        ) as session,
    ):
        ids = []
        for _ in range(calls):
            result = await session.call_tool("session_id", {})
            ids.append(result.content[0].text)  # type: ignore[union-attr]
        reply = await session.call_tool("chat", {"message": "hi"})
        assert reply.content[0].text == "Turn 1: you said 'hi'."  # type: ignore[union-attr]
    return ids


@contextmanager
def served(tmp_path: Path, factory: str) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = tmp_path / "server.log"
    with (
        log.open("w") as out,
        running(["uvicorn", "--factory", factory, "--port", str(port)], port, log=out) as url,
    ):
        yield f"{url}/mcp", log


def assert_clean(exchange: Exchange, log: Path) -> str:
    """The MCP session went as it does without session-mw: returns the id the server issued."""
    issued = {response_id for _, _, _, response_id in exchange.seen if response_id}
    assert len(issued) == 1, exchange.seen
    (server_id,) = issued
    methods = [(method, status) for method, status, _, _ in exchange.seen]
    assert methods[0] == ("POST", 200)  # initialize
    assert methods[-1] == ("DELETE", 200)  # the client's closing DELETE succeeded
    assert all(status < 400 for _, status in methods), exchange.seen
    # After initialize, every request carried the id the server issued.
    assert {sent for _, _, sent, _ in exchange.seen[1:]} == {server_id}
    text = log.read_text()
    assert "Session not found" not in text
    assert "unknown or expired session" not in text
    return server_id


@pytest.mark.parametrize(
    "factory",
    ["examples.mcp_server.app:create_app", "tests.apps:mcp_issuing_ids", "tests.apps:fastmcp_app"],
    ids=["issue_ids=False", "issue_ids=True", "fastmcp"],
)
def test_every_tool_call_runs_in_the_session_the_mcp_server_issued(
    tmp_path: Path, factory: str
) -> None:
    with served(tmp_path, factory) as (url, log):
        exchange = Exchange()
        ids = asyncio.run(conversation(url, exchange))
    server_id = assert_clean(exchange, log)
    assert ids == [server_id, server_id]


def test_two_concurrent_clients_get_two_sessions(tmp_path: Path) -> None:
    async def both(url: str) -> list[list[str]]:
        return list(await asyncio.gather(*(conversation(url, e, calls=3) for e in exchanges)))

    exchanges = [Exchange(), Exchange()]
    with served(tmp_path, "examples.mcp_server.app:create_app") as (url, log):
        first, second = asyncio.run(both(url))
    ids = [assert_clean(exchange, log) for exchange in exchanges]
    assert first == [ids[0]] * 3
    assert second == [ids[1]] * 3
    assert ids[0] != ids[1]


def test_the_stateless_protocol_runs_without_a_session(tmp_path: Path) -> None:
    async def call(url: str, exchange: Exchange) -> str:
        async with (
            exchange.client() as http,
            # Mode "auto": 2026-07-28 with a 2.x server, which has no Mcp-Session-Id.
            Client(streamable_http.streamable_http_client(url, http_client=http)) as session,
        ):
            result = await session.call_tool("session_id", {})
            return result.content[0].text  # type: ignore[union-attr]

    exchange = Exchange()
    with served(tmp_path, "examples.mcp_server.app:create_app") as (url, _):
        assert asyncio.run(call(url, exchange)) == ""
    assert all(status < 400 and response_id is None for _, status, _, response_id in exchange.seen)


def test_openinference_mcp_instrumentor_in_the_client_keeps_the_session(tmp_path: Path) -> None:
    from openinference.instrumentation.mcp import MCPInstrumentor

    instrumentor = MCPInstrumentor()
    instrumentor.instrument()  # this process is the client; the server runs uninstrumented
    try:
        with served(tmp_path, "examples.mcp_server.app:create_app") as (url, log):
            exchange = Exchange()
            ids = asyncio.run(conversation(url, exchange))
    finally:
        instrumentor.uninstrument()
    server_id = assert_clean(exchange, log)
    assert ids == [server_id] * 2
    # The server's console exporter printed the chat tool's span and its LLM span, in the session.
    assert log.read_text().count(f'"session.id": "{server_id}"') == 2


def test_openinference_mcp_instrumentor_in_the_server_hides_the_session(tmp_path: Path) -> None:
    # What the README's "MCP servers" section warns of: openinference-instrumentation-mcp 2.0.13
    # replaces the MCP SDK 2's per-message context snapshot with the context of the task reading
    # the stream, so tools see neither the request's session nor its span. MCP itself still works.
    # When this fails, the instrumentor keeps the request's context: drop the README's warning.
    with served(tmp_path, "tests.apps:mcp_with_openinference_instrumentor") as (url, log):
        exchange = Exchange()
        ids = asyncio.run(conversation(url, exchange))
    assert_clean(exchange, log)
    assert ids == ["", ""]


@asynccontextmanager
async def in_process(exporter: InMemorySpanExporter) -> AsyncIterator[httpx2.ASGITransport]:
    app = create_app(tracer_provider("mcp-tools", exporter))
    mcp_app = app.app
    assert isinstance(mcp_app, Starlette)
    async with mcp_app.router.lifespan_context(mcp_app):  # starts the MCP session manager
        yield httpx2.ASGITransport(app=app)


def test_tool_spans_carry_the_mcp_session_id() -> None:
    async def run() -> tuple[list[str], list[str]]:
        exporter = InMemorySpanExporter()
        async with in_process(exporter) as transport:
            base = "http://127.0.0.1:8002"  # the DNS-rebinding check wants a local host:port
            kwargs: dict[str, Any] = {"transport": transport, "base_url": base}
            first = await conversation(f"{base}/mcp", Exchange(), **kwargs)
            second = await conversation(f"{base}/mcp", Exchange(), **kwargs)
        tools = [s for s in exporter.get_finished_spans() if s.name in {"chat", "fake-llm"}]
        return [*first, *second], [str((s.attributes or {})["session.id"]) for s in tools]

    ids, span_ids = asyncio.run(run())
    first, second = ids[0], ids[2]
    assert ids == [first, first, second, second]
    assert first != second
    assert span_ids == [first, first, second, second]  # chat and its fake-llm, per conversation
