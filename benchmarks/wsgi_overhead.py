"""Per-request overhead of session-mw's WSGI middleware and Flask extension against peers.

    python -m benchmarks.wsgi_overhead [--rounds 21] [--requests 2000]

Requests go straight through the WSGI interface, in-process: no server, no socket. Two tables:

* WSGI: a bare app; session-mw's WSGI middleware; the minimal hand-written wrapper (header or a
  UUID4 into a ContextVar, echoed through start_response, reset afterwards).
* Flask: a bare Flask app; the session-mw extension; hand-written before_request/after_request
  hooks doing the same job; flask-log-request-id (its request path runs on current Flask; only its
  ``current_request_id()`` helper needs the ``flask._app_ctx_stack`` that Flask 2.3 removed, and
  that is not on the request path).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, request
from flask_log_request_id import RequestID
from flask_log_request_id.parser import generic_http_header_parser_for

from benchmarks.harness import Suites, main
from benchmarks.inprocess import HTTPX, WITH_ID, wsgi_runner
from session_mw.flask import SessionMiddleware as FlaskSessionMiddleware
from session_mw.wsgi import SessionMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

HEADER = "X-Session-Id"


def bare(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class MinimalWrapper:
    """The smallest correct hand-written version: ContextVar set, header echoed, reset."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        sid = environ.get("HTTP_X_SESSION_ID") or str(uuid.uuid4())

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, (HEADER, sid)], exc_info)

        token = request_id.set(sid)
        try:
            return self.app(environ, start)
        finally:
            request_id.reset(token)


def flask_app() -> Flask:
    app = Flask(__name__)

    @app.get("/chat")
    def chat() -> str:
        return "ok"

    return app


def flask_session_mw() -> Flask:
    app = flask_app()
    FlaskSessionMiddleware(app)
    return app


def flask_hooks() -> Flask:
    app = flask_app()

    @app.before_request
    def read_id() -> None:
        g.session_id = request.headers.get(HEADER) or str(uuid.uuid4())

    @app.after_request
    def echo_id(response: Response) -> Response:
        response.headers[HEADER] = g.session_id
        return response

    return app


def flask_log_request_id() -> Flask:
    app = flask_app()
    RequestID(app, request_id_parser=generic_http_header_parser_for(HEADER))
    return app


def suites() -> Suites:
    """Every table: its variants, its baseline and the peer its ratios are taken against."""
    groups: dict[str, tuple[dict[str, WSGIApplication], str, str]] = {
        "WSGI": (
            {
                "bare WSGI app": bare,
                "session-mw (WSGI)": SessionMiddleware(bare),
                "minimal ContextVar wrapper": MinimalWrapper(bare),
            },
            "bare WSGI app",
            "minimal ContextVar wrapper",
        ),
        "Flask": (
            {
                "bare Flask app": flask_app(),
                "session-mw (Flask extension)": flask_session_mw(),
                "before/after_request hooks": flask_hooks(),
                "flask-log-request-id": flask_log_request_id(),
            },
            "bare Flask app",
            "flask-log-request-id",
        ),
    }
    cases = {"with an incoming": [*HTTPX, WITH_ID], "without an": HTTPX}
    return {
        f"{group}, {case} {HEADER} header": (
            {name: wsgi_runner(app, "/chat", headers) for name, app in apps.items()},
            baseline,
            reference,
        )
        for group, (apps, baseline, reference) in groups.items()
        for case, headers in cases.items()
    }


if __name__ == "__main__":
    main((__doc__ or "").splitlines()[0], suites)
