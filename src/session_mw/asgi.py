"""The pure ASGI adapter, for Starlette, FastAPI and any other ASGI app."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

from session_mw.headers import HeaderNames
from session_mw.ids import IdPolicy, Rejected, session_id_from_baggage
from session_mw.routes import find_routes, route_template
from session_mw.scope import Session, close_session, open_session

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue
    from typing_extensions import Unpack

    from session_mw.ids import Options

__all__ = ["SessionMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("session_mw")

# The messages that open a response: the ones whose headers carry the id.
_RESPONSE_STARTS = frozenset(
    {"http.response.start", "websocket.accept", "websocket.http.response.start"}
)
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


class SessionMiddleware:
    """Opens a session for every HTTP request and WebSocket connection.

    The id comes from the request header (or is generated), is echoed in the response header, and
    is current, with ``url.path``, ``http.request.method`` and ``http.route``, from before the app
    is called until it returns: streamed bodies and background tasks included.

    :param app: the ASGI app to wrap.
    :param header_name: the request and response header carrying the session id.
    :param generator: makes ids for requests without a usable one; UUID4 strings by default.
    :param validator: decides whether an incoming id may be used; the default accepts 1 to 128
        characters from ``A-Z a-z 0-9 - _ . : @ + = /``.
    :param on_invalid: ``"replace"`` (a new id and a warning) or ``"reject"`` (a 400 response).

    Inside the app's middleware stack::

        app = FastAPI()
        app.add_middleware(SessionMiddleware, header_name="X-Session-Id")

    or outermost, so that 500 responses from unhandled errors carry the header too::

        app = SessionMiddleware(FastAPI())
    """

    def __init__(self, app: ASGIApp, **options: Unpack[Options]) -> None:
        self.app = app
        self._policy = IdPolicy(**options)
        self._names = HeaderNames.as_bytes(self._policy.header_name)
        self._routes = find_routes(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return

        names = self._names
        raw: bytes | None = None
        cors = False
        for name, value in scope["headers"]:
            if name == names.key:
                # Repeated headers are joined as a WSGI server would; the comma makes them invalid.
                raw = value if raw is None else raw + b"," + value
            elif name == b"origin":
                cors = True
        policy = self._policy
        if raw is not None:
            incoming: str | None = raw.decode("latin-1")
        elif policy.from_baggage:  # a second pass, only for those who turned it on
            incoming = _from_baggage(scope["headers"])
        else:
            incoming = None
        try:
            session_id = policy.choose(incoming)
        except Rejected:
            await self._reject(scope, send)
            return
        if session_id is None or not policy.issue_ids:
            id_header = None  # the app writes the header, if anyone does
        else:
            id_header = raw if raw is not None and session_id is incoming else session_id.encode()

        # A plain function returning send's awaitable: no extra coroutine frame per message.
        def send_with_session_id(message: Message) -> Awaitable[None]:
            if message["type"] in _RESPONSE_STARTS:
                message["headers"] = names.response_headers(
                    message.get("headers", ()), id_header, cors
                )
            return send(message)

        if session_id is None:  # issue_ids=False and no usable id: no session, as without us
            await self.app(scope, receive, send_with_session_id if cors else send)
            return

        path = scope["path"]
        # Routing rewrites root_path (and, in old Starlette, path) in place: keep them as they are.
        root_path = scope.get("root_path", "")

        def route() -> dict[str, AttributeValue] | None:
            return self._route(scope, path, root_path)

        opened = open_session(
            Session(session_id, policy.attributes(scope, path, scope.get("method", "GET")), route),
            mark_span=True,
            baggage=policy.baggage,
        )
        try:
            await self.app(scope, receive, send_with_session_id)
        finally:
            close_session(opened)

    def _route(self, scope: Scope, path: str, root_path: str) -> dict[str, AttributeValue] | None:
        # Matching depends on the path alone, so the first answer is final: {} when nothing matches.
        routes = self._routes if self._routes is not None else find_routes(scope.get("app"))
        if routes is None:
            return {}
        try:
            template = route_template(routes, {**scope, "path": path, "root_path": root_path})
        except Exception:  # a custom route class must not break whoever reads the session
            logger.debug("Could not match the request's route", exc_info=True)
            return {}
        return {} if template is None else {"http.route": template}

    async def _reject(self, scope: Scope, send: Send) -> None:
        body = self._policy.rejection()
        if scope["type"] == "http":
            prefix = "http"
        elif "websocket.http.response" in scope.get("extensions", {}):
            prefix = "websocket.http"
        else:  # a WebSocket server without denial responses: close with "policy violation"
            await send({"type": "websocket.close", "code": 1008, "reason": body.decode().strip()})
            return
        await send({"type": f"{prefix}.response.start", "status": 400, "headers": _headers(body)})
        await send({"type": f"{prefix}.response.body", "body": body})


def _from_baggage(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    joined = b",".join([value for name, value in headers if name == b"baggage"])
    return session_id_from_baggage(joined.decode("latin-1")) if joined else None


def _headers(body: bytes) -> Iterable[tuple[bytes, bytes]]:
    return [*_TEXT, (b"content-length", str(len(body)).encode())]
