"""The caller's conversation travels with every MCP tool call (issue 29), over HTTP and stdio.

An agent opens ``session(conv)`` and calls tools with the MCP SDK 2.x client: the tool runs in
``conv`` on the server. Over HTTP the id goes in ``X-Session-Id`` (``httpx_async_event_hooks``),
read by ``SessionMiddleware(server.streamable_http_app())``; on any transport it goes in each
request's ``_meta`` (``session_transport``), read by ``SessionServerMiddleware``. Each check
holds on both sides: the tool answers the session it runs in, and the agent's spans (this
process: its own span around the call and the SDK's client span) and the server's spans (the
SDK's ``tools/call`` span and the tool's own, sent by the server process to a local OTLP
receiver) carry the same ``session.id``. The SDK carries the trace context from client to server
in ``_meta``, so a server span belongs to the agent turn whose trace it is in.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, cast

import httpx2
import mcp.shared._otel
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import RequestParamsMeta
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from session_mw import SessionMiddleware, current_session, session
from session_mw._signing import Signer
from session_mw.clients import httpx_async_event_hooks
from session_mw.mcp import META_KEY, SessionServerMiddleware, session_transport
from session_mw.otel import SessionSpanProcessor
from tests.mcp_tools import MEET, SESSION_ID, sdk_server
from tests.otlp import Exported, Received, receiver
from tests.servers import ROOT, free_port, running

# The MCP SDK 2 needs OpenTelemetry API >= 1.28 and pydantic >= 2.12: not installable at the floors.
pytestmark = pytest.mark.above_floors

MODES = ["auto", "legacy"]  # the SDK client's default (2026-07-28 with a 2.x server), handshake
SDK_APPS = ["sdk", "sdk-stateless"]  # MCPServer, with SessionServerMiddleware
FASTMCP_APPS = ["fastmcp", "fastmcp-stateless"]


def naming(session_id: object) -> RequestParamsMeta:
    """A call's own ``_meta``, naming a session itself."""
    return cast("RequestParamsMeta", {META_KEY: session_id})


def conversation_id(name: str) -> str:
    """An id no other test uses: the server process and its receiver serve the whole module."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


# -- The agent's side: its spans, and what went over the wire -------------------------------


class Agent:
    """This process's tracing, as an agent has it: a provider with session-mw's span processor.
    The MCP SDK's client spans ("MCP send tools/call ...") go to it too."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SessionSpanProcessor())
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer: Tracer = self.provider.get_tracer("agent")
        # The SDK's tracer follows the global provider, which a test must not set for the rest
        # of the run: this test's provider stands in for it, until the test ends.
        monkeypatch.setattr(mcp.shared._otel, "_tracer", self.provider.get_tracer("mcp-python-sdk"))

    async def call(self, client: Client, tool: str = SESSION_ID, **arguments: Any) -> Turn:
        """One agent turn: a span around one tool call; the tool's answer."""
        with self.tracer.start_as_current_span("agent turn") as span:
            result = await client.call_tool(tool, arguments)
        trace_id = format(span.get_span_context().trace_id, "032x")
        return Turn(result.content[0].text, trace_id)  # type: ignore[union-attr]

    def spans(self, turn: Turn) -> list[ReadableSpan]:
        return [
            s
            for s in self.exporter.get_finished_spans()
            if s.context is not None and format(s.context.trace_id, "032x") == turn.trace_id
        ]


class Turn:
    __slots__ = ("answer", "trace_id")

    def __init__(self, answer: str, trace_id: str) -> None:
        self.answer, self.trace_id = answer, trace_id


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Agent]:
    made = Agent(monkeypatch)
    yield made
    made.provider.shutdown()


class Wire:
    """What each HTTP request of an MCP client carried, and what came back."""

    def __init__(self) -> None:
        # (JSON-RPC method or HTTP method, X-Session-Id sent, X-Session-Id answered,
        #  Mcp-Session-Id answered)
        self.seen: list[tuple[str, str | None, str | None, str | None]] = []

    async def record(self, response: httpx2.Response) -> None:
        request = response.request
        method = request.method
        if request.content:
            body = json.loads(request.content)
            method = body.get("method", method) if isinstance(body, dict) else method
        self.seen.append(
            (
                method,
                request.headers.get("x-session-id"),
                response.headers.get("x-session-id"),
                response.headers.get("mcp-session-id"),
            )
        )

    def client(self, *, header: bool, **kwargs: Any) -> httpx2.AsyncClient:
        hooks: dict[str, list[Any]] = {"response": [self.record]}
        if header:
            hooks["request"] = httpx_async_event_hooks()["request"]
        return httpx2.AsyncClient(event_hooks=hooks, timeout=30, **kwargs)

    def answered(self, method: str) -> list[str | None]:
        """The X-Session-Id the server answered each ``method`` request with."""
        return [answered for m, _, answered, _ in self.seen if m == method]

    def mcp_session(self) -> str | None:
        issued = {mcp for _, _, _, mcp in self.seen if mcp}
        assert len(issued) <= 1, self.seen
        return next(iter(issued), None)


# -- The server's side: the spans it sent ----------------------------------------------------


def server_spans(received: Received, turn: Turn) -> list[Exported]:
    with received.lock:
        return [s for s in received.exported if s.trace_id == turn.trace_id]


def assert_in_session(
    agent: Agent, received: Received, turn: Turn, expected: str | None, tool: str = SESSION_ID
) -> list[Exported]:
    """The agent's spans of ``turn`` and the server's carry ``expected`` (None: no session),
    the server's spans of the call (the SDK's and the tool's) among them. Returns the server's."""
    mine = agent.spans(turn)
    assert {s.name for s in mine} >= {"agent turn", f"MCP send tools/call {tool}"}
    theirs = server_spans(received, turn)
    assert {s.name for s in theirs} >= {f"tools/call {tool}", f"tool {tool}"}, theirs
    for span in mine:
        assert (span.attributes or {}).get("session.id") == expected, span.name
    for exported in theirs:
        assert exported.attributes.get("session.id") == expected, exported.name
    return theirs


# -- HTTP: one uvicorn process serving every configuration (tests/mcp_tools.py) ---------------


@pytest.fixture(scope="module")
def otlp() -> Iterator[tuple[str, Received]]:
    with receiver() as found:
        yield found


@pytest.fixture(scope="module")
def http_server(
    otlp: tuple[str, Received], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Received]]:
    """The server's URL, and the spans it sent."""
    port = free_port()
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp[0]}
    log = tmp_path_factory.mktemp("mcp-http") / "server.log"
    args = ["uvicorn", "--factory", "tests.mcp_tools:create_app", "--port", str(port)]
    with log.open("w") as out, running(args, port, env=env, log=out) as url:
        yield url, otlp[1]
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "Session not found" not in text


@asynccontextmanager
async def http_client(
    url: str, wire: Wire, carrier: str, mode: str, **kwargs: Any
) -> AsyncIterator[Client]:
    """An MCP client of ``url`` that sends the session as ``carrier`` says:

    - ``header``: README's line, the SDK's transport given an httpx2 client with session-mw's
      hooks (X-Session-Id);
    - ``_meta``: ``session_transport`` given an httpx2 client without them;
    - ``both``: ``session_transport(url)`` as documented: it makes its own httpx2 client, which
      sends the header too (nothing records that wire). In-process (``kwargs``: the ASGI
      transport) it is given the client with the hooks instead."""
    async with wire.client(header=carrier != "_meta", **kwargs) as http:
        if carrier == "header":
            transport: Any = streamable_http_client(url, http_client=http)
        elif carrier == "both" and not kwargs:
            transport = session_transport(url)
        else:
            transport = session_transport(url, http_client=http)
        async with Client(transport, mode=mode) as client:
            yield client


CARRIED = [(app, "header") for app in SDK_APPS + FASTMCP_APPS] + [
    *((app, "_meta") for app in SDK_APPS),
    *((app, "both") for app in SDK_APPS + FASTMCP_APPS),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("app", "carrier"), CARRIED)
def test_http_tool_calls_run_in_the_callers_conversation(
    http_server: tuple[str, Received],
    agent: Agent,
    app: str,
    carrier: str,
    mode: str,
) -> None:
    """Inside ``session(conv)`` the tool runs in ``conv``; outside any session, in the server's
    own (``SessionMiddleware``'s default makes one per request, echoed in X-Session-Id)."""
    conv = conversation_id("conv-a")
    url = f"{http_server[0]}/{app}/mcp"
    inside_wire, outside_wire = Wire(), Wire()

    async def run() -> tuple[list[Turn], Turn]:
        with session(conv):
            async with http_client(url, inside_wire, carrier, mode) as client:
                inside = [await agent.call(client), await agent.call(client)]
        async with http_client(url, outside_wire, carrier, mode) as client:
            outside = await agent.call(client)
        return inside, outside

    inside, outside = asyncio.run(run())
    assert [turn.answer for turn in inside] == [conv, conv]
    for turn in inside:
        spans = assert_in_session(agent, http_server[1], turn, conv)
    # The HTTP request's attributes stay on the tool's spans when _meta opens the session, which
    # adds the MCP method.
    tool = next(s for s in spans if s.name == f"tool {SESSION_ID}")
    assert tool.attributes["url.path"] == f"/{app}/mcp"
    meta_read = app in SDK_APPS and carrier != "header"
    assert tool.attributes.get("mcp.method.name") == ("tools/call" if meta_read else None)

    # Outside any session: the server's own, a new id per request (SessionMiddleware's default).
    assert uuid.UUID(outside.answer).version == 4
    call = {f"tools/call {SESSION_ID}", f"tool {SESSION_ID}"}
    outside_spans = [s for s in server_spans(http_server[1], outside) if s.name in call]
    assert [s.attributes.get("session.id") for s in outside_spans] == [outside.answer] * 2

    # mcp.session.id on the SDK server's span, only when the protocol has an MCP session.
    tools_call = next(s for s in spans if s.name == f"tools/call {SESSION_ID}")
    if app in SDK_APPS:
        has_mcp_session = mode == "legacy" and app == "sdk"
        assert ("mcp.session.id" in tools_call.attributes) == has_mcp_session

    if carrier == "both":
        return  # session_transport(url) made its own httpx2 client: nothing recorded the wire
    sent = [sent for method, sent, _, _ in inside_wire.seen if method == "tools/call"]
    assert sent == ([conv, conv] if carrier == "header" else [None, None])
    assert outside_wire.answered("tools/call") == [outside.answer]  # echoed: the server's own
    if app in SDK_APPS:
        assert tools_call.attributes.get("mcp.session.id") == inside_wire.mcp_session()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "setup",  # (app, carrier, one client for both conversations)
    [("sdk", "both", False), ("sdk", "both", True), ("fastmcp", "header", True)],
    ids=["sdk-two-clients", "sdk-one-client", "fastmcp-one-client"],
)
def test_two_concurrent_agents_never_mix_over_http(
    http_server: tuple[str, Received], agent: Agent, setup: tuple[str, str, bool], mode: str
) -> None:
    """Two conversations call ``meet``, which answers only once both calls are running on the
    server: they overlap, and each still runs (before and after the other's) in its own. With
    one client, both go through one MCP client, as an agent serving many users keeps one."""
    app, carrier, shared = setup
    url = f"{http_server[0]}/{app}/mcp"
    convs = [conversation_id("left"), conversation_id("right")]
    group = uuid.uuid4().hex

    async def one(conv: str, client: Client | None) -> Turn:
        with session(conv):
            if client is not None:
                return await agent.call(client, MEET, group=group, size=2)
            async with http_client(url, Wire(), carrier, mode) as own:
                return await agent.call(own, MEET, group=group, size=2)

    async def run() -> list[Turn]:
        if not shared:
            return list(await asyncio.gather(*(one(conv, None) for conv in convs)))
        async with http_client(url, Wire(), carrier, mode) as client:
            return list(await asyncio.gather(*(one(conv, client) for conv in convs)))

    turns = asyncio.run(run())
    for conv, turn in zip(convs, turns, strict=True):
        assert turn.answer == f"{conv} {conv}"
        assert_in_session(agent, http_server[1], turn, conv, MEET)


# -- Which wins: the caller's conversation, the MCP session, _meta (in-process over ASGI) ------


def nested(conversation_first: bool) -> tuple[Any, Any]:
    """An MCP server behind two SessionMiddlewares: X-Session-Id and Mcp-Session-Id, each with
    ``issue_ids=False``. The inner one's session is current when both have one."""
    mcp_app = sdk_server().streamable_http_app()
    caller = {"issue_ids": False}
    mcp_session = {"header_name": "Mcp-Session-Id", "issue_ids": False}
    inner, outer = (caller, mcp_session) if conversation_first else (mcp_session, caller)
    return SessionMiddleware(SessionMiddleware(mcp_app, **inner), **outer), mcp_app


BASE = "http://127.0.0.1:8002"  # in-process: the DNS-rebinding check wants a local host:port


def served(app: Any) -> httpx2.ASGITransport:
    """``app`` behind an in-process transport, run as a server runs it: in a context of its
    own. ASGITransport runs the app in the calling task, whose session (the client's) the
    server would otherwise see without anything carrying it."""

    async def isolated(scope: Any, receive: Any, send: Any) -> None:
        # Context().run: the task copies the empty context, on Python 3.10 too.
        await contextvars.Context().run(asyncio.ensure_future, app(scope, receive, send))

    return httpx2.ASGITransport(app=isolated)


@pytest.mark.parametrize("conversation_first", [True, False], ids=["caller-wins", "mcp-wins"])
def test_the_inner_middleware_wins_when_a_request_carries_both_headers(
    agent: Agent, conversation_first: bool
) -> None:
    """``SessionMiddleware(SessionMiddleware(app, issue_ids=False), header_name="Mcp-Session-Id",
    issue_ids=False)``: the caller's conversation wins, the MCP session is the fallback; nested
    the other way round, the MCP session wins. ``_meta`` wins over both."""
    exporter = InMemorySpanExporter()
    agent.provider.add_span_processor(SimpleSpanProcessor(exporter))  # the server's spans too
    app, mcp_app = nested(conversation_first)
    conv = conversation_id("conv-a")
    kwargs: dict[str, Any] = {"transport": served(app), "base_url": BASE}

    async def run(carrier: str, in_session: bool) -> tuple[str, str | None]:
        wire = Wire()
        with session(conv) if in_session else no_session():
            async with http_client(f"{BASE}/mcp", wire, carrier, "legacy", **kwargs) as client:
                turn = await agent.call(client)
        return turn.answer, wire.mcp_session()

    async def all_runs() -> list[tuple[str, str | None]]:
        async with mcp_app.router.lifespan_context(mcp_app):  # the MCP session manager
            return [
                await run("header", True),  # X-Session-Id and Mcp-Session-Id
                await run("header", False),  # Mcp-Session-Id alone
                await run("both", True),  # both headers, and _meta
            ]

    (both, issued), (alone, issued_alone), (meta, issued_meta) = asyncio.run(all_runs())
    assert both == (conv if conversation_first else issued)
    assert alone == issued_alone  # no conversation: the MCP session, in either order
    assert meta == conv
    # The handshake-era protocol has MCP sessions: the SDK's tools/call span names each.
    calls = [s for s in exporter.get_finished_spans() if s.name == f"tools/call {SESSION_ID}"]
    assert [(s.attributes or {}).get("mcp.session.id") for s in calls] == [
        issued,
        issued_alone,
        issued_meta,
    ]
    assert None not in {issued, issued_alone, issued_meta}


def test_a_forged_mcp_session_id_on_the_stateless_protocol_is_not_named(agent: Agent) -> None:
    """The 2026-07-28 protocol has no MCP session: a server ignores an Mcp-Session-Id header
    sent with it, and so does the span."""
    exporter = InMemorySpanExporter()
    agent.provider.add_span_processor(SimpleSpanProcessor(exporter))  # the server's spans too
    mcp_app = sdk_server().streamable_http_app()
    forged = {"Mcp-Session-Id": "forged-id"}

    async def run() -> str:
        async with (
            mcp_app.router.lifespan_context(mcp_app),
            httpx2.AsyncClient(transport=served(mcp_app), base_url=BASE, headers=forged) as http,
            Client(session_transport(f"{BASE}/mcp", http_client=http)) as client,
        ):
            with session("conv-a"):
                return (await agent.call(client)).answer

    assert asyncio.run(run()) == "conv-a"
    (call,) = [s for s in exporter.get_finished_spans() if s.name == f"tools/call {SESSION_ID}"]
    assert (call.attributes or {}).get("mcp.protocol.version") == "2026-07-28"
    assert "mcp.session.id" not in (call.attributes or {})
    assert (call.attributes or {}).get("session.id") == "conv-a"


@contextmanager
def no_session() -> Iterator[None]:
    assert current_session() is None
    yield


# -- stdio: a server subprocess, the id in _meta alone ----------------------------------------


def stdio_params(otlp_url: str) -> StdioServerParameters:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_url}
    return StdioServerParameters(
        command=sys.executable, args=["-m", "tests.mcp_stdio_server"], env=env, cwd=str(ROOT)
    )


@pytest.mark.parametrize("mode", MODES)
def test_stdio_tool_calls_run_in_the_callers_conversation(
    otlp: tuple[str, Received], agent: Agent, mode: str
) -> None:
    """On stdio nothing carries a session but ``_meta``: inside ``session(conv)`` the tool
    runs in ``conv``, outside any session in none."""
    conv = conversation_id("conv-a")

    async def run() -> tuple[list[Turn], Turn]:
        # StdioServerParameters, as mcp.Client takes them: session_transport launches the server.
        async with Client(session_transport(stdio_params(otlp[0])), mode=mode) as client:
            with session(conv):
                inside = [await agent.call(client), await agent.call(client)]
            outside = await agent.call(client)
        return inside, outside

    inside, outside = asyncio.run(run())
    assert [turn.answer for turn in inside] == [conv, conv]
    for turn in inside:
        spans = assert_in_session(agent, otlp[1], turn, conv)
        # stdio has no MCP session: no mcp.session.id
        assert all("mcp.session.id" not in s.attributes for s in spans)
    assert outside.answer == ""
    assert_in_session(agent, otlp[1], outside, None)


def test_stdio_concurrent_conversations_on_one_connection_never_mix(
    otlp: tuple[str, Received], agent: Agent
) -> None:
    """Three conversations share one stdio connection and overlap on the server (``meet``
    answers once all three calls run), and a call outside any session overlaps with them."""
    convs = [conversation_id("one"), conversation_id("two"), conversation_id("three")]
    group = uuid.uuid4().hex

    async def one(client: Client, conv: str | None) -> Turn:
        with session(conv) if conv is not None else no_session():
            return await agent.call(client, MEET, group=group, size=4)

    async def run() -> list[Turn]:
        async with Client(session_transport(stdio_params(otlp[0]))) as client:
            return list(await asyncio.gather(*(one(client, c) for c in [*convs, None])))

    turns = asyncio.run(run())
    for conv, turn in zip([*convs, None], turns, strict=True):
        assert turn.answer == (f"{conv} {conv}" if conv else " ")
        assert_in_session(agent, otlp[1], turn, conv, MEET)


def test_stdio_an_invalid_id_in_meta_is_never_used_nor_logged(
    otlp: tuple[str, Received], agent: Agent, tmp_path: Path
) -> None:
    """A call whose own ``meta=`` names an invalid id (it wins over the session's): the tool
    runs in no session, and the server's warning says what is wrong without the value."""
    forged = "conv-a\r\nWARNING forged log line"
    errlog = tmp_path / "server.stderr"

    async def run() -> Turn:
        with errlog.open("w") as err, session("conv-b"):
            transport = session_transport(stdio_client(stdio_params(otlp[0]), errlog=err))
            async with Client(transport, mode="legacy") as client:
                with agent.tracer.start_as_current_span("agent turn") as span:
                    result = await client.call_tool(SESSION_ID, {}, meta=naming(forged))
        return Turn(result.content[0].text, format(span.get_span_context().trace_id, "032x"))  # type: ignore[union-attr]

    turn = asyncio.run(run())
    assert turn.answer == ""
    call = {f"tools/call {SESSION_ID}", f"tool {SESSION_ID}"}
    theirs = [s for s in server_spans(otlp[1], turn) if s.name in call]
    assert len(theirs) == 2
    for exported in theirs:
        assert "session.id" not in exported.attributes
        assert not any("forged" in str(value) for value in exported.attributes.values())
    text = errlog.read_text()
    assert f"Ignored an invalid {META_KEY} _meta entry ({len(forged)} characters;" in text
    assert "forged" not in text


# -- The server middleware's rules, in-process -----------------------------------------------


SECRET = "a secret of at least sixteen bytes"


@pytest.mark.parametrize(
    ("options", "meta", "runs_in"),
    [
        ({}, "conv-a", "conv-a"),
        ({}, "", None),
        ({}, "x" * 129, None),
        ({}, 42, "42"),  # as every source: the value as a string, validated
        ({}, {"id": "conv-a"}, None),
        ({"validator": lambda i: i.startswith("conv-")}, "conv-a", "conv-a"),
        ({"validator": lambda i: i.startswith("conv-")}, "chat-a", None),
        ({"secret": SECRET}, "conv-a", None),  # unsigned
        ({"secret": SECRET}, Signer([SECRET]).sign("conv-a"), "signed"),
    ],
    ids=[
        "valid",
        "empty",
        "too-long",
        "number",
        "object",
        "validator-yes",
        "validator-no",
        "unsigned",
        "signed",
    ],
)
def test_meta_ids_follow_the_header_rules(
    options: dict[str, Any], meta: Any, runs_in: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("rules", middleware=[SessionServerMiddleware(**options)])

    @server.tool()
    def session_id() -> str:
        opened = current_session()
        return "" if opened is None else opened.id

    async def run() -> str:
        # In-process over JSON-RPC (the handshake-era path), nothing but _meta in play.
        async with Client(server, mode="legacy") as client:
            result = await client.call_tool(SESSION_ID, {}, meta=naming(meta))
            return result.content[0].text  # type: ignore[union-attr]

    with caplog.at_level(logging.WARNING, logger="session_mw"):
        answer = asyncio.run(run())
    expected = meta if runs_in == "signed" else runs_in
    assert answer == (expected or "")
    warned = [r.getMessage() for r in caplog.records if r.name == "session_mw"]
    if expected is None:
        assert len(warned) == 1
        assert "Ignored an invalid session-mw/session_id _meta entry" in warned[0]
        assert str(meta) not in warned[0] or str(meta) == ""
    else:
        assert warned == []


def test_what_a_client_sends_names_its_session_and_nothing_outside_one(agent: Agent) -> None:
    """Every request and notification sent in a session names it in ``_meta`` (initialize and
    notifications/initialized of a client opened in one too); nothing sent outside a session
    does; a call's own ``meta=`` entry stays as the call wrote it."""
    seen: list[tuple[str, Any]] = []
    server = sdk_server()

    async def record(ctx: Any, call_next: Any) -> Any:
        seen.append((ctx.method, None if ctx.meta is None else ctx.meta.get(META_KEY)))
        return await call_next(ctx)

    server.middleware.insert(0, record)  # outermost: what arrived, before anything reads it
    mcp_app = server.streamable_http_app()

    @asynccontextmanager
    async def connected() -> AsyncIterator[Client]:
        # No SessionMiddleware and no header: _meta alone. Handshake-era: it has notifications.
        async with (
            httpx2.AsyncClient(transport=served(mcp_app), base_url=BASE) as http,
            Client(session_transport(f"{BASE}/mcp", http_client=http), mode="legacy") as client,
        ):
            yield client

    async def run() -> list[str]:
        async with mcp_app.router.lifespan_context(mcp_app):
            async with connected() as client:
                outside = await agent.call(client)
            with session("conv-a"):
                async with connected() as client:
                    inside = await agent.call(client)
                    own = await client.call_tool(SESSION_ID, {}, meta=naming("conv-b"))
        return [outside.answer, inside.answer, own.content[0].text]  # type: ignore[union-attr]

    assert asyncio.run(run()) == ["", "conv-a", "conv-b"]
    # The server handles a notification beside the requests that follow it: in any order.
    sent = ["initialize", "notifications/initialized", "tools/call", "tools/list"]
    assert Counter(seen) == Counter(
        [*((m, None) for m in sent), *((m, "conv-a") for m in sent), ("tools/call", "conv-b")]
    )


def test_the_example_counts_turns_per_conversation_across_mcp_client_sessions() -> None:
    """examples/mcp_server as its docstring shows it: one conversation, three MCP client
    sessions (the default protocol, then two handshake-era ones, each with its own
    Mcp-Session-Id): one session, whose turns the chat tool counts, on every span."""
    from examples.fastapi_app.telemetry import tracer_provider
    from examples.mcp_server.app import create_app

    exporter = InMemorySpanExporter()
    app = create_app(tracer_provider("mcp-tools", exporter))
    mcp_app = app.app
    conv = conversation_id("conv-a")

    async def chat(mode: str, message: str) -> str:
        wire = Wire()
        with session(conv):
            async with (
                wire.client(header=False, transport=served(app), base_url=BASE) as http,
                Client(session_transport(f"{BASE}/mcp", http_client=http), mode=mode) as client,
            ):
                result = await client.call_tool("chat", {"message": message})
        assert (wire.mcp_session() is not None) == (mode == "legacy")
        return result.content[0].text  # type: ignore[union-attr]

    async def run() -> list[str]:
        async with mcp_app.router.lifespan_context(mcp_app):  # type: ignore[attr-defined]
            return [
                await chat("auto", "hi"),
                await chat("legacy", "and"),
                await chat("legacy", "bye"),
            ]

    assert asyncio.run(run()) == [
        "Turn 1: you said 'hi'.",
        "Turn 2: you said 'and'.",
        "Turn 3: you said 'bye'.",
    ]
    spans = [s for s in exporter.get_finished_spans() if s.name in {"chat", "fake-llm"}]
    assert len(spans) == 6
    assert {(s.attributes or {}).get("session.id") for s in spans} == {conv}
