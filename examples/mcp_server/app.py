"""An MCP server whose tool calls session-mw groups by conversation.

Run it with ``scripts/example mcp`` (port 8002); its streamable-HTTP endpoint is
``http://127.0.0.1:8002/mcp``. An agent that names its conversation gets every tool call in that
conversation's session, whichever MCP client session it comes through: ``session_transport``
puts the id in each request's ``_meta``, which ``SessionServerMiddleware`` reads::

    with session("conv-a"):
        async with mcp.Client(session_transport("http://127.0.0.1:8002/mcp")) as client:
            await client.call_tool("chat", {"message": "hi"})

Any other MCP client gets one session per MCP client session (handshake-era protocol:
``mcp.Client(url, mode="legacy")``): the server issues ``Mcp-Session-Id`` when a client
initializes, the client sends it on every later request, and session-mw takes that id as the
session (``issue_ids=False``: it never makes one of its own). Spans go to the console, or to
Phoenix when ``PHOENIX_COLLECTOR_ENDPOINT`` is set.
"""

from __future__ import annotations

import os
from collections import defaultdict

from mcp.server.mcpserver import MCPServer
from opentelemetry.sdk.trace import TracerProvider

from examples.fastapi_app.app import local_model
from examples.fastapi_app.telemetry import tracer_provider
from session_mw import SessionMiddleware, current_session
from session_mw.mcp import SessionServerMiddleware


def create_app(
    provider: TracerProvider | None = None, *, issue_ids: bool = False
) -> SessionMiddleware:
    provider = provider or tracer_provider("mcp-tools")
    tracer = provider.get_tracer("examples.mcp_server")
    turns: defaultdict[str, int] = defaultdict(int)  # tool calls so far per session
    # Each request in the conversation its _meta names, over the MCP session's (innermost wins).
    server = MCPServer("session-mw chat tools", middleware=[SessionServerMiddleware()])

    @server.tool()
    async def chat(message: str) -> str:
        """Answer a message: the reply counts the turns of this session."""
        opened = current_session()
        key = "" if opened is None else opened.id
        turns[key] += 1
        with tracer.start_as_current_span(
            "chat", attributes={"openinference.span.kind": "TOOL", "input.value": message}
        ) as span:
            reply = await local_model(tracer, message, turns[key])
            span.set_attribute("output.value", reply)
        return reply

    @server.tool()
    def session_id() -> str:
        """The session this call runs in, as session-mw sees it ("" for none)."""
        opened = current_session()
        return "" if opened is None else opened.id

    return SessionMiddleware(
        server.streamable_http_app(), header_name="Mcp-Session-Id", issue_ids=issue_ids
    )


if __name__ == "__main__":
    import uvicorn
    from opentelemetry import trace

    provider = tracer_provider("mcp-tools")
    trace.set_tracer_provider(provider)  # the MCP SDK's own spans (tools/call ...) go there too
    uvicorn.run(create_app(provider), host="127.0.0.1", port=int(os.environ.get("PORT", "8002")))
