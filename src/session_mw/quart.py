"""The Quart extension: Flask's extension API on ASGI, configured from ``app.config``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlparse

from werkzeug.exceptions import HTTPException
from werkzeug.sansio.utils import get_host

from session_mw._extension import EXTENSION, Extension
from session_mw._options import Options, document
from session_mw.asgi import ASGIApp, Routing, Scope, ScopeIO, _joined
from session_mw.asgi import SessionMiddleware as AsgiSessionMiddleware

if TYPE_CHECKING:
    from quart import Quart
    from werkzeug.routing import MapAdapter

__all__ = ["EXTENSION", "SessionMiddleware"]


@document(config=True)
class SessionMiddleware(Extension["Quart"]):
    """Quart extension: a session for every request and WebSocket, configured through
    ``app.config``.

    :param app: the Quart app; leave it out with an app factory and call :meth:`init_app`.
    :param options: keyword defaults for the settings below (``header_name="X-Session-Id"``);
        the app's ``SESSION_MW_*`` config wins.

    It wraps ``app.asgi_app`` (as Quart recommends for middleware), so Quart's own error
    responses carry the header too; views, streamed responses, WebSockets and background tasks
    see the session, and ``http.route`` is Quart's rule with its blueprint prefix
    (``/api/chat/<int:cid>``).

    Set the config, then wrap the app (with an app factory, make one extension at import and
    call ``sessions.init_app(app)`` in the factory, as with Flask)::

        app = Quart(__name__)
        app.config["SESSION_MW_TRUST_INCOMING"] = False
        SessionMiddleware(app)

    The config is read as the app is wrapped; a mistake in it (an unknown ``SESSION_MW_*`` key,
    a string where a bool belongs) raises there, naming the key.
    """

    def _wrap(self, app: Quart, options: Options) -> object:
        # Quart serves each request in tasks of its own, which copy the context the session is
        # open in: the handler, its streamed body and its background tasks see it.
        wrapped = AsgiSessionMiddleware._around(
            cast("ASGIApp", app.asgi_app), options, _RuleIO(app)
        )
        app.asgi_app = wrapped  # type: ignore[method-assign,assignment]
        return wrapped


class _RuleIO(ScopeIO):
    """Where a Quart request keeps what the pipeline asks for; the route is matched as Quart
    matches it, through the app's URL adapter (its ``url_map``, with blueprint prefixes)."""

    __slots__ = ("_quart",)

    def __init__(self, quart: Quart) -> None:
        self._quart = quart

    def match(self, scope: Scope) -> tuple[str | None, Mapping[str, Any]]:
        adapter = cast("MapAdapter", self._quart.create_url_adapter(cast("Any", _Target(scope))))
        try:
            rule, params = adapter.match(return_rule=True)
        except HTTPException:  # 404, 405, a redirect: no route, so no path parameter
            return None, {}
        return rule.rule, params

    def template(self, routing: Routing) -> str | None:
        return self.match(routing[0])[0]


class _Target:
    """What Quart's URL adapter reads of a request (``create_url_adapter``), taken from the
    ASGI scope as Quart takes it when it makes its request or websocket object."""

    __slots__ = ("host", "method", "path", "query_string", "root_path", "scheme")

    def __init__(self, scope: Scope) -> None:
        self.scheme: str = scope.get("scheme", "http")
        self.method: str = scope.get("method", "GET")
        self.query_string: bytes = scope.get("query_string", b"")
        self.root_path: str = scope.get("root_path", "")
        host = _joined(scope["headers"], b"host", b",")
        self.host = get_host(self.scheme, host, scope.get("server"))
        path: str = scope["path"]
        path = path if path[:1] == "/" else urlparse(path).path
        root = self.root_path
        if root:
            # As Quart: a path outside root_path is one no rule matches.
            path = " " if path == root or not path.startswith(root) else path[len(root) :]
        self.path = path
