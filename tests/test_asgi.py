"""The ASGI adapter, driven through Starlette's and FastAPI's TestClient and httpx.ASGITransport."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, Router, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from session_mw import SessionMiddleware, current_session
from session_mw._routes import find_routes, route_template
from session_mw.asgi import SessionMiddleware as AsgiSessionMiddleware
from tests.frameworks import SID, Message, seen


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse(seen())


def starlette_app(**options: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/whoami", whoami, methods=["GET", "POST"]),
            Route("/chat/{conversation_id}", whoami, methods=["GET", "POST"]),
            Mount("/api/v1", routes=[Route("/chat/{conversation_id:int}", whoami)]),
        ]
    )
    app.add_middleware(SessionMiddleware, **options)
    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(starlette_app())


def test_same_object_exported() -> None:
    assert SessionMiddleware is AsgiSessionMiddleware


def test_valid_incoming_id_is_used_and_echoed_once(client: TestClient) -> None:
    response = client.get("/whoami", headers={"X-Session-Id": SID})
    assert response.status_code == 200
    assert response.json()["id"] == SID
    assert response.json()["otel"] == SID
    assert response.headers.get_list("x-session-id") == [SID]


def test_header_name_matches_case_insensitively(client: TestClient) -> None:
    response = client.get("/whoami", headers={"x-SESSION-id": SID})
    assert response.json()["id"] == SID


def test_missing_header_gets_a_uuid4(client: TestClient) -> None:
    response = client.get("/whoami")
    session_id = response.headers["x-session-id"]
    assert uuid.UUID(session_id).version == 4
    assert response.json()["id"] == session_id
    assert client.get("/whoami").headers["x-session-id"] != session_id


def test_configured_header_name() -> None:
    client = TestClient(starlette_app(header_name="X-Conversation-Id"))
    response = client.get("/whoami", headers={"X-Conversation-Id": SID, "X-Session-Id": "other"})
    assert response.json()["id"] == SID
    assert response.headers.get_list("x-conversation-id") == [SID]
    assert "x-session-id" not in response.headers


# Values a client can send through httpx; CR/LF and raw bytes go through raw_request below.
@pytest.mark.parametrize(
    "value", ["", " ", "a,b", '"quoted"', "tab\there", "a" * 129, "x;y", "<script>"]
)
def test_invalid_values_get_a_fresh_id_and_a_clean_warning(
    client: TestClient, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="session_mw"):
        response = client.get("/whoami", headers={"X-Session-Id": value})
    assert response.status_code == 200
    session_id = response.headers["x-session-id"]
    assert uuid.UUID(session_id).version == 4
    assert response.json()["id"] == session_id
    assert len(caplog.records) == 1
    if value.strip():
        assert value not in caplog.text
        assert value not in response.text


async def raw_request(
    app: Any, headers: list[tuple[bytes, bytes]], scope_type: str = "http"
) -> tuple[list[Message], dict[str, Any]]:
    """One request straight through the ASGI interface: any header bytes, every message kept."""
    sent: list[Message] = []
    scope: dict[str, Any] = {
        "type": scope_type,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/whoami",
        "raw_path": b"/whoami",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent, scope


async def echo_session(
    scope: Any, receive: Any, send: Callable[[Message], Awaitable[None]]
) -> None:
    opened = current_session()
    body = b"none" if opened is None else opened.id.encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.anyio
@pytest.mark.parametrize(
    "value",
    [b"a\r\nSet-Cookie: evil=1", b"a\nb", b"\x00", b"caf\xc3\xa9", b"\xff\xfe", b"\x7f"],
)
async def test_control_characters_and_non_ascii_never_pass(
    value: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="session_mw"):
        sent, _ = await raw_request(SessionMiddleware(echo_session), [(b"x-session-id", value)])
    assert sent[0]["status"] == 200
    [(_, echoed)] = [(k, v) for k, v in sent[0]["headers"] if k == b"x-session-id"]
    assert uuid.UUID(echoed.decode()).version == 4
    assert sent[1]["body"] == echoed
    assert value.decode("latin-1") not in caplog.text


@pytest.mark.anyio
async def test_repeated_header_is_invalid_like_a_joined_wsgi_value() -> None:
    headers = [(b"x-session-id", b"first"), (b"x-session-id", b"second")]
    sent, _ = await raw_request(SessionMiddleware(echo_session), headers)
    echoed = dict(sent[0]["headers"])[b"x-session-id"]
    assert echoed not in (b"first", b"second", b"first,second")
    assert uuid.UUID(echoed.decode()).version == 4


def test_reject_mode_answers_400_without_calling_the_app() -> None:
    calls = []

    async def endpoint(request: Request) -> Response:
        calls.append(1)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", endpoint)])
    app.add_middleware(SessionMiddleware, on_invalid="reject")
    client = TestClient(app)
    response = client.get("/", headers={"X-Session-Id": "not valid"})
    assert response.status_code == 400
    assert "X-Session-Id" in response.text
    assert "1 to 128 characters" in response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert "x-session-id" not in response.headers
    assert calls == []
    assert client.get("/", headers={"X-Session-Id": "fine"}).status_code == 200
    assert calls == [1]


def test_custom_generator_and_validator() -> None:
    ids = iter(f"conv-{n}" for n in range(100))
    client = TestClient(
        starlette_app(generator=lambda: next(ids), validator=lambda v: v.startswith("conv-"))
    )
    assert client.get("/whoami").json()["id"] == "conv-1"
    assert client.get("/whoami", headers={"X-Session-Id": "conv-9"}).json()["id"] == "conv-9"
    assert client.get("/whoami", headers={"X-Session-Id": "chat-1"}).json()["id"] == "conv-2"


def test_configuration_mistakes_raise_at_construction() -> None:
    with pytest.raises(ValueError, match="not a valid HTTP header name"):
        SessionMiddleware(echo_session, header_name="X Session")
    with pytest.raises(ValueError, match="make the generator return"):
        SessionMiddleware(echo_session, generator=lambda: "")


def test_the_apps_own_header_is_kept_and_other_headers_too() -> None:
    async def endpoint(request: Request) -> Response:
        response = PlainTextResponse("ok", headers={"X-Session-Id": "from-the-app"})
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    app = Starlette(routes=[Route("/", endpoint)])
    app.add_middleware(SessionMiddleware)
    for headers in ({"X-Session-Id": SID}, {}, {"Origin": "http://localhost:3000"}):
        response = TestClient(app).get("/", headers=headers)
        assert response.headers.get_list("x-session-id") == ["from-the-app"]
        assert len(response.headers.get_list("set-cookie")) == 2
        assert response.cookies["a"] == "1"
        assert response.cookies["b"] == "2"
    assert response.headers["access-control-expose-headers"] == "X-Session-Id"


@pytest.mark.anyio
async def test_mixed_case_response_header_from_a_raw_app_is_kept_as_it_is() -> None:
    async def app(scope: Any, receive: Any, send: Callable[[Message], Awaitable[None]]) -> None:
        headers = [(b"X-Session-Id", b"rotated"), (b"Set-Cookie", b"a=1"), (b"Set-Cookie", b"b=2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    sent, _ = await raw_request(SessionMiddleware(app), [(b"x-session-id", SID.encode())])
    assert sent[0]["headers"] == [
        (b"X-Session-Id", b"rotated"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
    ]


def test_origin_exposes_the_header_to_browser_scripts(client: TestClient) -> None:
    response = client.get("/whoami", headers={"Origin": "http://localhost:3000"})
    assert response.headers.get_list("access-control-expose-headers") == ["X-Session-Id"]
    assert "access-control-expose-headers" not in client.get("/whoami").headers


@pytest.mark.parametrize("session_outermost", [True, False])
def test_cors_middleware_exposed_headers_are_kept(session_outermost: bool) -> None:
    cors = Middleware(
        CORSMiddleware, allow_origins=["http://localhost:3000"], expose_headers=["X-Other"]
    )
    session = Middleware(SessionMiddleware)
    app = Starlette(
        routes=[Route("/whoami", whoami)],
        middleware=[session, cors] if session_outermost else [cors, session],
    )
    response = TestClient(app).get("/whoami", headers={"Origin": "http://localhost:3000"})
    exposed = response.headers["access-control-expose-headers"]
    if session_outermost:  # CORS ran inside and exposed its list; ours is appended
        assert [part.strip() for part in exposed.split(",")] == ["X-Other", "X-Session-Id"]
    else:  # CORSMiddleware outside overwrites with its own list: document this placement
        assert response.headers.get_list("x-session-id") == [response.json()["id"]]


@pytest.mark.anyio
async def test_expose_header_already_listing_the_name_is_left_alone() -> None:
    async def app(scope: Any, receive: Any, send: Callable[[Message], Awaitable[None]]) -> None:
        headers = [(b"access-control-expose-headers", b"ETag, x-session-id")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    sent, _ = await raw_request(SessionMiddleware(app), [(b"origin", b"http://a.example")])
    exposed = [v for k, v in sent[0]["headers"] if k == b"access-control-expose-headers"]
    assert exposed == [b"ETag, x-session-id"]


@pytest.mark.anyio
async def test_empty_expose_header_gets_the_name() -> None:
    async def app(scope: Any, receive: Any, send: Callable[[Message], Awaitable[None]]) -> None:
        headers = [(b"access-control-expose-headers", b" ")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    sent, _ = await raw_request(SessionMiddleware(app), [(b"origin", b"http://a.example")])
    assert (b"access-control-expose-headers", b"X-Session-Id") in sent[0]["headers"]


def test_request_attributes_and_route_template(client: TestClient) -> None:
    body = client.post("/chat/abc").json()
    assert body["attributes"] == {
        "url.path": "/chat/abc",
        "http.request.method": "POST",
        "http.route": "/chat/{conversation_id}",
    }
    mounted = client.get("/api/v1/chat/7").json()["attributes"]
    assert mounted["http.route"] == "/api/v1/chat/{conversation_id:int}"
    assert mounted["url.path"] == "/api/v1/chat/7"


def test_fastapi_router_prefixes_and_mounted_sub_apps() -> None:
    router = APIRouter(prefix="/chat")

    @router.post("/{conversation_id}/turns")
    async def turn(conversation_id: str) -> dict[str, Any]:
        return seen()

    sub = FastAPI()

    @sub.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return seen()

    app = FastAPI()
    app.include_router(router, prefix="/v2")
    app.mount("/tenants/{tenant}", sub)
    app.add_middleware(SessionMiddleware)
    client = TestClient(app)
    routed = client.post("/v2/chat/abc/turns").json()["attributes"]
    assert routed["http.route"] == "/v2/chat/{conversation_id}/turns"
    nested = client.get("/tenants/acme/items/3").json()["attributes"]
    assert nested["http.route"] == "/tenants/{tenant}/items/{item_id}"


def test_route_is_visible_after_the_request() -> None:
    captured = []

    async def endpoint(request: Request) -> Response:
        captured.append(current_session())
        return PlainTextResponse("ok")

    app = SessionMiddleware(Starlette(routes=[Route("/users/{uid}", endpoint)]))
    TestClient(app).get("/users/1")
    assert captured[0] is not None
    assert captured[0].attributes["http.route"] == "/users/{uid}"


def test_no_route_attribute_when_nothing_matched() -> None:
    captured = []

    async def not_found(request: Request, exc: Exception) -> Response:
        captured.append(dict(current_session().attributes))  # type: ignore[union-attr]
        return PlainTextResponse("no", status_code=404)

    app = Starlette(routes=[Route("/a", whoami)], exception_handlers={404: not_found})
    app.add_middleware(SessionMiddleware)
    response = TestClient(app).get("/nowhere")
    assert response.status_code == 404
    assert "x-session-id" in response.headers
    assert captured == [{"url.path": "/nowhere", "http.request.method": "GET"}]


def test_method_mismatch_still_names_the_route(client: TestClient) -> None:
    captured = []

    async def endpoint(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        captured.append(current_session().attributes.get("http.route"))  # type: ignore[union-attr]
        return PlainTextResponse("no", status_code=405)

    app = Starlette(
        routes=[Route("/only-post", endpoint, methods=["POST"])],
        exception_handlers={405: not_allowed},
    )
    app.add_middleware(SessionMiddleware)
    assert TestClient(app).get("/only-post").status_code == 405
    assert captured == ["/only-post"]


def test_route_matching_needs_no_scope_route() -> None:
    """Old Starlette sets neither scope["route"] nor anything else: matching uses the routes."""
    routes = [Mount("/api", routes=[Route("/chat/{cid}", whoami)]), Route("/x", whoami)]
    scope = {"type": "http", "path": "/api/chat/9", "root_path": "", "method": "GET", "headers": []}
    assert route_template(routes, scope) == "/api/chat/{cid}"
    assert route_template(routes, {**scope, "path": "/api/other"}) is None
    assert route_template(routes, {**scope, "path": "/elsewhere"}) is None


def test_plain_router_app_and_mounts_without_routes() -> None:
    async def static(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse(current_session().attributes["http.route"])(scope, receive, send)  # type: ignore[union-attr]

    router = Router(routes=[Mount("/static", app=static)])
    response = TestClient(SessionMiddleware(router)).get("/static/logo.png")
    assert response.text == "/static"


def test_find_routes_walks_wrappers_and_gives_up_on_plain_apps() -> None:
    app = Starlette(routes=[Route("/", whoami)])
    assert find_routes(OpenTelemetryMiddleware(app)) is app.routes
    assert find_routes(echo_session) is None

    class Loop:
        def __init__(self) -> None:
            self.app = self

    assert find_routes(Loop()) is None


class AttributesApp:
    """A plain ASGI app (with a ``routes`` list, as routers have) that answers its attributes."""

    def __init__(self, routes: list[Any] | None = None) -> None:
        if routes is not None:
            self.routes = routes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await JSONResponse(dict(current_session().attributes))(scope, receive, send)  # type: ignore[union-attr]


def test_a_broken_route_class_only_loses_the_route(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Route):
        def matches(self, scope: Any) -> Any:
            raise RuntimeError("custom route bug")

    app = SessionMiddleware(AttributesApp([Broken("/ok", whoami)]))
    with caplog.at_level(logging.DEBUG, logger="session_mw"):
        response = TestClient(app).get("/ok")
    assert response.json() == {"url.path": "/ok", "http.request.method": "GET"}
    assert "Could not match the request's route" in caplog.text


def test_plain_asgi_app_has_no_route() -> None:
    response = TestClient(SessionMiddleware(AttributesApp())).post("/anything")
    assert response.json() == {"url.path": "/anything", "http.request.method": "POST"}


def test_route_falls_back_to_the_starlette_app_in_the_scope() -> None:
    class Opaque:  # hides the app from find_routes: no .app, no .routes
        def __init__(self, app: Any) -> None:
            self._inner = app

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            scope["app"] = self._inner
            await self._inner(scope, receive, send)

    inner = Starlette(routes=[Route("/chat/{cid}", whoami)])
    response = TestClient(SessionMiddleware(Opaque(inner))).get("/chat/1")
    assert response.json()["attributes"]["http.route"] == "/chat/{cid}"


def test_streaming_body_and_background_task_run_inside_the_session() -> None:
    chunks_seen: list[str | None] = []
    background_seen: list[str | None] = []

    def sid() -> str | None:
        opened = current_session()
        return None if opened is None else opened.id

    async def stream(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for n in range(3):
                await asyncio.sleep(0)
                chunks_seen.append(sid())
                yield f"chunk {n}\n".encode()

        async def after() -> None:
            background_seen.append(sid())

        return StreamingResponse(body(), background=BackgroundTask(after))

    app = Starlette(routes=[Route("/stream", stream)])
    app.add_middleware(SessionMiddleware)
    response = TestClient(app).get("/stream", headers={"X-Session-Id": SID})
    assert response.text == "chunk 0\nchunk 1\nchunk 2\n"
    assert chunks_seen == [SID] * 3
    assert background_seen == [SID]


def error_app() -> Starlette:
    async def boom(request: Request) -> Response:
        raise RuntimeError("boom")

    return Starlette(routes=[Route("/boom", boom)])


def test_outermost_placement_puts_the_header_on_500_responses() -> None:
    client = TestClient(SessionMiddleware(error_app()), raise_server_exceptions=False)
    response = client.get("/boom", headers={"X-Session-Id": SID})
    assert response.status_code == 500
    assert response.headers.get_list("x-session-id") == [SID]


def test_inner_placement_cannot_reach_servererrormiddleware_500s() -> None:
    app = error_app()
    app.add_middleware(SessionMiddleware)
    response = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500
    assert "x-session-id" not in response.headers  # why the README says: wrap it outermost


def test_session_closes_when_the_app_raises() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        TestClient(SessionMiddleware(error_app())).get("/boom")
    assert current_session() is None


@pytest.mark.anyio
async def test_session_closes_when_the_client_disconnects_mid_response() -> None:
    async def app(scope: Any, receive: Any, send: Callable[[Message], Awaitable[None]]) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})

    async def broken_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            raise OSError("client went away")

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "path": "/", "headers": [], "method": "GET"}
    with pytest.raises(OSError, match="client went away"):
        await SessionMiddleware(app)(scope, receive, broken_send)
    assert current_session() is None
    sent, _ = await raw_request(SessionMiddleware(echo_session), [])
    assert sent[1]["body"] != b"none"


@pytest.mark.anyio
async def test_cancelled_request_closes_its_session() -> None:
    started = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        started.set()
        await asyncio.sleep(10)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    task = asyncio.create_task(
        SessionMiddleware(app)({"type": "http", "path": "/", "headers": []}, receive, send)
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert current_session() is None


def test_sessions_do_not_leak_between_requests(client: TestClient) -> None:
    first = client.get("/whoami", headers={"X-Session-Id": "one"}).json()["id"]
    second = client.get("/whoami").json()["id"]
    assert first == "one"
    assert second != "one"
    assert current_session() is None


@pytest.mark.anyio
async def test_concurrent_requests_keep_their_own_ids_across_awaits() -> None:
    async def endpoint(request: Request) -> Response:
        before = current_session().id  # type: ignore[union-attr]
        await asyncio.sleep(0.01)
        after = current_session().id  # type: ignore[union-attr]
        return PlainTextResponse(f"{before} {after}")

    app = FastAPI()
    app.add_api_route("/turn", endpoint)
    app.add_middleware(SessionMiddleware)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        ids = [f"conv-{n}" for n in range(100)]
        responses = await asyncio.gather(
            *(http.get("/turn", headers={"X-Session-Id": i}) for i in ids)
        )
    for session_id, response in zip(ids, responses, strict=True):
        assert response.headers["x-session-id"] == session_id
        assert response.text == f"{session_id} {session_id}"


def test_websocket_accept_carries_the_id_and_the_endpoint_sees_it() -> None:
    async def chat(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json(seen())
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws/{room}", chat)])
    app.add_middleware(SessionMiddleware)
    with TestClient(app).websocket_connect("/ws/lobby", headers={"X-Session-Id": SID}) as ws:
        body = ws.receive_json()
    assert body["id"] == SID
    assert body["attributes"]["http.route"] == "/ws/{room}"
    assert body["attributes"]["url.path"] == "/ws/lobby"


@pytest.mark.anyio
async def test_websocket_accept_and_denial_headers() -> None:
    async def accept(scope: Any, receive: Any, send: Callable[[Message], Awaitable[None]]) -> None:
        await send({"type": "websocket.accept", "headers": [(b"x-app", b"1")]})

    sent, _ = await raw_request(
        SessionMiddleware(accept), [(b"x-session-id", b"ws-1")], "websocket"
    )
    assert sent[0]["headers"] == [(b"x-app", b"1"), (b"x-session-id", b"ws-1")]

    async def deny(scope: Any, receive: Any, send: Callable[[Message], Awaitable[None]]) -> None:
        await send({"type": "websocket.http.response.start", "status": 403, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no"})

    sent, _ = await raw_request(SessionMiddleware(deny), [(b"x-session-id", b"ws-2")], "websocket")
    assert sent[0]["headers"] == [(b"x-session-id", b"ws-2")]


@pytest.mark.anyio
async def test_websocket_reject_mode() -> None:
    strict = SessionMiddleware(echo_session, on_invalid="reject")
    sent, _ = await raw_request(strict, [(b"x-session-id", b"bad value")], "websocket")
    assert sent[0]["type"] == "websocket.close"
    assert sent[0]["code"] == 1008
    assert "X-Session-Id" in sent[0]["reason"]

    async def with_denial(scope: Any, receive: Any, send: Any) -> None:
        scope["extensions"] = {"websocket.http.response": {}}
        await strict(scope, receive, send)

    sent, _ = await raw_request(with_denial, [(b"x-session-id", b"bad value")], "websocket")
    assert [m["type"] for m in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 400


@pytest.mark.anyio
async def test_lifespan_passes_through_untouched() -> None:
    received: list[tuple[Any, Any, Any, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        received.append((scope, receive, send, current_session()))

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        pass

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    await SessionMiddleware(app)(scope, receive, send)
    assert received == [(scope, receive, send, None)]
    assert scope == {"type": "lifespan", "asgi": {"version": "3.0"}}


def test_lifespan_through_a_real_app_still_runs_startup() -> None:
    events: list[str] = []

    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    from contextlib import asynccontextmanager

    app = SessionMiddleware(Starlette(routes=[], lifespan=asynccontextmanager(lifespan)))
    with TestClient(app):
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]


@pytest.mark.parametrize("session_outermost", [True, False])
def test_entry_span_gets_session_and_route(
    session_outermost: bool, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    inner = Starlette(routes=[Route("/chat/{cid}", whoami)])
    if session_outermost:
        app: Any = SessionMiddleware(OpenTelemetryMiddleware(inner, tracer_provider=provider))
    else:
        app = OpenTelemetryMiddleware(SessionMiddleware(inner), tracer_provider=provider)
    response = TestClient(app).get("/chat/9", headers={"X-Session-Id": SID})
    assert response.headers["x-session-id"] == SID
    [server] = [s for s in exporter.get_finished_spans() if s.parent is None]
    attributes = server.attributes or {}
    if session_outermost:
        # The server span starts inside the session: only the span processor (session_mw.otel)
        # can reach it. The session itself is still current in the endpoint.
        assert response.json()["id"] == SID
    else:
        assert attributes["session.id"] == SID
        assert attributes["url.path"] == "/chat/9"
        assert attributes["http.route"] == "/chat/{cid}"
