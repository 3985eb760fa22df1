"""The Litestar adapter: an ``ASGIMiddleware`` for ``Litestar(middleware=[...])``, and a plugin
that also reaches the responses Litestar's router gives before any middleware runs."""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, cast
from urllib.parse import unquote

from litestar.middleware import ASGIMiddleware
from litestar.plugins import InitPlugin
from litestar.utils import join_paths

from session_mw._options import document, from_keywords
from session_mw._pipeline import Rejected
from session_mw._routes import PathParams
from session_mw.asgi import Routing, ScopeIO, incoming
from session_mw.asgi import Scope as AnyScope
from session_mw.asgi import SessionMiddleware as AsgiSessionMiddleware

if TYPE_CHECKING:
    from litestar.config.app import AppConfig
    from litestar.types import ASGIApp, Message, Receive, Scope, Send
    from typing_extensions import Unpack

    from session_mw._options import Keywords
    from session_mw.asgi import ASGIApp as AnyASGIApp

__all__ = ["SessionMiddleware", "SessionPlugin"]
# A typed path parameter, "{cid:int}", as Litestar's scope["path_template"] writes it: "{cid}".
_TYPED = re.compile(r"\{(\w+):[^}]*\}")


@document(config=False)
class SessionMiddleware(ASGIMiddleware):
    """Opens a session for every request and WebSocket connection that a Litestar route serves.

    The id comes from the request (path parameter, header, cookie, as configured) or is
    generated, and is echoed in the response header. The session, with ``url.path``,
    ``http.request.method`` and ``http.route`` (the route's path with every router and
    controller prefix, as written: ``/api/chat/{cid:int}``), is current from before guards,
    dependencies and the handler run until the response's last byte is sent: streamed bodies,
    server-sent events, ``after_response`` hooks and background tasks included.

    Litestar runs middleware only on requests that a route matched: answers its router gives
    itself (404, 405) never reach one. :class:`SessionPlugin` adds this middleware and reaches
    those too::

        app = Litestar(route_handlers=[...], middleware=[SessionMiddleware()])

    Like any Litestar middleware, it may also sit on a ``Router``, a ``Controller`` or a handler.
    """

    def __init__(self, **options: Unpack[Keywords]) -> None:
        # The app comes with each call: Litestar builds each route's stack once, calling this
        # middleware with the next app, and gets session-mw's ASGI middleware around it.
        self._sessions = AsgiSessionMiddleware._around(
            None,  # type: ignore[arg-type]
            from_keywords(options),
            _ScopeIO(),
            _path,
        )

    def __call__(self, app: ASGIApp) -> ASGIApp:
        # Not ASGIMiddleware's wrapper, which calls handle() on every request after its
        # exclusion checks (scopes, opt keys, path patterns; none of them options here: the
        # ASGI middleware passes anything but HTTP and WebSocket through itself): some 7,400
        # instructions a request less (benchmarks.instructions frameworks).
        return cast("ASGIApp", self._sessions._calling(cast("AnyASGIApp", app)))

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """The middleware around ``next_app``, for a caller that asks for it by hand (Litestar
        itself calls the app :meth:`__call__` returns)."""
        await self(next_app)(scope, receive, send)

    async def unrouted(self, message: Message, scope: Scope) -> None:
        """A ``before_send`` hook: the header on the answers Litestar's router gives before any
        middleware runs (404, 405), which open no session (no app code serves them)."""
        request = cast("AnyScope", scope)
        if message["type"] != "http.response.start" or "route_handler" in request:
            return  # a route matched: this middleware answered it, or was excluded from it
        names = self._sessions._names
        pipeline = self._sessions._pipeline
        raw, cors = incoming(request, names.key)
        try:
            opened = pipeline.begin(request, raw, _path(request), request.get("method", "GET"))
        except Rejected:
            return  # an invalid id on a request that found no route: its error stands, no id
        if opened is None and not cors:
            return
        id_header = None if opened is None or not pipeline.issue_ids else opened.id.encode()
        started = cast("AnyScope", message)
        started["headers"] = names.response_headers(
            started.get("headers", ()), id_header, cors, request
        )


@document(config=False)
class SessionPlugin(InitPlugin):
    """Litestar plugin: :class:`SessionMiddleware` on the app, outermost of its middleware, and
    the header on the answers Litestar's router gives before any middleware runs (404, 405).
    With a ``CORSConfig`` whose ``expose_headers`` is set (Litestar's CORS middleware then
    replaces ``Access-Control-Expose-Headers``), the header is added to that list.

    ::

        app = Litestar(route_handlers=[...], plugins=[SessionPlugin(header_name="X-Session-Id")])
    """

    __slots__ = ("middleware",)

    def __init__(self, **options: Unpack[Keywords]) -> None:
        self.middleware = SessionMiddleware(**options)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.middleware.insert(0, self.middleware)
        app_config.before_send.append(self.middleware.unrouted)
        cors = app_config.cors_config
        name = self.middleware._sessions._pipeline.header_name
        exposed = {header.lower() for header in cors.expose_headers} if cors else set()
        if cors is not None and exposed and name.lower() not in exposed:
            # A copy: the app's config object may serve other apps too.
            app_config.cors_config = dataclasses.replace(
                cors, expose_headers=[*cors.expose_headers, name]
            )
        return app_config


class _ScopeIO(ScopeIO):
    """Where a routed Litestar request keeps what the pipeline asks for: Litestar has matched
    the route (``scope["route_handler"]``, ``scope["path_params"]``) before any middleware."""

    __slots__ = ()

    def match(self, scope: AnyScope) -> tuple[str | None, PathParams]:
        return _template(scope), scope.get("path_params", {})

    def template(self, routing: Routing) -> str | None:
        return _template(routing[0])


def _template(scope: AnyScope) -> str | None:
    """The matched route's path with every layer's prefix and its parameters' types, as
    written (``/api/chat/{cid:int}``); ``scope["path_template"]`` drops the types."""
    handler = scope.get("route_handler")
    if handler is None:
        return None  # the router found no route
    prefixes = [layer.path for layer in handler.ownership_layers[:-1]]
    paths = [join_paths([*prefixes, path]) for path in handler.paths]
    if len(paths) == 1:
        return paths[0]
    written: str | None = scope.get("path_template")
    # A handler on several paths: the one the router matched.
    return next((path for path in paths if _TYPED.sub(r"{\1}", path) == written), written)


def _path(scope: AnyScope) -> str:
    # Litestar's router rewrites scope["path"] (normalised, without root_path, a mount's rest):
    # the path as requested is in raw_path.
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        return str(scope["path"])
    return unquote(raw.decode("latin-1"), errors="replace")
