"""The pure ASGI adapter, for Starlette, FastAPI and any other ASGI app."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

from session_mw._headers import HeaderNames
from session_mw._options import document, from_keywords
from session_mw._pipeline import Pipeline, Rejected
from session_mw._routes import PathParams, find_routes, match_route, route_template
from session_mw._scope import close_session, open_session

if TYPE_CHECKING:
    from opentelemetry.util.types import AttributeValue
    from typing_extensions import Unpack

    from session_mw._options import Keywords

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


@document(config=False)
class SessionMiddleware:
    """Opens a session for every HTTP request and WebSocket connection.

    The id comes from the request (path parameter, header, cookie, as configured) or is
    generated, is echoed in the response header, and is current, with ``url.path``,
    ``http.request.method`` and ``http.route``, from before the app is called until it returns:
    streamed bodies and background tasks included.

    :param app: the ASGI app to wrap.

    Inside the app's middleware stack::

        app = FastAPI()
        app.add_middleware(SessionMiddleware, header_name="X-Session-Id")

    or outermost, so that 500 responses from unhandled errors carry the header too::

        app = SessionMiddleware(FastAPI())
    """

    def __init__(self, app: ASGIApp, **options: Unpack[Keywords]) -> None:
        self.app = app
        self._pipeline: Pipeline[Scope] = Pipeline(from_keywords(options), _ScopeIO(app))
        pipeline = self._pipeline
        self._names = HeaderNames.as_bytes(pipeline.header_name, pipeline.cookie)
        pipeline.need_routes(
            find_routes(app) is not None,
            app,
            "wrap a Starlette or FastAPI app (or add_middleware on it)",
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
        pipeline = self._pipeline
        try:
            path = scope["path"]
            opened = pipeline.begin(
                scope,
                None if raw is None else raw.decode("latin-1"),
                path,
                scope.get("method", "GET"),
                # Routing rewrites root_path (and, in old Starlette, path) in place: the late
                # route is matched against them as they came.
                (scope, path, scope.get("root_path", "")),
            )
        except Rejected as rejected:
            await _reject(scope, send, rejected.body)
            return
        # None: no session, or the app writes the header (issue_ids=False), if anyone does.
        id_header = None if opened is None or not pipeline.issue_ids else opened.id.encode()

        # A plain function returning send's awaitable: no extra coroutine frame per message.
        def send_with_session_id(message: Message) -> Awaitable[None]:
            if message["type"] in _RESPONSE_STARTS:
                message["headers"] = names.response_headers(
                    message.get("headers", ()), id_header, cors, scope
                )
            return send(message)

        if opened is None:  # issue_ids=False and no usable id: no session, as without us
            await self.app(scope, receive, send_with_session_id if cors else send)
            return
        entered = open_session(opened, True, pipeline.baggage, pipeline.id_attributes)
        try:
            await self.app(scope, receive, send_with_session_id)
        finally:
            close_session(entered)


class _ScopeIO:
    """Where an ASGI request keeps what the pipeline asks for."""

    __slots__ = ("_routes",)

    def __init__(self, app: object) -> None:
        self._routes = find_routes(app)

    def match(self, scope: Scope) -> tuple[str | None, PathParams]:
        return match_route(self._routes or (), scope)

    def cookie_header(self, scope: Scope) -> str | None:
        return _joined(scope["headers"], b"cookie", b"; ")

    def baggage_header(self, scope: Scope) -> str | None:
        return _joined(scope["headers"], b"baggage", b",")

    def late_route(self, routing: tuple[Scope, str, str]) -> dict[str, AttributeValue] | None:
        # Matching depends on the path alone, so the first answer is final: {} when nothing
        # matches.
        scope, path, root_path = routing
        routes = self._routes if self._routes is not None else find_routes(scope.get("app"))
        if routes is None:
            return {}
        try:
            template = route_template(routes, {**scope, "path": path, "root_path": root_path})
        except Exception:  # a custom route class must not break whoever reads the session
            logger.debug("Could not match the request's route", exc_info=True)
            return {}
        return {} if template is None else {"http.route": template}


async def _reject(scope: Scope, send: Send, body: bytes) -> None:
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
