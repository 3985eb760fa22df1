from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
import requests
from fastapi import FastAPI
from flask import Flask
from opentelemetry import propagate
from starlette.testclient import TestClient
from werkzeug.serving import make_server

from session_mw import SessionMiddleware, current_session, inject_headers, session
from session_mw.clients import httpx_async_event_hooks, httpx_event_hooks, requests_session
from session_mw.flask import SessionMiddleware as FlaskSessionMiddleware


def test_outside_a_session_headers_are_unchanged() -> None:
    headers = {"Accept": "application/json"}
    assert inject_headers(headers) is headers
    assert headers == {"Accept": "application/json"}


def test_inside_a_session_the_id_is_added_under_the_configured_name() -> None:
    with session("chat-9"):
        assert inject_headers({}) == {"X-Session-Id": "chat-9"}
        assert inject_headers({}, header_name="X-Conversation") == {"X-Conversation": "chat-9"}


def echo_headers(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=dict(request.headers))


def test_httpx_sync_hook() -> None:
    client = httpx.Client(
        transport=httpx.MockTransport(echo_headers), event_hooks=httpx_event_hooks()
    )
    with session("chat-1"):
        assert client.get("http://backend/").json()["x-session-id"] == "chat-1"
    assert "x-session-id" not in client.get("http://backend/").json()


@pytest.mark.anyio
async def test_httpx_async_hook_with_custom_header() -> None:
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(echo_headers),
        event_hooks=httpx_async_event_hooks(header_name="X-Conversation"),
    ) as client:
        with session("chat-2"):
            response = await client.get("http://backend/")
    assert response.json()["x-conversation"] == "chat-2"


def test_requests_session_adapter_against_a_real_server() -> None:
    backend = backend_flask()
    server = make_server("127.0.0.1", 0, backend, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/answer"
        with requests_session() as http:
            with session("chat-3"):
                inside = http.get(url, timeout=10).json()
            outside = http.get(url, timeout=10).json()
        existing = requests.Session()
        assert requests_session(existing) is existing
    finally:
        server.shutdown()
        thread.join(10)
    assert inside == {"backend_session": "chat-3"}
    assert outside["backend_session"] not in (None, "chat-3")  # the backend made its own


def backend_flask() -> Flask:
    app = Flask(__name__)

    @app.get("/answer")
    def answer() -> dict[str, str | None]:
        opened = current_session()
        return {"backend_session": None if opened is None else opened.id}

    FlaskSessionMiddleware(app, from_baggage=True)
    return app


def gateway(backend: Flask, **options: Any) -> FastAPI:
    """A FastAPI gateway calling a Flask backend over httpx, as two services would."""
    app = FastAPI()
    hooks = {} if options.get("baggage") else httpx_event_hooks()

    @app.get("/ask")
    def ask() -> dict[str, object]:
        headers: dict[str, str] = {}
        propagate.inject(headers)  # what OTel's httpx instrumentation does on every call
        with httpx.Client(transport=httpx.WSGITransport(app=backend), event_hooks=hooks) as client:
            downstream = client.get("http://backend/answer", headers=headers).json()
        return {"gateway_session": current_session().id, **downstream}  # type: ignore[union-attr]

    app.add_middleware(SessionMiddleware, **options)
    return app


def test_two_services_share_the_session_through_the_header() -> None:
    body = (
        TestClient(gateway(backend_flask())).get("/ask", headers={"X-Session-Id": "conv-1"}).json()
    )
    assert body == {"gateway_session": "conv-1", "backend_session": "conv-1"}


def test_two_services_share_the_session_through_baggage() -> None:
    client = TestClient(gateway(backend_flask(), baggage=True))
    body = client.get("/ask").json()  # a generated id, sent on only as W3C baggage
    assert body["backend_session"] == body["gateway_session"]
    assert (
        client.get("/ask", headers={"X-Session-Id": "conv-9"}).json()["backend_session"] == "conv-9"
    )


def test_invalid_baggage_value_is_not_trusted() -> None:
    app = backend_flask()
    response = app.test_client().get("/answer", headers={"baggage": "session.id=a%0D%0Ab"})
    body: Any = response.json
    assert body["backend_session"] not in ("a\r\nb", None)
    asgi = FastAPI()

    @asgi.get("/")
    def root() -> str:
        return current_session().id  # type: ignore[union-attr]

    asgi.add_middleware(SessionMiddleware, from_baggage=True)
    client = TestClient(asgi)
    assert client.get("/", headers={"baggage": "other=1,session.id=b-2"}).json() == "b-2"
    assert client.get("/", headers={"baggage": "other=1"}).json() != "other=1"
