"""The Falcon adapter: wraps a ``falcon.App`` (WSGI) or a ``falcon.asgi.App`` (ASGI).

Falcon's middleware methods cannot hold a session for the whole request: routing, and so
``process_resource``, comes after ``process_request``, and a streamed body is sent after
``process_response`` (under WSGI, after the app has returned). So the adapter wraps the app's
WSGI or ASGI callable with ``session_mw.wsgi``'s or ``session_mw.asgi``'s middleware, and asks
Falcon's own router for the route: ``http.route`` is the URI template Falcon gives
``req.uri_template`` (``/api/chat/{cid:int}``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import falcon.asgi

from session_mw._options import document, from_keywords
from session_mw._pipeline import Pipeline, RequestIO
from session_mw._routes import Templates
from session_mw.asgi import Routing, Scope, ScopeIO
from session_mw.asgi import SessionMiddleware as AsgiSessionMiddleware
from session_mw.wsgi import EnvironIO
from session_mw.wsgi import SessionMiddleware as WsgiSessionMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment
    from typing_extensions import Unpack

    from session_mw._options import Keywords

__all__ = ["SessionMiddleware"]

PathParams = Mapping[str, Any]


@document(config=False)
class SessionMiddleware:
    """Opens a session for every request to a Falcon app, WSGI or ASGI (WebSockets included).

    The id comes from the request (path parameter, header, cookie, as configured) or is
    generated, and is echoed in the response header (on Falcon's own error responses too). The
    session, with ``url.path``, ``http.request.method`` and ``http.route`` (the route's URI
    template, ``/api/chat/{cid:int}``), is current from before Falcon's middleware and routing
    run until the response's last byte is sent: ``resp.stream`` and ``resp.sse`` bodies
    included, and it is always closed, also on errors and client disconnects.

    :param app: the ``falcon.App`` or ``falcon.asgi.App`` to wrap; the result is a WSGI or an
        ASGI app accordingly (a ``session_mw.wsgi`` or ``session_mw.asgi`` middleware, whose
        ``wsgi_app`` or ``app`` is the Falcon app). Serve it in the app's place.

    ::

        app = falcon.App()  # or falcon.asgi.App()
        app.add_route("/chat/{cid:int}", ChatResource())
        application = SessionMiddleware(app, header_name="X-Session-Id")
    """

    # The WSGI or the ASGI middleware's, as the subclass __new__ picks has: __call__ is the
    # WSGI or the ASGI interface.
    __call__: Callable[..., Any]
    _setup: Callable[..., None]
    _pipeline: Pipeline[Any]
    _io: Callable[[_Router], RequestIO[Any]]

    def __new__(cls, app: falcon.App[Any, Any], **options: Unpack[Keywords]) -> SessionMiddleware:
        kind = cls
        if cls is SessionMiddleware:
            kind = _AsgiSessions if isinstance(app, falcon.asgi.App) else _WsgiSessions
        return object.__new__(kind)

    def __init__(self, app: falcon.App[Any, Any], **options: Unpack[Keywords]) -> None:
        router = _Router(app)
        self._setup(app, from_keywords(options), self._io(router))
        self._pipeline.need_routes(
            router.find is not None, app, "use Falcon's router (or one with a find() method)"
        )


class _Router:
    """The route Falcon's router picks for a path, taken as Falcon takes it."""

    __slots__ = ("find", "options")

    def __init__(self, app: falcon.App[Any, Any]) -> None:
        # Falcon keeps its router private; every router it accepts has find(path, req=None).
        self.find: Callable[..., Any] | None = getattr(getattr(app, "_router", None), "find", None)
        self.options = app.req_options  # read per request, as Falcon reads it

    def match(self, path: str) -> tuple[str | None, PathParams]:
        if self.options.strip_url_path_trailing_slash and len(path) != 1 and path.endswith("/"):
            path = path[:-1]
        route = None if self.find is None else self.find(path)
        if route is None:
            return None, {}
        # (resource, method map, parameters, template): older routers may leave the template
        # out, then no http.route.
        return (route[3] if len(route) > 3 else None), route[2]


class _EnvironIO(EnvironIO, Templates):
    __slots__ = ("_router",)

    def __init__(self, router: _Router) -> None:
        self._router = router

    def match(self, environ: WSGIEnvironment) -> tuple[str | None, PathParams]:
        return self._router.match(_falcon_path(environ))

    def template(self, routing: WSGIEnvironment) -> str | None:
        return self.match(routing)[0]


class _ScopeIO(ScopeIO):
    __slots__ = ("_router",)

    def __init__(self, router: _Router) -> None:
        self._router = router

    def match(self, scope: Scope) -> tuple[str | None, PathParams]:
        return self._router.match(scope["path"] or "/")

    def template(self, routing: Routing) -> str | None:
        return self._router.match(routing[1] or "/")[0]


class _WsgiSessions(SessionMiddleware, WsgiSessionMiddleware):
    _io = _EnvironIO


class _AsgiSessions(SessionMiddleware, AsgiSessionMiddleware):
    _io = _ScopeIO


def _falcon_path(environ: WSGIEnvironment) -> str:
    """The path Falcon routes a WSGI request by (``req.path``): ``PATH_INFO``, decoded."""
    path: str = environ.get("PATH_INFO") or "/"
    return path if path.isascii() else path.encode("latin-1").decode("utf-8", "replace")
