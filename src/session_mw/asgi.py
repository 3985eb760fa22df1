"""The pure ASGI adapter, for Starlette, FastAPI and any other ASGI app."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

from session_mw.headers import HeaderNames
from session_mw.ids import IdPolicy, Rejected
from session_mw.routes import PathParams, find_routes, match_route, route_template
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
        self._names = HeaderNames.as_bytes(self._policy.header_name, self._policy.cookie)
        self._routes = find_routes(app)
        self._sources = self._policy.sources()
        if self._policy.path_param is not None and self._routes is None:
            raise ValueError(
                f"path_param={self._policy.path_param!r}, but session-mw cannot see the routes of "
                f"{app!r}: wrap a Starlette or FastAPI app (or add_middleware on it), or send the "
                "id in the header or a cookie"
            )

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
        incoming = None if raw is None else raw.decode("latin-1")
        where: str | None = None  # None: the id came from the header, if from anywhere
        matched: tuple[str | None, PathParams] | None = None
        if self._sources:  # a path parameter, a cookie or baggage: only apps that use them pay
            incoming, where, matched = self._other_sources(scope, incoming)
        try:
            session_id = policy.choose(incoming, where)
        except Rejected:
            await self._reject(scope, send, where)
            return
        if session_id is None or not policy.issue_ids:
            id_header = None  # the app writes the header, if anyone does
        elif raw is not None and where is None and session_id is incoming:
            id_header = raw
        else:
            id_header = session_id.encode()

        # A plain function returning send's awaitable: no extra coroutine frame per message.
        def send_with_session_id(message: Message) -> Awaitable[None]:
            if message["type"] in _RESPONSE_STARTS:
                message["headers"] = names.response_headers(
                    message.get("headers", ()), id_header, cors, scope
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

        attributes = policy.attributes(scope, path, scope.get("method", "GET"))
        if matched is not None and matched[0] is not None:
            attributes["http.route"] = matched[0]
        opened = open_session(
            # Matched already for the path parameter: no second match, no late route.
            Session(session_id, attributes, route if matched is None else None),
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

    def _other_sources(
        self, scope: Scope, header: str | None
    ) -> tuple[str | None, str | None, tuple[str | None, PathParams] | None]:
        """The incoming id by precedence, where it came from, and the route when matched."""
        headers = scope["headers"]
        matched = None
        if self._policy.path_param is not None:
            try:
                matched = match_route(self._routes or (), scope)
            except Exception:  # a custom route class must not break the request
                logger.debug("Could not match the request's route", exc_info=True)
                matched = None, {}
        incoming, where = self._policy.pick(
            None if matched is None else matched[1],
            header,
            lambda: _joined(headers, b"cookie", b"; "),
            lambda: _joined(headers, b"baggage", b","),
        )
        return incoming, where, matched

    async def _reject(self, scope: Scope, send: Send, where: str | None) -> None:
        body = self._policy.rejection(where)
        if scope["type"] == "http":
            prefix = "http"
        elif "websocket.http.response" in scope.get("extensions", {}):
            prefix = "websocket.http"
        else:  # a WebSocket server without denial responses: close with "policy violation"
            await send({"type": "websocket.close", "code": 1008, "reason": body.decode().strip()})
            return
        await send({"type": f"{prefix}.response.start", "status": 400, "headers": _headers(body)})
        await send({"type": f"{prefix}.response.body", "body": body})


def _joined(headers: Iterable[tuple[bytes, bytes]], key: bytes, separator: bytes) -> str | None:
    """Every ``key`` header's value, joined (HTTP/2 sends each cookie in a header of its own)."""
    joined = separator.join([value for name, value in headers if name == key])
    return joined.decode("latin-1") if joined else None


def _headers(body: bytes) -> Iterable[tuple[bytes, bytes]]:
    return [*_TEXT, (b"content-length", str(len(body)).encode())]
