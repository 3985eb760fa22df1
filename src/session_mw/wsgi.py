"""The WSGI adapter, for Flask, Bottle, Falcon and any other WSGI app."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextvars import copy_context
from typing import TYPE_CHECKING, Any

from session_mw._bridge import mark_current_span
from session_mw._headers import HeaderNames
from session_mw._options import Options, document, from_keywords
from session_mw._pipeline import Pipeline, Rejected, RequestIO
from session_mw._routes import PathParams, find_url_map, match_rule
from session_mw._scope import Session, open_session

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from opentelemetry.util.types import AttributeValue
    from typing_extensions import Unpack

    from session_mw._options import Keywords

__all__ = ["SessionMiddleware"]

_TEXT = "text/plain; charset=utf-8"

# contextvars.Context.run: calls its argument inside that context.
Runner = Callable[..., Any]


@document(config=False)
class SessionMiddleware:
    """Opens a session for every request to a WSGI app.

    The id comes from the request (path parameter, header, cookie, as configured) or is
    generated, and is echoed in the response header. The session, with ``url.path``,
    ``http.request.method`` and (for Flask and other Werkzeug apps) ``http.route``, is current
    while the app runs and while its response body is produced and closed, and only then: each
    request runs in a context of its own, so nothing stays attached to the caller's thread when
    ``__call__`` returns, whether the body is read, left unread or closed in any order.

    :param wsgi_app: the WSGI app to wrap.

    Wrap any WSGI app::

        application = SessionMiddleware(application, header_name="X-Session-Id")
    """

    def __init__(self, wsgi_app: WSGIApplication, **options: Unpack[Keywords]) -> None:
        url_map = find_url_map(wsgi_app)  # Flask's, through app.wsgi_app
        self._setup(wsgi_app, from_keywords(options), _WerkzeugIO(url_map))
        self._werkzeug_routes = url_map is not None
        self._pipeline.need_routes(
            url_map is not None,
            wsgi_app,
            "use the Flask extension (or wrap a Flask app's wsgi_app)",
        )

    def _setup(
        self, wsgi_app: WSGIApplication, options: Options, io: RequestIO[WSGIEnvironment]
    ) -> None:
        self.wsgi_app = wsgi_app
        self._werkzeug_routes = False
        self._pipeline: Pipeline[WSGIEnvironment] = Pipeline(options, io)
        header_name = self._pipeline.header_name
        self._names = HeaderNames.as_str(header_name, self._pipeline.cookie)
        self._environ_key = "HTTP_" + header_name.upper().replace("-", "_")

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        pipeline = self._pipeline
        path: str = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if not path.isascii():  # PEP 3333 hands the path over as latin-1; clients send UTF-8
            path = path.encode("latin-1").decode("utf-8", "replace")
        try:
            opened = pipeline.begin(
                environ, environ.get(self._environ_key), path, environ["REQUEST_METHOD"]
            )
        except Rejected as rejected:
            message = rejected.body
            start_response(
                "400 Bad Request", [("Content-Type", _TEXT), ("Content-Length", str(len(message)))]
            )
            return [message]
        if opened is None and "HTTP_ORIGIN" not in environ:  # no session, no header to expose
            return self.wsgi_app(environ, start_response)
        if opened is None:  # issue_ids=False and no usable id: no session, as without us
            return self.wsgi_app(environ, _Response(start_response, self, None, None, environ))
        # None: the app writes the header (issue_ids=False), if anyone does.
        echoed = opened.id if pipeline.issue_ids else None
        # The request's own context: whatever the app, its body and its close() set there, the
        # session first, never reaches the caller's. Nothing in it is reset: no code runs in it
        # once the body is closed, and it is dropped with the response.
        response = _Response(start_response, self, opened, echoed, environ)
        body = response._run(self._start, opened, environ, response)
        return body if type(body) is list else response  # a list runs no code once returned

    def _start(
        self, opened: Session, environ: WSGIEnvironment, response: _Response
    ) -> Iterable[bytes]:
        """Open the session and call the app, inside the request's context; one ``run()``."""
        pipeline = self._pipeline
        open_session(opened, False, pipeline.baggage, pipeline.id_attributes)
        body = self.wsgi_app(environ, response)
        if type(body) is not list:
            close = response._close_body = getattr(body, "close", None)
            try:
                response._chunks = iter(body)
            except BaseException:  # the server never gets a body to close: close it here
                if close is not None:
                    close()
                raise
        return body


class EnvironIO:
    """Where a WSGI environ keeps its cookies and baggage; each framework adds its routes."""

    __slots__ = ()

    def cookie_header(self, environ: WSGIEnvironment) -> str | None:
        return environ.get("HTTP_COOKIE")

    def baggage_header(self, environ: WSGIEnvironment) -> str | None:
        return environ.get("HTTP_BAGGAGE")


class _WerkzeugIO(EnvironIO):
    """Werkzeug's (Flask's) routes."""

    __slots__ = ("_url_map",)

    def __init__(self, url_map: Any) -> None:
        self._url_map = url_map

    def match(self, environ: WSGIEnvironment) -> tuple[str | None, PathParams]:
        return match_rule(self._url_map, environ)

    def late_route(self, routing: Any) -> dict[str, AttributeValue] | None:
        # Werkzeug (so Flask) keeps the request in the environ; Flask puts the matched rule,
        # with its blueprint prefix, on it once routing ran, or the routing error when nothing
        # matched. ``routing``: the environ (a dict, PEP 3333), or that request itself once
        # the response has started.
        request = routing.get("werkzeug.request") if type(routing) is dict else routing
        rule = getattr(request, "url_rule", None)
        if rule is not None:
            return {"http.route": rule.rule}
        if request is None or getattr(request, "routing_exception", None) is not None:
            return {}  # not a Werkzeug app, or no route matched: no http.route, for good
        return None  # Flask has not routed yet


class _Response:
    """The response side of one request: the ``start_response`` the app is given (it adds the
    session header, and puts the session on the span current as the response starts), then,
    around the app's body, what the server iterates and closes, inside the request's own context
    (``_run``), where the session is current. ``close()`` closes the app's body, if it has a
    ``close``.

    One small object for both, rather than two (or closures): each costs its construction, some
    2,000 instructions, and a GC-tracked allocation every request; and a single ``run()`` per
    chunk and one for the close (benchmarks.instructions, benchmarks.server_instructions).
    """

    __slots__ = (
        "_chunks",
        "_close_body",
        "_echoed",
        "_environ",
        "_middleware",
        "_opened",
        "_run",
        "_start_response",
    )
    _run: Runner  # the request context's run(), once there is a session
    _chunks: Iterator[bytes]  # the app's body, once it returned one that is not a list
    _close_body: Callable[[], object] | None

    def __init__(
        self,
        start_response: StartResponse,
        middleware: SessionMiddleware,
        opened: Session | None,
        echoed: str | None,
        environ: WSGIEnvironment,
    ) -> None:
        self._start_response = start_response
        self._middleware = middleware
        self._opened = opened
        self._echoed = echoed
        self._environ = environ
        if opened is not None:
            self._run = copy_context().run

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        opened, middleware, environ = self._opened, self._middleware, self._environ
        if opened is not None:
            if middleware._werkzeug_routes and opened._late is not None:
                # Flask forgets its request (so the route) in the environ once the view
                # returns, and a streamed body is produced after that: the late route is
                # read from the request itself from now on. (Reading the route now costs
                # two Python calls a request; this, none.)
                opened._request = environ.get("werkzeug.request") or environ
            # The server span is current here whether it started outside the session (OTel's
            # WSGI middleware outermost) or inside it (Flask's, OTel's middleware inside).
            mark_current_span(opened, middleware._pipeline.id_attributes)
        cors = "HTTP_ORIGIN" in environ
        headers = middleware._names.response_headers(headers, self._echoed, cors, environ)
        return self._start_response(status, headers, exc_info)

    def __iter__(self) -> Iterator[bytes]:
        run, chunks = self._run, self._chunks
        while True:
            # next() with a default: the end comes as a value, not as a StopIteration raised
            # through run() and caught here (some 1,500 instructions a request).
            chunk = run(next, chunks, _END)
            if chunk is _END:
                return
            yield chunk

    def close(self) -> None:
        if self._close_body is not None:  # the app's clean-up code, in its session
            self._run(self._close_body)


_END: Any = object()
