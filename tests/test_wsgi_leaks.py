"""No session outside its request, on every WSGI-based adapter (plain WSGI and Flask).

Test clients leave bodies unread (``client.post(...)``, then a look at ``Location``) and close
responses in any order: a request's session must be current only while the app, its body and
its ``close()`` run, never in the test's own thread afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from flask import Flask, Response, redirect, stream_with_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from werkzeug.test import Client
from werkzeug.wrappers import Request
from werkzeug.wrappers import Response as WerkzeugResponse

from session_mw import current_session
from session_mw.flask import SessionMiddleware as FlaskSessionMiddleware
from session_mw.otel import SessionSpanProcessor
from session_mw.wsgi import SessionMiddleware as WsgiSessionMiddleware


def seen() -> str:
    opened = current_session()
    return "none" if opened is None else f"{opened.id} {opened.attributes.get('http.route')}"


def chunks() -> Iterator[str]:
    for n in range(3):
        yield f"{n} {seen()}\n"


def wsgi_app() -> Any:
    @Request.application
    def app(request: Request) -> WerkzeugResponse:
        if request.path == "/stream":
            return WerkzeugResponse(chunks())
        return WerkzeugResponse(seen())

    return WsgiSessionMiddleware(app)


def flask_app() -> Any:
    app = Flask(__name__)

    @app.get("/")
    def index() -> str:
        return seen()

    @app.post("/login")
    def login() -> Any:
        return redirect("/")

    @app.get("/stream")
    def stream() -> Response:
        return Response(chunks())

    @app.get("/stream-ctx")
    def stream_ctx() -> Response:
        return Response(stream_with_context(chunks()))

    FlaskSessionMiddleware(app)
    return app


ADAPTERS = pytest.mark.parametrize("make", [wsgi_app, flask_app], ids=["wsgi", "flask"])
Factory = Callable[[], Any]


@ADAPTERS
def test_an_unread_response_leaves_no_session_behind(make: Factory) -> None:
    response = Client(make()).get("/", headers={"X-Session-Id": "chat-1"}, buffered=False)
    assert response.headers["X-Session-Id"] == "chat-1"
    assert current_session() is None  # the body is still unread
    assert response.get_data(as_text=True).startswith("chat-1")
    response.close()
    assert current_session() is None


@ADAPTERS
def test_responses_closed_in_the_order_they_were_opened(make: Factory) -> None:
    client = Client(make())
    first = client.get("/stream", headers={"X-Session-Id": "first"}, buffered=False)
    second = client.get("/stream", headers={"X-Session-Id": "second"}, buffered=False)
    assert current_session() is None
    first_body = first.iter_encoded()
    assert next(first_body).decode().split()[1] == "first"
    assert current_session() is None  # between chunks, too
    first.close()
    assert current_session() is None
    assert second.get_data(as_text=True).split("\n")[0].split()[1] == "second"
    second.close()
    assert current_session() is None


@ADAPTERS
def test_a_span_made_after_the_request_has_no_session(make: Factory) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    Client(make()).get("/", headers={"X-Session-Id": "chat-1"}, buffered=False)
    with provider.get_tracer("test").start_as_current_span("later in the test"):
        pass
    (span,) = exporter.get_finished_spans()
    assert "session.id" not in (span.attributes or {})
    provider.shutdown()


def test_flasks_test_client_leaves_no_session_after_a_redirect() -> None:
    client = flask_app().test_client()
    response = client.post("/login", headers={"X-Session-Id": "chat-1"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert response.headers["X-Session-Id"] == "chat-1"
    assert current_session() is None
    with client:  # Flask keeps the request context for the test: still no session of ours
        client.get("/", headers={"X-Session-Id": "chat-2"})
        assert current_session() is None
    assert current_session() is None


@pytest.mark.parametrize("path", ["/stream", "/stream-ctx"])
def test_flask_streamed_bodies_keep_the_route(path: str) -> None:
    # No tracing at all: the route is read when the response starts, before Flask forgets it.
    response = Client(flask_app()).get(path, headers={"X-Session-Id": "chat-1"})
    assert response.get_data(as_text=True).splitlines() == [f"{n} chat-1 {path}" for n in range(3)]


def test_werkzeug_streamed_bodies_keep_the_route_they_had() -> None:
    # A plain Werkzeug app has no route: http.route stays absent, never stale.
    response = Client(wsgi_app()).get("/stream", headers={"X-Session-Id": "chat-1"})
    assert response.get_data(as_text=True).splitlines() == [f"{n} chat-1 None" for n in range(3)]


def test_the_app_sees_its_session_while_producing_and_closing_the_body() -> None:
    events: list[str] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            events.append(f"iterate {seen()}")
            yield b"x"

        def close(self) -> None:
            events.append(f"close {seen()}")

    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        events.append(f"call {seen()}")
        start_response("200 OK", [])
        return Body()

    body = WsgiSessionMiddleware(app)({"REQUEST_METHOD": "GET", "HTTP_X_SESSION_ID": "s"}, _start)
    assert current_session() is None
    assert next(iter(body)) == b"x"  # not exhausted yet: the close runs in the session too
    body.close()  # type: ignore[attr-defined]
    assert events == ["call s None", "iterate s None", "close s None"]
    assert current_session() is None


def _start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return lambda data: None


def test_a_list_body_is_handed_over_as_is_with_its_session_closed() -> None:
    # A list runs no code once the app returns: the session ends with the app's call, and the
    # server gets the app's own list (no wrapper to iterate, nothing left open if unread).
    produced = [b"ok"]
    seen_in_app: list[str] = []

    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        seen_in_app.append(seen())
        start_response("200 OK", [])
        return produced

    started: list[list[tuple[str, str]]] = []

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started.append(headers)
        return _start(status, headers, exc_info)

    body = WsgiSessionMiddleware(app)({"REQUEST_METHOD": "GET", "HTTP_X_SESSION_ID": "s"}, start)
    assert body is produced
    assert seen_in_app == ["s None"]
    assert started == [[("x-session-id", "s")]]
    assert current_session() is None
