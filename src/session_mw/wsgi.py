"""The WSGI adapter, for Flask, Django, Bottle, Falcon and any other WSGI app."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from session_mw.headers import HeaderNames
from session_mw.ids import IdPolicy, Rejected
from session_mw.routes import PathParams, find_url_map, match_rule
from session_mw.scope import Session, close_session, mark_current_span, open_session

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from opentelemetry.util.types import AttributeValue
    from typing_extensions import Unpack

    from session_mw.ids import Options
    from session_mw.scope import _Opened

__all__ = ["SessionMiddleware", "other_sources"]

_TEXT = "text/plain; charset=utf-8"


class SessionMiddleware:
    """Opens a session for every request to a WSGI app.

    The id comes from the request header (or is generated) and is echoed in the response header;
    the session, with ``url.path`` and ``http.request.method``, is current from before the app is
    called until the response body is exhausted or closed, so streamed bodies run inside it.

    :param wsgi_app: the WSGI app to wrap.
    :param header_name: the request and response header carrying the session id.
    :param generator: makes ids for requests without a usable one; UUID4 strings by default.
    :param validator: decides whether an incoming id may be used; the default accepts 1 to 128
        characters from ``A-Z a-z 0-9 - _ . : @ + = /``.
    :param on_invalid: ``"replace"`` (a new id and a warning) or ``"reject"`` (a 400 response).

    Wrap any WSGI app::

        application = SessionMiddleware(application, header_name="X-Session-Id")
    """

    def __init__(self, wsgi_app: WSGIApplication, **options: Unpack[Options]) -> None:
        self.wsgi_app = wsgi_app
        self._policy = IdPolicy(**options)
        self._names = HeaderNames.as_str(self._policy.header_name, self._policy.cookie)
        self._environ_key = "HTTP_" + self._policy.header_name.upper().replace("-", "_")
        self._sources = self._policy.sources()
        self._url_map = find_url_map(wsgi_app)  # Flask's, through app.wsgi_app
        if self._policy.path_param is not None and self._url_map is None:
            raise ValueError(
                f"path_param={self._policy.path_param!r}, but session-mw cannot see the routes of "
                f"{wsgi_app!r}: use the Flask extension (or wrap a Flask app's wsgi_app), or send "
                "the id in the header or a cookie"
            )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        policy = self._policy
        incoming = environ.get(self._environ_key)
        where: str | None = None  # None: the id came from the header, if from anywhere
        matched = None
        if self._sources:  # a path parameter, a cookie or baggage: only apps that use them pay
            incoming, where, matched = other_sources(
                policy, environ, incoming, lambda: match_rule(self._url_map, environ)
            )
        try:
            session_id = policy.choose(incoming, where)
        except Rejected:
            message = self._policy.rejection(where)
            start_response(
                "400 Bad Request", [("Content-Type", _TEXT), ("Content-Length", str(len(message)))]
            )
            return [message]

        names = self._names
        cors = "HTTP_ORIGIN" in environ
        echoed = session_id if policy.issue_ids else None  # else the app writes the header

        opened_session = None
        if session_id is not None:
            attributes = policy.attributes(environ, _path(environ), environ["REQUEST_METHOD"])
            if matched is not None and matched[0] is not None:
                attributes["http.route"] = matched[0]
            # Matched already for the path parameter: no late route.
            opened_session = Session(
                session_id, attributes, None if matched is not None else lambda: _route(environ)
            )

        def start_response_with_session_id(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            # The server span is current here whether it started outside the session (OTel's
            # WSGI middleware outermost) or inside it (Flask's, OTel's middleware inside): one
            # place marks both, and the route is known by now.
            if opened_session is not None:
                mark_current_span(opened_session)
            return start_response(
                status, names.response_headers(headers, echoed, cors, environ), exc_info
            )

        if opened_session is None:  # issue_ids=False and no usable id: no session, as without us
            return self.wsgi_app(
                environ, start_response_with_session_id if cors else start_response
            )

        opened = open_session(opened_session, baggage=policy.baggage)
        try:
            body = self.wsgi_app(environ, start_response_with_session_id)
        except BaseException:
            close_session(opened)
            raise
        return _SessionBody(body, opened)


def other_sources(
    policy: IdPolicy,
    environ: Mapping[str, Any],
    header: str | None,
    route: Callable[[], tuple[str | None, PathParams]],
) -> tuple[str | None, str | None, tuple[str | None, PathParams] | None]:
    """The incoming id of a WSGI environ (or Django's ``request.META``) by precedence, where it
    came from (``None``: the header), and the ``route()`` matched for the path parameter."""
    matched = None if policy.path_param is None else route()
    incoming, where = policy.pick(
        None if matched is None else matched[1],
        header,
        lambda: environ.get("HTTP_COOKIE"),
        lambda: environ.get("HTTP_BAGGAGE"),
    )
    return incoming, where, matched


def _route(environ: WSGIEnvironment) -> dict[str, AttributeValue] | None:
    # Werkzeug (so Flask) keeps the request in the environ; Flask puts the matched rule, with its
    # blueprint prefix, on it once routing ran, or the routing error when nothing matched.
    request = environ.get("werkzeug.request")
    rule = getattr(request, "url_rule", None)
    if rule is not None:
        return {"http.route": rule.rule}
    if request is None or getattr(request, "routing_exception", None) is not None:
        return {}  # not a Werkzeug app, or no route matched: no http.route, for good
    return None  # Flask has not routed yet


def _path(environ: WSGIEnvironment) -> str:
    path: str = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    # PEP 3333 hands the path over as latin-1; clients send UTF-8.
    return path if path.isascii() else path.encode("latin-1").decode("utf-8", "replace")


class _SessionBody:
    """The app's response body, keeping the session open until it is exhausted or closed.

    Whichever comes first closes the session, once; ``close()`` closes the app's body first, so
    its clean-up code still runs inside the session.
    """

    __slots__ = ("_body", "_opened")

    def __init__(self, body: Iterable[bytes], opened: _Opened) -> None:
        self._body = body
        self._opened: _Opened | None = opened

    def __iter__(self) -> Iterator[bytes]:
        # yield from hands the chunks over at C speed; the line after it runs on exhaustion.
        yield from self._body
        self._close_session()

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._close_session()

    def _close_session(self) -> None:
        opened, self._opened = self._opened, None
        if opened is not None:
            close_session(opened)
