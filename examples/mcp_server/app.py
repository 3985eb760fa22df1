"""An MCP server whose tool calls session-mw groups into one session per MCP client session.

Run it with ``scripts/example mcp`` (port 8002); its streamable-HTTP endpoint is
``http://127.0.0.1:8002/mcp``. Any MCP client will do, the SDK's for one::

    async with mcp.Client("http://127.0.0.1:8002/mcp", mode="legacy") as client:
        await client.call_tool("chat", {"message": "hi"})

The MCP server issues ``Mcp-Session-Id`` when a client initializes, and the client sends it on
every later request: session-mw takes that id as the session (``issue_ids=False``: it never
makes one of its own), so every tool call of one client lands in one Phoenix session. Spans go to
the console, or to Phoenix when ``PHOENIX_COLLECTOR_ENDPOINT`` is set.
"""

from __future__ import annotations

import os
from collections import defaultdict

from mcp.server.mcpserver import MCPServer
from opentelemetry.sdk.trace import TracerProvider

from examples.fastapi_app.app import local_model
from examples.fastapi_app.telemetry import tracer_provider
from session_mw import SessionMiddleware, current_session


def create_app(
    provider: TracerProvider | None = None, *, issue_ids: bool = False
) -> SessionMiddleware:
    provider = provider or tracer_provider("mcp-tools")
    tracer = provider.get_tracer("examples.mcp_server")
    turns: defaultdict[str, int] = defaultdict(int)  # tool calls so far per MCP session
    server = MCPServer("session-mw chat tools")

    @server.tool()
    async def chat(message: str) -> str:
        """Answer a message: the reply counts the turns of this MCP session."""
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
