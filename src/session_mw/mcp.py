"""MCP: each tool call runs in the session of the conversation that made it, on any transport.

    pip install session-mw "mcp>=2.3"

The client (the agent) sends the current session's id in the ``_meta`` of every request and
notification it sends inside a session, under :data:`META_KEY` (and over HTTP in the
``X-Session-Id`` header too); outside any session it adds nothing::

    async with Client(session_transport(url_or_stdio_parameters)) as client:

The server runs each request in the session its ``_meta`` names, validated like an incoming
header (``validator=``, ``secret=``): an invalid id is never used nor logged, and a request that
names none runs in whatever session its transport gave it (the HTTP request's, or none on
stdio)::

    server = MCPServer("tools", middleware=[SessionServerMiddleware()])

Over HTTP, ``SessionMiddleware(server.streamable_http_app())`` reads the header as well, so a
client that sends only the header (``httpx_async_event_hooks()`` on the SDK transport's httpx2
client) reaches a server without this middleware; when both carry an id, ``_meta`` wins (it is
per request, and the innermost session). docs/mcp.md has the whole picture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from types import TracebackType
from typing import Any

import httpx2
from mcp.client import Transport
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.message import SessionMessage
from mcp_types import JSONRPCNotification, JSONRPCRequest
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from opentelemetry.trace import Span, get_current_span
from opentelemetry.util.types import AttributeValue

from session_mw._bridge import ID_ATTRIBUTES
from session_mw._ids import is_valid_id
from session_mw._scope import Session, current_session
from session_mw._tasks import Secret, TaskSessions, Validator, outgoing
from session_mw.clients import httpx_async_event_hooks

__all__ = ["META_KEY", "SessionServerMiddleware", "session_transport"]

#: The ``_meta`` key a request's session id travels under. MCP's key format: a prefix of
#: dot-separated labels (letters, digits, hyphens) and a slash, then a name; the prefix is the
#: distribution's name, outside the prefixes MCP reserves (``io.modelcontextprotocol/``,
#: ``dev.mcp/``...), and the name the one task queues' messages carry the id under.
META_KEY = "session-mw/session_id"

# The span attribute an MCP session's id (Mcp-Session-Id) goes under, as OpenTelemetry's MCP
# conventions name it.
_MCP_SESSION_ID = "mcp.session.id"

_MCP_SESSION_HEADER = "mcp-session-id"
# The SDK's own timeouts for a client it makes: 30 s, and 300 s to read (a server may hold an
# SSE stream open).
_TIMEOUT = httpx2.Timeout(30.0, read=300.0)


class _CarryingSession:
    """A transport's write stream whose requests and notifications name the sender's session in
    ``_meta``.

    ``send`` runs in the task that sends the message (the SDK writes each one from the caller's
    task), so the session current there is the message's."""

    __slots__ = ("_inner",)

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def send(self, item: SessionMessage, /) -> None:
        message = item.message
        session_id = outgoing()
        if session_id is not None and isinstance(message, (JSONRPCRequest, JSONRPCNotification)):
            params = dict(message.params or {})
            meta = dict(params.get("_meta") or {})
            if META_KEY not in meta:  # a call's own meta=... names its session itself
                meta[META_KEY] = session_id
                params["_meta"] = meta
                item = replace(item, message=message.model_copy(update={"params": params}))
        await self._inner.send(item)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> _CarryingSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def session_transport(
    server: str | StdioServerParameters | Transport,
    *,
    http_client: httpx2.AsyncClient | None = None,
    header_name: str = "X-Session-Id",
) -> Transport:
    """A transport for ``mcp.Client`` whose every request and notification sent in a session
    names it in ``_meta`` (under :data:`META_KEY`); what is sent outside any session is left as
    it is, and so is a call's own ``meta=`` entry under the key.

    :param server: a streamable-HTTP URL, a ``StdioServerParameters`` (the server runs as a
        subprocess, spoken to on stdio), or any MCP transport to wrap.
    :param http_client: for a URL: the ``httpx2.AsyncClient`` to send with, used as it is
        (give it ``event_hooks=session_mw.clients.httpx_async_event_hooks()`` for the header).
        Without one, a client with the SDK's timeouts that also sends the id in the
        ``header_name`` header, closed with the transport.
    :param header_name: the header that client sends the id in.

    ::

        with session("conv-a"):
            async with Client(session_transport("http://127.0.0.1:8000/mcp")) as client:
                await client.call_tool("search", {"q": "flights"})  # the tool runs in conv-a

        params = StdioServerParameters(command="python", args=["-m", "tools"])
        async with Client(session_transport(params)) as client:  # stdio: _meta alone
            ...
    """
    if isinstance(server, str):
        return _http(server, http_client, header_name)
    if isinstance(server, StdioServerParameters):
        return _carrying(stdio_client(server))
    return _carrying(server)


@asynccontextmanager
async def _carrying(transport: Transport) -> AsyncIterator[Any]:
    async with transport as (read_stream, write_stream):
        yield read_stream, _CarryingSession(write_stream)


@asynccontextmanager
async def _http(
    url: str, http_client: httpx2.AsyncClient | None, header_name: str
) -> AsyncIterator[Any]:
    if http_client is not None:
        async with _carrying(streamable_http_client(url, http_client=http_client)) as streams:
            yield streams
        return
    hooks = httpx_async_event_hooks(header_name=header_name)
    async with (
        httpx2.AsyncClient(timeout=_TIMEOUT, event_hooks=hooks) as owned,
        _carrying(streamable_http_client(url, http_client=owned)) as streams,
    ):
        yield streams


class SessionServerMiddleware:
    """MCP server middleware: each request runs in the session its ``_meta`` names (under
    :data:`META_KEY`), on any transport.

    :param validator: a check ``(str) -> bool`` of the ids it accepts, as the HTTP adapters'.
    :param secret: a key (``str``, ``bytes``) or several, newest first: only ids it signed pass.

    Add it to the server's middleware (``MCPServer(..., middleware=[...])``, or
    ``server.middleware.append(...)``). It runs inside the SDK's OpenTelemetry middleware: the
    request's span (``tools/call chat``) gets the session's id too, in place of the one the
    transport's session gave it. The session keeps the transport session's attributes (over
    HTTP: ``url.path``, ``http.route``) and adds ``mcp.method.name``.

    A request whose ``_meta`` names no session, or an invalid one (warned about without its
    value), runs in whatever session is current: the HTTP request's
    (``session_mw.SessionMiddleware`` around the server's app), or none. Nothing is made up.

    A request of an MCP session (the handshake-era protocol over stateful HTTP, whose requests
    carry ``Mcp-Session-Id``) also gets ``mcp.session.id`` on its span and in its ``_meta``
    session's attributes; the 2026-07-28 protocol, stateless servers and stdio have none.

    >>> from mcp.server.mcpserver import MCPServer
    >>> server = MCPServer("tools", middleware=[SessionServerMiddleware()])
    """

    __slots__ = ("_sessions",)

    def __init__(self, *, validator: Validator = None, secret: Secret = None) -> None:
        where = f"{META_KEY} _meta entry"
        self._sessions = TaskSessions("mcp", where, "SessionServerMiddleware", validator, secret)

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        span = get_current_span()  # the SDK's span for the request (tools/call chat)
        recording = span.is_recording()
        mcp_session = _mcp_session_id(ctx)
        if mcp_session is not None and recording:
            span.set_attribute(_MCP_SESSION_ID, mcp_session)
        raw = None if ctx.meta is None else ctx.meta.get(META_KEY)
        checked = self._sessions.begin(raw, ctx.method, ctx.request_id)
        if checked is None:
            return await call_next(ctx)
        # The transport's session (the HTTP request's) says what it knows of the request.
        outer = current_session()
        attributes: dict[str, AttributeValue] = {} if outer is None else dict(outer.attributes)
        attributes["mcp.method.name"] = ctx.method
        if mcp_session is not None:
            attributes[_MCP_SESSION_ID] = mcp_session
        if recording:
            # The span started in the transport's session, and has its id: this one replaces it
            # (an id the span got from elsewhere stays).
            _rename(span, checked.id, None if outer is None else outer.id)
        entered = self._sessions.enter(Session(checked.id, attributes))
        try:
            return await call_next(ctx)
        finally:
            self._sessions.exit(entered)


def _rename(span: Span, session_id: str, replaced: str | None) -> None:
    present = getattr(span, "attributes", None) or {}
    span.set_attributes(
        {key: session_id for key in ID_ATTRIBUTES if present.get(key) in (None, replaced)}
    )


def _mcp_session_id(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """The request's MCP session: only handshake-era requests over HTTP have one."""
    if ctx.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS:
        return None
    headers = getattr(ctx.request, "headers", None)  # Starlette's Request on HTTP; None on stdio
    value = None if headers is None else headers.get(_MCP_SESSION_HEADER)
    return value if isinstance(value, str) and is_valid_id(value) else None
