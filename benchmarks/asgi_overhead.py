"""Per-request overhead of session-mw's ASGI middleware against its peers, in one run.

    python benchmarks/asgi_overhead.py [--rounds 21] [--requests 2000]

Each request goes through the middleware into a minimal ASGI app, in-process (no server, no
socket), so the figures are the middleware's own cost. Peers: asgi-correlation-id (header
``X-Session-Id``, validator off), starlette-context's ``RawContextMiddleware`` with a request-id
plugin, a hand-written pure ASGI middleware around OpenInference's ``using_session``, and the
``BaseHTTPMiddleware`` + ``ContextVar`` pattern. A third table puts them in front of a Starlette
router, where session-mw can also take the id from the path (``path_param``).
"""

from __future__ import annotations

import uuid
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import Any

from asgi_correlation_id import CorrelationIdMiddleware
from openinference.instrumentation import using_session
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, Router
from starlette_context.middleware import RawContextMiddleware
from starlette_context.plugins import RequestIdPlugin

from benchmarks.harness import SESSION_ID, Suites, main
from benchmarks.inprocess import HTTPX, WITH_ID, ASGIApp, Message, Receive, Send, asgi_runner
from session_mw import SessionMiddleware

HEADER = "X-Session-Id"


async def bare(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


class SessionIdPlugin(RequestIdPlugin):
    key = HEADER  # type: ignore[assignment]  # the plugin reads any str; its enum is a default


class UsingSession:
    """What a team writes by hand today: pure ASGI around OpenInference's using_session."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sid = next((v.decode() for k, v in scope["headers"] if k == b"x-session-id"), None)
        sid = sid or str(uuid.uuid4())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-session-id", sid.encode())]
            await send(message)

        with using_session(sid):
            await self.app(scope, receive, send_with_id)


request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class ContextVarBaseHTTP(BaseHTTPMiddleware):
    """The pattern most blog posts show: BaseHTTPMiddleware setting a ContextVar."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        sid = request.headers.get(HEADER) or str(uuid.uuid4())
        token = request_id.set(sid)
        try:
            response = await call_next(request)
        finally:
            request_id.reset(token)
        response.headers[HEADER] = sid
        return response


def apps() -> dict[str, ASGIApp]:
    return {
        "bare app": bare,
        "session-mw": SessionMiddleware(bare),
        "asgi-correlation-id": CorrelationIdMiddleware(bare, header_name=HEADER, validator=None),
        "starlette-context": RawContextMiddleware(bare, plugins=(SessionIdPlugin(validate=False),)),
        "using_session (hand-written)": UsingSession(bare),
        "BaseHTTPMiddleware + ContextVar": ContextVarBaseHTTP(bare),
    }


async def thread(request: Request) -> Response:
    return PlainTextResponse("ok")


def routed() -> Router:
    return Router(routes=[Route("/threads/{thread_id}", thread, methods=["POST"])])


def routed_apps() -> dict[str, ASGIApp]:
    return {
        "Starlette router": routed(),
        "asgi-correlation-id": CorrelationIdMiddleware(
            routed(), header_name=HEADER, validator=None
        ),
        "session-mw": SessionMiddleware(routed()),
        "session-mw, path_param": SessionMiddleware(routed(), path_param="thread_id"),
    }


def suites() -> Suites:
    """Every table: its variants, its baseline and the peer its ratios are taken against."""
    # What httpx sends with a JSON POST.
    common = [*HTTPX, (b"content-length", b"16"), (b"content-type", b"application/json")]
    cases = {
        "with an incoming X-Session-Id header": [*common, WITH_ID],
        "without a header (an id is generated)": common,
    }
    tables: Suites = {
        title: (
            {
                name: asgi_runner(app, "/chat", headers, "POST", disconnect=False)
                for name, app in apps().items()
            },
            "bare app",
            "asgi-correlation-id",
        )
        for title, headers in cases.items()
    }
    # The same request to every variant: the id in the header and in the path (which wins).
    with_header = cases["with an incoming X-Session-Id header"]
    path = f"/threads/{SESSION_ID}"
    tables["a Starlette router, the id in the path and the header"] = (
        {
            name: asgi_runner(app, path, with_header, "POST", disconnect=False)
            for name, app in routed_apps().items()
        },
        "Starlette router",
        "asgi-correlation-id",
    )
    return tables


if __name__ == "__main__":
    main((__doc__ or "").splitlines()[0], suites)
