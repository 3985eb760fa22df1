"""The WSGI adapter, driven through Werkzeug's test client; every response is closed."""

from __future__ import annotations

import gc
import logging
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from session_mw import current_session
from session_mw.wsgi import SessionMiddleware
from tests.clients import wsgi_get as get

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

SID = "chat-42"


def sid() -> str | None:
    opened = current_session()
    return None if opened is None else opened.id


@Request.application
def whoami(request: Request) -> Response:
    opened = current_session()
    assert opened is not None
    attributes = opened.attributes
    return Response(f"{opened.id} {attributes['http.request.method']!s} {attributes['url.path']!s}")


def test_valid_id_is_used_and_echoed_once() -> None:
    response = get(SessionMiddleware(whoami), "/chat", headers={"X-Session-Id": SID})
    assert response.status_code == 200
    assert response.get_data(as_text=True) == f"{SID} GET /chat"
    assert response.headers.getlist("X-Session-Id") == [SID]


def test_missing_header_gets_a_uuid4() -> None:
    response = get(SessionMiddleware(whoami))
    generated = response.headers["X-Session-Id"]
    assert uuid.UUID(generated).version == 4
    assert response.get_data(as_text=True).startswith(generated)


def test_configured_header_name() -> None:
    app = SessionMiddleware(whoami, header_name="X-Conversation-Id")
    response = get(app, headers={"X-Conversation-Id": SID, "X-Session-Id": "other"})
    assert response.get_data(as_text=True).startswith(SID)
    assert response.headers.getlist("X-Conversation-Id") == [SID]
    assert "X-Session-Id" not in response.headers


@pytest.mark.parametrize(
    "value",
    ["", "   ", "a" * 129, "caf\xe9", "tab\there", "a\x00b", "\x1b[31m", "first, second", '"q"'],
)
def test_bad_values_get_a_fresh_id_never_a_500(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="session_mw"):
        response = get(SessionMiddleware(whoami), headers={"X-Session-Id": value})
    assert response.status_code == 200
    fresh = response.headers["X-Session-Id"]
    assert uuid.UUID(fresh).version == 4
    assert len(caplog.records) == 1
    if value.strip():
        assert value not in caplog.text


def test_reject_mode() -> None:
    app = SessionMiddleware(whoami, on_invalid="reject")
    response = get(app, headers={"X-Session-Id": "no spaces"})
    assert response.status_code == 400
    assert "X-Session-Id" in response.get_data(as_text=True)
    assert response.headers["Content-Length"] == str(len(response.get_data()))
    assert "X-Session-Id" not in response.headers


def test_the_apps_own_header_is_kept_and_cookies_too() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response(
            "200 OK",
            [("x-session-id", "rotated"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
        )
        return [b"ok"]

    for headers in ({"X-Session-Id": SID}, {}, {"Origin": "http://localhost:3000"}):
        response = get(SessionMiddleware(app), headers=headers)
        assert response.headers.getlist("X-Session-Id") == ["rotated"]
        assert response.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert response.headers["Access-Control-Expose-Headers"] == "X-Session-Id"


def test_origin_exposes_the_header_and_appends_to_the_apps_list() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Access-Control-Expose-Headers", "ETag")])
        return [b"ok"]

    response = get(SessionMiddleware(app), headers={"Origin": "http://localhost:3000"})
    assert response.headers.getlist("Access-Control-Expose-Headers") == ["ETag,X-Session-Id"]
    plain = get(SessionMiddleware(whoami), headers={"Origin": "http://localhost:3000"})
    assert plain.headers["Access-Control-Expose-Headers"] == "X-Session-Id"
    assert "Access-Control-Expose-Headers" not in get(SessionMiddleware(whoami)).headers


def test_path_includes_script_name_and_decodes_utf8() -> None:
    response = get(
        SessionMiddleware(whoami),
        "/caf%C3%A9",
        environ_overrides={"SCRIPT_NAME": "/app"},
        method="POST",
    )
    assert response.get_data(as_text=True).endswith("POST /app/café")


def streaming_app(seen: list[str | None], cleaned: list[str | None]) -> Any:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            for n in range(3):
                seen.append(sid())
                yield f"chunk {n}\n".encode()
        finally:
            cleaned.append(sid())

    return app


def test_streamed_body_runs_inside_the_session_until_exhausted() -> None:
    seen: list[str | None] = []
    cleaned: list[str | None] = []
    response = Client(SessionMiddleware(streaming_app(seen, cleaned))).get(
        "/", headers={"X-Session-Id": SID}
    )
    assert seen == [SID]  # the client pulls the first chunk: a generator starts its response late
    assert response.get_data(as_text=True) == "chunk 0\nchunk 1\nchunk 2\n"
    assert seen == [SID] * 3
    assert cleaned == [SID]
    assert current_session() is None  # exhausted: closed already
    response.close()  # and the close that follows does not reset twice
    assert current_session() is None


def test_close_before_exhaustion_closes_the_session_after_the_apps_cleanup() -> None:
    seen: list[str | None] = []
    cleaned: list[str | None] = []
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_SESSION_ID": SID}
    body = SessionMiddleware(streaming_app(seen, cleaned))(environ, lambda *args: lambda b: None)
    iterator = iter(body)
    assert next(iterator) == b"chunk 0\n"
    assert seen == [SID]  # in the session while the body is produced, never in the caller's
    assert sid() is None
    body.close()  # type: ignore[attr-defined]  # the client went away
    assert cleaned == [SID]
    assert current_session() is None
    body.close()  # type: ignore[attr-defined]
    assert current_session() is None


class Held:
    """Something the app keeps in its request's context."""


_held: ContextVar[Held | None] = ContextVar("held", default=None)


def test_a_requests_session_is_dropped_with_its_response() -> None:
    # Nothing is reset in the request's own context: no code runs there once the body is
    # closed, and the context goes with the response, its session (and the request it holds
    # for the late route) with it, by reference counting alone: no cycle left to the collector.
    held: list[weakref.ref[Held]] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        assert sid() == SID
        kept = Held()
        _held.set(kept)  # in the request's context, beside the session
        held.append(weakref.ref(kept))
        start_response("200 OK", [])
        return (chunk for chunk in [b"x"])

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_SESSION_ID": SID}
    gc.disable()
    try:
        body: Any = SessionMiddleware(app)(environ, lambda *args: lambda b: None)
        assert b"".join(body) == b"x"
        assert held[0]() is not None  # the server still holds the response
        body.close()
        del body
        assert held[0]() is None
    finally:
        gc.enable()


def test_body_without_close_method() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return (b"x" for _ in range(0))  # generators have close(); tuples do not

    def tuple_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return (b"a", b"b")

    assert get(SessionMiddleware(tuple_app)).get_data() == b"ab"
    assert get(SessionMiddleware(app)).get_data() == b""


def test_app_raising_before_returning_resets_the_session() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        get(SessionMiddleware(app))
    assert current_session() is None


def test_a_body_whose_iter_raises_is_closed_in_its_session() -> None:
    # iter(body) runs as the app returns: when it raises, no server ever gets a body to close,
    # so the middleware closes it, in the request's session, and the error goes on.
    closed: list[str | None] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            raise RuntimeError("no chunks")

        def close(self) -> None:
            closed.append(sid())

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return Body()

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_SESSION_ID": SID}
    with pytest.raises(RuntimeError, match="no chunks"):
        SessionMiddleware(app)(environ, lambda *args: lambda b: None)
    assert closed == [SID]
    assert current_session() is None


def test_body_raising_mid_stream_is_closed_by_the_server() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"part"
        raise RuntimeError("stream broke")

    with pytest.raises(RuntimeError, match="stream broke"):
        get(SessionMiddleware(app))
    assert current_session() is None


def test_consecutive_requests_on_one_thread_do_not_share_sessions() -> None:
    app = SessionMiddleware(whoami)
    first = get(app, headers={"X-Session-Id": "one"}).get_data(as_text=True)
    second = get(app).get_data(as_text=True)
    assert first.startswith("one ")
    assert not second.startswith("one ")
    assert current_session() is None


def test_otel_wsgi_server_span_gets_the_session(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = OpenTelemetryMiddleware(SessionMiddleware(whoami), tracer_provider=provider)
    get(app, "/chat", headers={"X-Session-Id": SID})
    [span] = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["session.id"] == SID
    assert span.attributes["url.path"] == "/chat"


def test_write_callable_from_start_response_is_passed_through() -> None:
    written: list[bytes] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [])
        write(b"legacy ")
        return [b"body"]

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], object]:
        assert ("x-session-id", SID) in headers
        return written.append

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_X_SESSION_ID": SID}
    body = SessionMiddleware(app)(environ, start_response)
    assert list(body) == [b"body"]
    assert written == [b"legacy "]


def test_route_read_before_flask_routed_is_asked_again_later() -> None:
    from flask import Flask

    flask_app = Flask(__name__)
    reads: list[object] = []

    @flask_app.get("/items/<int:item>")
    def item(item: int) -> str:
        reads.append(current_session().attributes.get("http.route"))  # type: ignore[union-attr]
        return "ok"

    def peek(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # Something between the adapter and Flask reads the session before Flask has routed.
        reads.append(current_session().attributes.get("http.route"))  # type: ignore[union-attr]
        return flask_app.wsgi_app(environ, start_response)

    get(SessionMiddleware(peek), "/items/3")
    assert reads == [None, "/items/<int:item>"]
