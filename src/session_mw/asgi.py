"""The pure ASGI adapter, for Starlette, FastAPI and any other ASGI app."""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

from session_mw._headers import HeaderNames
from session_mw._options import OptionError, Options, document, from_keywords
from session_mw._pipeline import Pipeline, Rejected, RequestIO
from session_mw._routes import PathParams, Templates, find_routes, match_route, route_template
from session_mw._scope import close_session, open_session

if TYPE_CHECKING:
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
        try:
            checked = from_keywords(options)
        except OptionError as error:
            # add_middleware() builds this lazily, at the app's first call: the lifespan
            # startup, whose errors uvicorn's default lifespan "auto" mode swallows. Said in
            # the log too, it is seen at start-up.
            logger.error("%s", error)
            raise
        routes = find_routes(app)
        self._setup(app, checked, _StarletteIO(routes))
        self._pipeline.need_routes(
            routes is not None, app, "wrap a Starlette or FastAPI app (or add_middleware on it)"
        )

    @classmethod
    def _around(
        cls,
        app: ASGIApp,
        options: Options,
        io: RequestIO[Scope],
        path: Callable[[Scope], str] | None = None,
    ) -> SessionMiddleware:
        """The middleware for another framework's app (Quart, Litestar): its
        :class:`RequestIO` finds the routes; ``path`` reads the request's path where
        ``scope["path"]`` is not it."""
        middleware = cls.__new__(cls)
        middleware._setup(app, options, io, path)
        return middleware

    def _setup(
        self,
        app: ASGIApp,
        options: Options,
        io: RequestIO[Scope],
        path: Callable[[Scope], str] | None = None,
    ) -> None:
        self.app = app
        self._pipeline: Pipeline[Scope] = Pipeline(options, io)
        self._names = HeaderNames.as_bytes(self._pipeline.header_name, self._pipeline.cookie)
        self._path = path

    def _calling(self, app: ASGIApp) -> SessionMiddleware:
        """This middleware, configured as it is, around ``app`` instead (for frameworks that
        hand each middleware the next app at the call: Litestar)."""
        middleware = copy.copy(self)
        middleware.app = app
        return middleware

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        if scope["type"] not in {"http", "websocket"}:
            await app(scope, receive, send)
            return

        names = self._names
        raw, cors = incoming(scope, names.key)
        pipeline = self._pipeline
        try:
            path = scope["path"] if self._path is None else self._path(scope)
            opened = pipeline.begin(
                scope,
                raw,
                path,
                scope.get("method", "GET"),
                # Routing rewrites root_path (and, in old Starlette, path) in place: the late
                # route is matched against them as they came.
                (scope, path, scope.get("root_path", "")),
            )
        except Rejected as rejected:
            await reject(scope, send, rejected.body)
            return
        if opened is None and not cors:  # no session, no header to expose: as without us
            await app(scope, receive, send)
            return
        # None: no session, or the app writes the header (issue_ids=False), if anyone does.
        id_header = None if opened is None or not pipeline.issue_ids else opened.id.encode()
        echo = _Echo(send, names, id_header, cors, scope).send
        if opened is None:  # issue_ids=False and no usable id: no session, as without us
            await app(scope, receive, echo)
            return
        entered = open_session(opened, True, pipeline.baggage, pipeline.id_attributes)
        try:
            await app(scope, receive, echo)
        finally:
            close_session(entered)


class _Echo:
    """The app's ``send``: adds the session header to the message that starts the response.

    A small object rather than a closure: a closure over these costs five cells and a function
    every request, each counted by the cyclic garbage collector (benchmarks.server_instructions).
    The app gets the bound method, not the object: ``send`` is called twice or more a request,
    and a method call is cheaper than calling an instance through ``__call__``.
    """

    __slots__ = ("_cors", "_id", "_names", "_scope", "_send")

    def __init__(
        self,
        send: Send,
        names: HeaderNames[bytes],
        session_id: bytes | None,
        cors: bool,
        scope: Scope,
    ) -> None:
        self._send = send
        self._names = names
        self._id = session_id
        self._cors = cors
        self._scope = scope

    def send(self, message: Message) -> Awaitable[None]:
        # A plain method returning send's awaitable: no extra coroutine frame per message.
        if message["type"] in _RESPONSE_STARTS:
            message["headers"] = self._names.response_headers(
                message.get("headers", ()), self._id, self._cors, self._scope
            )
        return self._send(message)


Routing = tuple[Scope, str, str]
"""What an ASGI adapter's ``late_route`` is given: the scope, and its path and root path as they
came, before routing rewrote them."""


class ScopeIO(Templates):
    """Where an ASGI request keeps its cookies and baggage; each framework adds its routes
    (``match`` and ``template``)."""

    __slots__ = ()

    def cookie_header(self, scope: Scope) -> str | None:
        return _joined(scope["headers"], b"cookie", b"; ")

    def baggage_header(self, scope: Scope) -> str | None:
        return _joined(scope["headers"], b"baggage", b",")


class _StarletteIO(ScopeIO):
    """Starlette's (FastAPI's) routes, matched as its router matches them."""

    __slots__ = ("_routes",)

    def __init__(self, routes: Any) -> None:
        self._routes = routes

    def match(self, scope: Scope) -> tuple[str | None, PathParams]:
        return match_route(self._routes or (), scope)

    def template(self, routing: Routing) -> str | None:
        scope, path, root_path = routing
        routes = self._routes if self._routes is not None else find_routes(scope.get("app"))
        if routes is None:
            return None
        return route_template(routes, {**scope, "path": path, "root_path": root_path})


def incoming(scope: Scope, key: bytes) -> tuple[str | None, bool]:
    """The value of the id header ``key`` (``None``: absent) and whether the request is a CORS
    one (it has an ``Origin``)."""
    raw: bytes | None = None
    cors = False
    headers = scope["headers"]
    if type(headers) is not list:  # ASGI allows any iterable: read here, then by the app
        scope["headers"] = headers = [(name, value) for name, value in headers]
    for name, value in headers:
        if name == key:
            # Repeated headers are joined as a WSGI server would; the comma makes them invalid.
            raw = value if raw is None else raw + b"," + value
        elif name == b"origin":
            cors = True
    return (None if raw is None else raw.decode("latin-1")), cors


async def reject(scope: Scope, send: Send, body: bytes) -> None:
    """Answer 400 with ``body`` (a WebSocket: deny, or close with "policy violation")."""
    if scope["type"] == "http":
        prefix = "http"
    elif "websocket.http.response" in scope.get("extensions", {}):
        prefix = "websocket.http"
    else:  # a WebSocket server without denial responses: close with "policy violation"
        await send({"type": "websocket.close", "code": 1008, "reason": body.decode().strip()})
        return
    await send({"type": f"{prefix}.response.start", "status": 400, "headers": _headers(body)})
    # more_body spelled out: optional in ASGI, but some test clients (Quart 0.23) require it.
    await send({"type": f"{prefix}.response.body", "body": body, "more_body": False})


def _joined(headers: Iterable[tuple[bytes, bytes]], key: bytes, separator: bytes) -> str | None:
    """Every ``key`` header's value, joined (HTTP/2 sends each cookie in a header of its own)."""
    joined = separator.join([value for name, value in headers if name == key])
    return joined.decode("latin-1") if joined else None


def _headers(body: bytes) -> Iterable[tuple[bytes, bytes]]:
    return [*_TEXT, (b"content-length", str(len(body)).encode())]
