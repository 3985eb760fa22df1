"""The MCP servers tests/test_mcp_conversation.py talks to, over HTTP (one uvicorn process serving
every configuration under its own prefix) and stdio (tests/mcp_stdio_server.py).

Their tools answer with the session they run in, as session-mw sees it, and make a span; the
server process sends every finished span to the OTLP endpoint of ``OTEL_EXPORTER_OTLP_ENDPOINT``
(the test's receiver, tests/otlp.py) before the request's response leaves, so a test that has its
answer has the spans too.

The MCP SDK is imported inside the functions: pytest imports this module for its doctests in
every run, the lowest one (no MCP SDK) included.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from opentelemetry import trace

from session_mw import SessionMiddleware, current_session

# The tools' names, as the SDK's server spans name them ("tools/call session_id").
SESSION_ID, MEET = "session_id", "meet"


def serve_spans(service: str) -> None:
    """This server process's spans, with the session on each, to the test's OTLP receiver."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from session_mw.otel import SessionSpanProcessor

    provider = TracerProvider(resource=Resource({"service.name": service}))
    provider.add_span_processor(SessionSpanProcessor())
    # Simple, not batched: a span is exported when it ends, before the response goes out.
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)  # the MCP SDK's own spans (tools/call ...) go there too


def add_tools(server: Any) -> None:
    """``session_id`` and ``meet`` on an ``MCPServer`` or a FastMCP server."""
    import anyio

    tracer = trace.get_tracer("tests.mcp_tools")
    groups: dict[str, tuple[anyio.Event, list[str]]] = {}

    def current() -> str:
        opened = current_session()
        return "" if opened is None else opened.id

    async def session_id() -> str:
        """The session this call runs in ("" for none)."""
        with tracer.start_as_current_span(f"tool {SESSION_ID}"):
            return current()

    async def meet(group: str, size: int) -> str:
        """Waits until ``size`` calls of ``group`` are all running, then answers with the
        session this call ran in before and after: calls that overlap, by construction."""
        with tracer.start_as_current_span(f"tool {MEET}"):
            before = current()
            met, arrived = groups.setdefault(group, (anyio.Event(), []))
            arrived.append(before)
            if len(arrived) == size:
                met.set()
            with anyio.fail_after(20):  # a call that never comes fails the test, not hangs it
                await met.wait()
            return f"{before} {current()}"

    for tool in (session_id, meet):
        server.tool()(tool)


def sdk_server(name: str = "session-mw tools") -> Any:
    """The MCP SDK's ``MCPServer`` with the tools, each request in the session its ``_meta``
    names."""
    from mcp.server.mcpserver import MCPServer

    from session_mw.mcp import SessionServerMiddleware

    server = MCPServer(name, middleware=[SessionServerMiddleware()])
    add_tools(server)
    return server


def fastmcp_server() -> Any:
    from fastmcp import FastMCP

    server = FastMCP("session-mw tools")
    add_tools(server)
    return server


def http_apps() -> dict[str, tuple[Any, Any]]:
    """Every HTTP configuration under test, by prefix: (what is served, the MCP app inside it
    whose lifespan runs the MCP session manager)."""
    sdk, stateless = sdk_server(), sdk_server()
    fast, fast_stateless = fastmcp_server(), fastmcp_server()
    apps = {
        # README, "MCP servers": the caller's X-Session-Id (default header).
        "sdk": sdk.streamable_http_app(),
        "sdk-stateless": stateless.streamable_http_app(stateless_http=True),
        "fastmcp": fast.http_app(),
        "fastmcp-stateless": fast_stateless.http_app(stateless_http=True),
    }
    return {prefix: (SessionMiddleware(app), app) for prefix, app in apps.items()}


def create_app() -> Any:
    """uvicorn's factory: every configuration of :func:`http_apps`, each at ``/<prefix>/mcp``."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    serve_spans("mcp-tools-http")
    apps = http_apps()

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for _, mcp_app in apps.values():
                await stack.enter_async_context(mcp_app.router.lifespan_context(mcp_app))
            yield

    routes = [Mount(f"/{prefix}", app=served) for prefix, (served, _) in apps.items()]
    return Starlette(routes=routes, lifespan=lifespan)


def stdio_main() -> None:
    """The stdio server: tests/mcp_stdio_server.py."""
    serve_spans("mcp-tools-stdio")
    # session-mw's warnings to stderr (the client's errlog) one per line, as the test reads them:
    # the MCP SDK's own handler wraps long lines.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("session_mw")
    logger.addHandler(handler)
    logger.propagate = False
    sdk_server().run("stdio")
