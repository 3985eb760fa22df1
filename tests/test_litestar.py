"""The Litestar adapter, driven through Litestar's TestClient, raw ASGI and uvicorn."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Controller, Litestar, Request, Response, Router, asgi, get, websocket
from litestar.background_tasks import BackgroundTask
from litestar.config.cors import CORSConfig
from litestar.connection import WebSocket
from litestar.middleware import ASGIMiddleware
from litestar.response import ServerSentEvent, Stream
from litestar.testing import TestClient
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from session_mw import current_session
from session_mw._options import Options
from session_mw.litestar import SessionMiddleware, SessionPlugin
from tests.frameworks import SID, drive, seen, server_attributes, turn_answer
from tests.servers import concurrent_turns, free_port, running

# Litestar (>= 2.15) needs pydantic >= 2.5 when pydantic is installed, above FastAPI 0.100's:
# the lowest run leaves this module out.
pytestmark = pytest.mark.above_floors

BASE = "http://testserver.local"


class Chat(Controller):
    path = "/chat"

    @get("/{cid:int}")
    async def turn(self) -> dict[str, Any]:  # parameters undeclared: no style differs by version
        return seen()

    @get(["/", "/recent/{limit:int}"])
    async def listing(self) -> dict[str, Any]:
        return seen()


@get("/whoami")
async def whoami() -> dict[str, Any]:
    return seen()


@get("/boom")
async def boom() -> None:
    raise RuntimeError("boom")


@get("/stream")
async def stream() -> Stream:
    async def chunks() -> AsyncIterator[str]:
        for n in range(3):
            await asyncio.sleep(0)
            yield f"{n}:{seen()['id']}\n"

    return Stream(chunks())


@get("/events")
async def events() -> ServerSentEvent:
    def chunks() -> Iterator[str]:
        for _ in range(2):
            yield seen()["id"]

    return ServerSentEvent(chunks())


@websocket("/ws/{room:str}")
async def room(socket: WebSocket[Any, Any, Any]) -> None:
    await socket.accept()
    await socket.send_json(seen())
    await socket.close()


@asgi("/files", is_mount=True, copy_scope=True)
async def files(scope: Any, receive: Any, send: Any) -> None:
    body = f"{seen()['id']} {seen()['attributes']['http.route']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def create_app(*, plugin: bool = True, **settings: Any) -> Litestar:
    options = settings.pop("options", {})
    api = Router("/api", route_handlers=[Chat, files])
    v1 = Router("/v1", route_handlers=[api])
    sessions: dict[str, Any] = (
        {"plugins": [SessionPlugin(**options)]}
        if plugin
        else {"middleware": [SessionMiddleware(**options)]}
    )
    return Litestar(
        route_handlers=[whoami, boom, stream, events, room, v1],
        openapi_config=None,
        logging_config=None,  # Litestar's would replace the root logger's handlers (pytest's)
        **sessions,
        **settings,
    )


def client(app: Litestar, **kwargs: Any) -> TestClient[Litestar]:
    return TestClient(app, base_url=BASE, **kwargs)


def test_handlers_see_the_session_and_the_route_with_every_prefix() -> None:
    with client(create_app()) as test:
        response = test.get("/v1/api/chat/7", headers={"X-Session-Id": SID})
    assert response.headers.get_list("x-session-id") == [SID]
    assert response.json() == {
        "id": SID,
        "attributes": {
            "url.path": "/v1/api/chat/7",
            "http.request.method": "GET",
            "http.route": "/v1/api/chat/{cid:int}",
        },
        "otel": SID,
    }


def test_a_handler_on_several_paths_names_the_one_it_matched() -> None:
    with client(create_app()) as test:
        listing = test.get("/v1/api/chat").json()["attributes"]["http.route"]
        recent = test.get("/v1/api/chat/recent/5").json()["attributes"]["http.route"]
        mounted = test.get("/v1/api/files/a/b.txt", headers={"X-Session-Id": SID}).text
    assert (listing, recent) == ("/v1/api/chat", "/v1/api/chat/recent/{limit:int}")
    assert mounted == f"{SID} /v1/api/files"


def test_the_path_parameter_is_read_from_litestars_params() -> None:
    with client(create_app(options={"path_param": "cid"})) as test:
        response = test.get("/v1/api/chat/0042", headers={"X-Session-Id": SID})
        plain = test.get("/whoami", headers={"X-Session-Id": SID})
    assert response.json()["id"] == "42"  # Litestar's int, as text
    assert response.headers.get_list("x-session-id") == ["42"]
    assert plain.json()["id"] == SID  # routes without the parameter: the header


@pytest.mark.parametrize("plugin", [True, False], ids=["plugin", "middleware"])
def test_answers_of_the_router_itself_carry_the_header_with_the_plugin(plugin: bool) -> None:
    with client(create_app(plugin=plugin)) as test:
        missing = test.get("/nowhere", headers={"X-Session-Id": SID, "Origin": "http://a.b"})
        wrong_method = test.post("/whoami", headers={"X-Session-Id": SID})
        generated = test.get("/nowhere")
    assert (missing.status_code, wrong_method.status_code) == (404, 405)
    if plugin:
        assert missing.headers.get_list("x-session-id") == [SID]
        assert missing.headers["access-control-expose-headers"] == "X-Session-Id"
        assert wrong_method.headers.get_list("x-session-id") == [SID]
        assert len(generated.headers["x-session-id"]) == 36
    else:  # Litestar runs no middleware before a route matched: documented
        for response in (missing, wrong_method, generated):
            assert "x-session-id" not in response.headers


def test_the_plugin_on_an_unrouted_answer_keeps_the_rules() -> None:
    with client(create_app(options={"on_invalid": "reject"})) as test:
        invalid = test.get("/nowhere", headers={"X-Session-Id": "a b"})
        valid = test.get("/nowhere", headers={"X-Session-Id": SID})
    assert invalid.status_code == 404  # not found stands, without an id
    assert "x-session-id" not in invalid.headers
    assert valid.headers.get_list("x-session-id") == [SID]
    with client(create_app(options={"issue_ids": False})) as test:
        absent = test.get("/nowhere", headers={"Origin": "http://a.b"})
        present = test.get("/nowhere", headers={"X-Session-Id": SID})
    assert "x-session-id" not in absent.headers  # issue_ids=False: none made, none written
    assert absent.headers["access-control-expose-headers"] == "X-Session-Id"
    assert "x-session-id" not in present.headers
    with client(create_app(options={"issue_ids": False})) as test:
        untouched = test.get("/nowhere")
    assert "x-session-id" not in untouched.headers
    assert "access-control-expose-headers" not in untouched.headers
    with client(create_app(options={"cookie_name": "sid"})) as test:
        cookie = test.get("/nowhere", headers={"X-Session-Id": SID}).headers["set-cookie"]
    assert cookie.startswith(f"sid={SID};")


@pytest.mark.parametrize("plugin", [True, False], ids=["plugin", "middleware"])
def test_litestars_cors_config(plugin: bool) -> None:
    origin = {"Origin": "http://localhost:3000"}
    listing = CORSConfig(allow_origins=["http://localhost:3000"], expose_headers=["ETag"])
    app = create_app(plugin=plugin, cors_config=listing)
    with client(app) as test:
        exposed = test.get("/whoami", headers=origin).headers["access-control-expose-headers"]
    if plugin:  # the plugin adds the header to Litestar's list, on a copy of the config
        assert exposed == "ETag, X-Session-Id"
        assert listing.expose_headers == ["ETag"]
    else:  # Litestar's CORS middleware replaces the header with its list: documented
        assert exposed == "ETag"
    # Without expose_headers, Litestar writes none, and ours stands.
    bare = create_app(plugin=plugin, cors_config=CORSConfig(allow_origins=["*"]))
    with client(bare) as test:
        response = test.get("/whoami", headers=origin)
    assert response.headers["access-control-expose-headers"] == "X-Session-Id"


def test_the_plugin_leaves_a_cors_list_that_names_the_header_alone() -> None:
    listing = CORSConfig(expose_headers=["x-session-id"])
    app = create_app(cors_config=listing)
    assert app.cors_config is listing


def test_errors_get_the_header_and_exception_handlers_run_in_the_session() -> None:
    handled: list[str | None] = []

    def on_error(request: Request[Any, Any, Any], error: Exception) -> Response[str]:
        opened = current_session()
        handled.append(None if opened is None else opened.id)
        return Response("sorry", status_code=500)

    app = create_app(exception_handlers={RuntimeError: on_error})
    with client(app) as test:
        response = test.get("/boom", headers={"X-Session-Id": SID})
    assert (response.status_code, response.headers.get_list("x-session-id")) == (500, [SID])
    assert handled == [SID]
    with client(create_app(), raise_server_exceptions=False) as test:
        default = test.get("/boom", headers={"X-Session-Id": SID})
    assert (default.status_code, default.headers.get_list("x-session-id")) == (500, [SID])


def test_streams_and_server_sent_events_are_produced_inside_the_session() -> None:
    with client(create_app()) as test:
        streamed = test.get("/stream", headers={"X-Session-Id": SID})
        sse = test.get("/events", headers={"X-Session-Id": SID})
    assert streamed.text == f"0:{SID}\n1:{SID}\n2:{SID}\n"
    assert sse.headers.get_list("x-session-id") == [SID]
    assert sse.text.count(f"data: {SID}") == 2


def test_after_response_hooks_and_background_tasks_run_inside_the_session() -> None:
    ran: list[tuple[str, str | None]] = []

    def note(where: str) -> None:
        opened = current_session()
        ran.append((where, None if opened is None else opened.id))

    @get("/later")
    async def later() -> Response[str]:
        return Response("ok", background=BackgroundTask(note, "background"))

    async def after(request: Request[Any, Any, Any]) -> None:
        note("after_response")

    app = Litestar(
        route_handlers=[later],
        plugins=[SessionPlugin()],
        after_response=after,
        openapi_config=None,
        logging_config=None,
    )
    with client(app) as test:
        test.get("/later", headers={"X-Session-Id": SID})
    assert sorted(ran) == [("after_response", SID), ("background", SID)]


def test_websocket_accept_carries_the_id_and_the_handler_sees_the_session() -> None:
    with (
        client(create_app()) as test,
        test.websocket_connect("/ws/lobby", headers={"X-Session-Id": SID}) as socket,
    ):
        body = socket.receive_json()
        accepted = socket.extra_headers
    assert body["id"] == SID
    assert body["attributes"]["http.route"] == "/ws/{room:str}"
    assert (b"x-session-id", SID.encode()) in (accepted or [])


@pytest.mark.anyio
async def test_websocket_reject_closes_with_policy_violation() -> None:
    app = create_app(options={"on_invalid": "reject"})
    sent = await drive(app, "/ws/lobby", [(b"x-session-id", b"bad value")], kind="websocket")
    assert sent[0]["type"] == "websocket.close"
    assert sent[0]["code"] == 1008
    assert "X-Session-Id" in sent[0]["reason"]
    bad = [(b"x-session-id", b"bad value")]
    denied = await drive(app, "/ws/lobby", bad, kind="websocket", denial=True)
    assert [message["type"] for message in denied] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert denied[0]["status"] == 400


@pytest.mark.anyio
async def test_headers_as_any_iterable_and_a_scope_without_raw_path() -> None:
    # ASGI allows iterables of iterables: read by the adapter, and by Litestar after it.
    app = create_app()
    headers = iter([iter((b"host", b"testserver.local")), iter((b"x-session-id", SID.encode()))])
    (start, body) = await drive(app, "/v1/api/chat/5", [], raw_path=False, scope_headers=headers)
    assert (b"x-session-id", SID.encode()) in start["headers"]
    assert b'"url.path":"/v1/api/chat/5"' in body["body"]


@pytest.mark.anyio
async def test_nothing_stays_current_after_any_request_in_the_callers_task() -> None:
    app = create_app(options={"on_invalid": "reject"})
    for path, headers in [
        ("/whoami", [(b"x-session-id", SID.encode())]),
        ("/whoami", [(b"x-session-id", b"a b")]),
        ("/nowhere", [(b"x-session-id", SID.encode())]),
        ("/stream", []),
    ]:
        await drive(app, path, headers)
    # Litestar answers an error itself: inside the session, which is closed afterwards.
    (start, _) = await drive(app, "/boom", [(b"x-session-id", SID.encode())])
    assert (start["status"], (b"x-session-id", SID.encode()) in start["headers"]) == (500, True)


@pytest.mark.anyio
async def test_a_client_disconnecting_mid_stream_closes_the_session() -> None:
    with pytest.raises(Exception) as raised:  # noqa: PT011  # Litestar may wrap it: see below
        await drive(create_app(), "/stream", [(b"x-session-id", SID.encode())], send_fails=True)
    # Litestar raises "Exception caught after response started" from a task group's error.
    assert "OSError: client went away" in "".join(traceback.format_exception(raised.value))
    (_, body) = await drive(create_app(), "/whoami", [])
    assert SID.encode() not in body["body"]


def test_a_failing_route_lookup_loses_the_route_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(scope: Any) -> str:
        raise RuntimeError("a custom route handler")

    monkeypatch.setattr("session_mw.litestar._template", failing)
    with client(create_app()) as test:
        response = test.get("/whoami", headers={"X-Session-Id": SID})
    assert response.status_code == 200
    assert response.json()["attributes"] == {"url.path": "/whoami", "http.request.method": "GET"}


def test_every_option_is_documented_in_help() -> None:
    for cls in (SessionMiddleware, SessionPlugin):
        doc = cls.__doc__ or ""
        for field in dataclasses.fields(Options):
            assert f":param {field.name}:" in doc, (cls, field.name)


def test_configuration_mistakes_raise_at_construction() -> None:
    with pytest.raises(ValueError, match="not a valid HTTP header name"):
        SessionMiddleware(header_name="X Session")
    with pytest.raises(TypeError, match="is not a bool"):
        SessionPlugin(issue_ids="false")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword argument 'headr_name'"):
        SessionPlugin(headr_name="X")  # type: ignore[call-arg]


def test_the_middleware_is_litestars_asgi_middleware_and_may_sit_on_a_router() -> None:
    assert issubclass(SessionMiddleware, ASGIMiddleware)
    inner = Router("/inner", route_handlers=[whoami], middleware=[SessionMiddleware()])

    @get("/outer")
    async def outer() -> str:
        return "none" if current_session() is None else "some"

    app = Litestar(route_handlers=[inner, outer], openapi_config=None, logging_config=None)
    with client(app) as test:
        routed = test.get("/inner/whoami", headers={"X-Session-Id": SID})
        other = test.get("/outer", headers={"X-Session-Id": SID})
    assert routed.json()["attributes"]["http.route"] == "/inner/whoami"
    assert (other.text, other.headers.get("x-session-id")) == ("none", None)


@pytest.mark.parametrize("plugin", [True, False], ids=["plugin", "middleware"])
def test_the_server_span_gets_the_session_and_the_route(
    plugin: bool, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = OpenTelemetryMiddleware(create_app(plugin=plugin), tracer_provider=provider)
    with TestClient(app, base_url=BASE) as test:  # type: ignore[type-var]
        test.get("/v1/api/chat/9", headers={"X-Session-Id": SID})
    attributes = server_attributes(exporter)
    assert attributes["session.id"] == SID
    assert attributes["url.path"] == "/v1/api/chat/9"
    assert attributes["http.route"] == "/v1/api/chat/{cid:int}"


# The example app (examples/litestar_app), in-process and as its docstring runs it


def test_the_example_streams_and_groups_turns_by_session() -> None:
    from examples.fastapi_app.telemetry import tracer_provider
    from examples.litestar_app.app import create_app as create_example

    exporter = InMemorySpanExporter()
    example = create_example(tracer_provider("chat-litestar", exporter))
    with client(example) as test:
        first = test.post("/chat", json={"message": "hello"})
        session_id = first.headers["x-session-id"]
        second = test.post("/chat", json={"message": "more"})  # the cookie carries the session
    with client(example) as test:  # another browser: no cookie
        other = test.post("/chat", json={"message": "new"})
    assert first.headers["content-type"].startswith("text/event-stream")
    assert first.text.replace("\r\n", "\n").endswith("event: done\ndata: {}\n\n")
    assert second.headers["x-session-id"] == session_id
    assert 'data: "2: "' in second.text
    spans = exporter.get_finished_spans()
    assert [span.name for span in spans][:4] == ["fake-llm", "chat-turn", "fake-llm", "chat-turn"]
    for span in spans[:4]:
        assert (span.attributes or {})["session.id"] == session_id
        assert (span.attributes or {})["http.route"] == "/chat"
    assert other.headers["x-session-id"] != session_id
    assert 'data: "1: "' in other.text


def test_the_example_runs_as_documented(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "PORT": str(port)}
    with (
        log.open("w") as out,
        running(["examples.litestar_app.app"], port, env=env, log=out) as url,
    ):
        first = httpx.post(f"{url}/chat", json={"message": "hello"})
        session_id = first.headers["x-session-id"]
        again = {"X-Session-Id": session_id}
        second = httpx.post(f"{url}/chat", json={"message": "again"}, headers=again)
    assert first.text.replace("\r\n", "\n").startswith('data: "Turn "\n\ndata: "1: "')
    assert second.headers["x-session-id"] == session_id
    assert 'data: "2: "' in second.text
    # Each turn's CHAIN and LLM spans, printed by the console exporter, are in its session.
    assert log.read_text().count(f'"session.id": "{session_id}"') == 4


# Under uvicorn: the app below, served from this module.


@get("/turn/{conversation_id:str}")
async def turn() -> dict[str, str | None]:
    before = current_session()
    await asyncio.sleep(0.005)
    return turn_answer(before)


served = Litestar(
    route_handlers=[Router("/api", route_handlers=[turn]), stream],
    plugins=[SessionPlugin()],
    openapi_config=None,
    logging_config=None,
)


@pytest.mark.anyio
async def test_uvicorn_concurrent_requests_each_see_their_own_id() -> None:
    port = free_port()
    command = ["uvicorn", "tests.test_litestar:served", "--host", "127.0.0.1", "--port", str(port)]
    with running([*command, "--log-level", "warning"], port) as url:
        route = "/api/turn/{conversation_id:str}"
        async with concurrent_turns(url, "/api/turn/", route) as (http, _):
            streamed = await http.get("/stream", headers={"X-Session-Id": SID})
            missing = await http.get("/nowhere", headers={"X-Session-Id": SID})
    assert streamed.text == f"0:{SID}\n1:{SID}\n2:{SID}\n"
    assert (missing.status_code, missing.headers.get_list("x-session-id")) == (404, [SID])
