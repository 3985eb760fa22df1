"""The Quart extension, driven through Quart's test client, raw ASGI and uvicorn; and the
frameworks benchmark, which needs Quart too."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from quart import Blueprint, Quart, Response, jsonify, websocket

from session_mw import current_session
from session_mw._options import Options
from session_mw.quart import SessionMiddleware
from tests.frameworks import SID, drive, seen, server_attributes, turn_answer
from tests.servers import concurrent_turns, free_port, running

# Quart needs Flask >= 3, above the declared Flask floor: the lowest run leaves this module out.
pytestmark = [pytest.mark.anyio, pytest.mark.above_floors]


def create_app(extension: SessionMiddleware | None = None, **config: Any) -> Quart:
    app = Quart(__name__)
    app.config.update(config)

    @app.get("/whoami")
    async def whoami() -> Any:
        return jsonify(seen())

    chat = Blueprint("chat", __name__, url_prefix="/api")
    turns = Blueprint("turns", __name__, url_prefix="/turns")

    @turns.post("/<int:cid>")
    async def turn(cid: int) -> Any:
        return jsonify(seen())

    chat.register_blueprint(turns)
    app.register_blueprint(chat)

    @app.get("/boom")
    async def boom() -> Any:
        raise RuntimeError("boom")

    @app.get("/stream")
    async def stream() -> Any:
        async def chunks() -> AsyncIterator[bytes]:
            for n in range(3):
                await asyncio.sleep(0)
                opened = current_session()
                yield f"{n}:{None if opened is None else opened.id}\n".encode()

        return chunks(), 200, {"Content-Type": "text/plain"}

    @app.websocket("/ws/<room>")
    async def room(room: str) -> None:
        await websocket.accept()
        await websocket.send_json(seen())

    (extension or SessionMiddleware()).init_app(app)
    return app


async def fetch(app: Quart, path: str, method: str = "GET", **kwargs: Any) -> Response:
    response = await app.test_client(use_cookies=False).open(path, method=method, **kwargs)
    await response.get_data()
    return response


async def test_views_see_the_session_and_the_id_is_echoed() -> None:
    response = await fetch(create_app(), "/whoami", headers={"X-Session-Id": SID})
    assert response.headers.getlist("X-Session-Id") == [SID]
    assert await response.get_json() == {
        "id": SID,
        "attributes": {
            "url.path": "/whoami",
            "http.request.method": "GET",
            "http.route": "/whoami",
        },
        "otel": SID,
    }


async def test_nested_blueprint_prefixes_are_in_the_route() -> None:
    response = await fetch(create_app(), "/api/turns/7", method="POST")
    body = await response.get_json()
    assert body["attributes"]["http.route"] == "/api/turns/<int:cid>"
    assert uuid.UUID(response.headers["X-Session-Id"]).version == 4


async def test_the_path_parameter_is_read_from_quarts_rule() -> None:
    app = create_app(SESSION_MW_PATH_PARAM="cid")
    response = await fetch(app, "/api/turns/0042", method="POST", headers={"X-Session-Id": SID})
    assert (await response.get_json())["id"] == "42"  # Quart's int, as text
    assert response.headers.getlist("X-Session-Id") == ["42"]


async def test_no_route_on_404_and_405_but_the_header() -> None:
    app = create_app()
    captured: list[dict[str, Any]] = []

    @app.errorhandler(404)
    async def not_found(error: Exception) -> Any:
        captured.append(dict(current_session().attributes))  # type: ignore[union-attr]
        return "nope", 404

    response = await fetch(app, "/missing", headers={"X-Session-Id": SID})
    assert (response.status_code, response.headers.getlist("X-Session-Id")) == (404, [SID])
    assert captured == [{"url.path": "/missing", "http.request.method": "GET"}]
    wrong = await fetch(app, "/whoami", method="DELETE", headers={"X-Session-Id": SID})
    assert (wrong.status_code, wrong.headers.getlist("X-Session-Id")) == (405, [SID])


async def test_the_route_is_known_before_any_hook_runs() -> None:
    app = create_app()
    captured: list[object] = []

    @app.before_request
    async def gate() -> Any:
        captured.append(current_session().attributes.get("http.route"))  # type: ignore[union-attr]
        return "closed", 503

    assert (await fetch(app, "/api/turns/3", method="POST")).status_code == 503
    assert captured == ["/api/turns/<int:cid>"]


async def test_quarts_own_500_carries_the_header() -> None:
    app = create_app()
    response = await fetch(app, "/boom", headers={"X-Session-Id": SID})
    assert (response.status_code, response.headers.getlist("X-Session-Id")) == (500, [SID])


async def test_streamed_responses_see_the_session() -> None:
    response = await fetch(create_app(), "/stream", headers={"X-Session-Id": SID})
    assert await response.get_data(as_text=True) == f"0:{SID}\n1:{SID}\n2:{SID}\n"


async def test_background_tasks_see_the_session() -> None:
    app = create_app()
    ran: list[str | None] = []

    @app.get("/later")
    async def later() -> str:
        async def note() -> None:
            opened = current_session()
            ran.append(None if opened is None else opened.id)

        app.add_background_task(note)
        return "ok"

    async with app.test_app():  # background tasks are awaited when the app shuts down
        await fetch(app, "/later", headers={"X-Session-Id": SID})
    assert ran == [SID]


async def test_the_websocket_handler_sees_the_session() -> None:
    client = create_app().test_client()
    async with client.websocket("/ws/lobby", headers={"X-Session-Id": SID}) as socket:
        body = await socket.receive_json()
    assert body["id"] == SID
    assert body["attributes"]["http.route"] == "/ws/<room>"


async def test_websocket_accept_carries_the_id() -> None:
    sent = await drive(create_app(), "/ws/lobby", [(b"x-session-id", SID.encode())], "websocket")
    assert sent[0]["type"] == "websocket.accept"
    assert (b"x-session-id", SID.encode()) in sent[0]["headers"]


async def test_websocket_reject_closes_with_policy_violation() -> None:
    app = create_app(SESSION_MW_ON_INVALID="reject")
    sent = await drive(app, "/ws/lobby", [(b"x-session-id", b"bad value")], "websocket")
    assert (sent[0]["type"], sent[0]["code"]) == ("websocket.close", 1008)
    assert "X-Session-Id" in sent[0]["reason"]
    bad = [(b"x-session-id", b"bad value")]
    denied = await drive(app, "/ws/lobby", bad, "websocket", denial=True)
    assert [(message["type"], message.get("status")) for message in denied] == [
        ("websocket.http.response.start", 400),
        ("websocket.http.response.body", None),
    ]


async def test_the_route_under_a_root_path_as_quart_routes_it() -> None:
    app = create_app()
    inside = await drive(app, "/chat/whoami", [], root_path="/chat")
    assert b'"http.route":"/whoami"' in b"".join(m.get("body", b"") for m in inside[1:])
    outside = await drive(app, "/whoami", [(b"x-session-id", SID.encode())], root_path="/chat")
    assert outside[0]["status"] == 404  # as Quart: a path outside root_path matches no rule
    assert (b"x-session-id", SID.encode()) in outside[0]["headers"]


async def test_headers_as_any_iterable() -> None:
    # ASGI allows iterables of iterables: read by the extension, and by Quart after it.
    headers = iter([iter((b"host", b"localhost")), iter((b"x-session-id", SID.encode()))])
    sent = await drive(create_app(), "/whoami", [], scope_headers=headers)
    assert (b"x-session-id", SID.encode()) in sent[0]["headers"]
    assert SID.encode() in sent[1]["body"]


async def test_a_failing_match_loses_the_route_only(monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app()
    quarts_own = app.create_url_adapter

    def failing_for_session_mw(request: Any) -> Any:
        if request is not None and not hasattr(request, "headers"):  # session-mw's, not Quart's
            raise RuntimeError("a custom URL map")
        return quarts_own(request)

    monkeypatch.setattr(app, "create_url_adapter", failing_for_session_mw)
    response = await fetch(app, "/whoami", headers={"X-Session-Id": SID})
    assert response.status_code == 200
    assert (await response.get_json())["attributes"] == {
        "url.path": "/whoami",
        "http.request.method": "GET",
    }


async def test_reject_answers_400_without_calling_the_app() -> None:
    app = create_app(SESSION_MW_ON_INVALID="reject")
    sent = await drive(app, "/whoami", [(b"x-session-id", b"a b")])
    assert sent[0]["status"] == 400
    assert b"Invalid X-Session-Id request header" in sent[1]["body"]


async def test_a_client_disconnecting_mid_stream_closes_the_session() -> None:
    with pytest.raises(Exception) as raised:  # noqa: PT011  # drive() checks what is current
        await drive(create_app(), "/stream", [(b"x-session-id", SID.encode())], send_fails=True)
    assert disconnected(raised.value), repr(raised.value)


def disconnected(error: BaseException) -> bool:
    """Whether ``error`` is the failed send: Quart before 0.23 lets the server's OSError through,
    0.23 raises its ClientDisconnectedError instead, from a task group (an ExceptionGroup)."""
    if isinstance(error, OSError):
        return "client went away" in str(error)
    if type(error).__name__ == "ClientDisconnectedError":
        return True
    return any(disconnected(inner) for inner in getattr(error, "exceptions", ()))


async def test_lifespan_passes_through() -> None:
    events: list[str] = []
    app = create_app()

    @app.before_serving
    async def started() -> None:
        events.append("startup" if current_session() is None else "in a session")

    async with app.test_app():
        assert events == ["startup"]


async def test_the_server_span_gets_the_session_and_the_route(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = create_app()
    await drive(
        OpenTelemetryMiddleware(app, tracer_provider=provider),
        "/api/turns/9",
        [(b"x-session-id", SID.encode())],
        method="POST",
    )
    attributes = server_attributes(exporter)
    assert attributes["session.id"] == SID
    assert attributes["url.path"] == "/api/turns/9"
    assert attributes["http.route"] == "/api/turns/<int:cid>"


# The extension's API, as Flask's


async def test_config_keys_are_filled_and_read() -> None:
    app = create_app(SESSION_MW_HEADER_NAME="X-Conversation-Id", SESSION_MW_ON_INVALID="reject")
    assert app.config["SESSION_MW_GENERATOR"] is None
    assert app.config["SESSION_MW_ISSUE_IDS"] is True
    response = await fetch(app, "/whoami", headers={"X-Conversation-Id": SID})
    assert (await response.get_json())["id"] == SID
    assert (await fetch(app, "/whoami", headers={"X-Conversation-Id": "b a d"})).status_code == 400


async def test_constructor_options_are_defaults_and_config_wins() -> None:
    extension = SessionMiddleware(header_name="X-From-Constructor")
    plain = create_app(extension)
    configured = create_app(extension, SESSION_MW_HEADER_NAME="X-From-Config")
    assert plain.config["SESSION_MW_HEADER_NAME"] == "X-From-Constructor"
    response = await fetch(plain, "/whoami", headers={"X-From-Constructor": SID})
    assert (await response.get_json())["id"] == SID
    response = await fetch(configured, "/whoami", headers={"X-From-Config": SID})
    assert (await response.get_json())["id"] == SID


async def test_one_extension_serves_several_apps_from_a_factory() -> None:
    extension = SessionMiddleware()
    first = create_app(extension, SESSION_MW_HEADER_NAME="X-First")
    second = create_app(extension, SESSION_MW_HEADER_NAME="X-Second")
    assert not hasattr(extension, "app")
    one = await fetch(first, "/whoami", headers={"X-First": "1"})
    two = await fetch(second, "/whoami", headers={"X-Second": "2"})
    assert [(await one.get_json())["id"], (await two.get_json())["id"]] == ["1", "2"]
    assert "X-Second" not in (await fetch(first, "/whoami")).headers
    assert first.extensions["session_mw"] is not second.extensions["session_mw"]
    assert first.extensions["session_mw"] is first.asgi_app


async def test_direct_construction_with_app() -> None:
    app = Quart(__name__)

    @app.get("/")
    async def index() -> str:
        return str(seen()["id"])

    SessionMiddleware(app)
    response = await fetch(app, "/", headers={"X-Session-Id": SID})
    assert await response.get_data(as_text=True) == SID


def test_registering_twice_says_what_to_do() -> None:
    app = create_app()
    with pytest.raises(RuntimeError, match="once per app"):
        SessionMiddleware().init_app(app)


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({"SESSION_MW_HEADER_NAME": "X Session"}, ValueError, "not a valid HTTP header name"),
        ({"SESSION_MW_ISSUE_IDS": "false"}, TypeError, "SESSION_MW_ISSUE_IDS='false' is not a"),
        ({"SESSION_MW_HEADR_NAME": "X"}, ValueError, "did you mean 'SESSION_MW_HEADER_NAME'"),
    ],
)
def test_bad_config_says_what_to_change(
    config: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        create_app(**config)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        SessionMiddleware(headr_name="X")  # type: ignore[call-arg]


async def test_a_view_that_starts_a_new_conversation_keeps_its_id() -> None:
    app = create_app()

    @app.post("/conversations")
    async def new_conversation() -> Any:
        return jsonify(seen()), 201, {"X-Session-Id": "conv-from-the-app"}

    for headers in ({"X-Session-Id": SID}, {}, {"Origin": "http://localhost:3000"}):
        response = await fetch(app, "/conversations", method="POST", headers=headers)
        assert response.status_code == 201
        assert response.headers.getlist("X-Session-Id") == ["conv-from-the-app"]
    assert response.headers["Access-Control-Expose-Headers"] == "X-Session-Id"


def test_every_setting_is_documented_in_help() -> None:
    doc = SessionMiddleware.__doc__ or ""
    for field in dataclasses.fields(Options):
        assert f":param SESSION_MW_{field.name.upper()}:" in doc, field.name


# Under uvicorn: the app below, served from this module.

served = create_app()


@served.get("/turn/<conversation_id>")
async def turn(conversation_id: str) -> dict[str, str | None]:
    before = current_session()
    await asyncio.sleep(0.005)
    return turn_answer(before)


async def test_uvicorn_concurrent_requests_each_see_their_own_id() -> None:
    port = free_port()
    command = ["uvicorn", "tests.test_quart:served", "--host", "127.0.0.1", "--port", str(port)]
    with running([*command, "--log-level", "warning"], port) as url:
        async with concurrent_turns(url, "/turn/", "/turn/<conversation_id>") as (http, _):
            streamed = await http.get("/stream", headers={"X-Session-Id": SID})
            failed = await http.get("/boom", headers={"X-Session-Id": SID})
    assert streamed.text == f"0:{SID}\n1:{SID}\n2:{SID}\n"
    assert (failed.status_code, failed.headers.get_list("x-session-id")) == (500, [SID])


def test_the_frameworks_benchmark_measures_answered_requests() -> None:
    # benchmarks/frameworks_overhead.py times requests that every app must answer 200, with
    # the id where session-mw is in it (Litestar, Quart and Falcon): checked as it starts.
    from benchmarks import frameworks_overhead, inprocess

    try:
        frameworks_overhead.check()
        for variants, baseline, reference in frameworks_overhead.suites().values():
            assert {baseline, reference} <= set(variants)
            for run in variants.values():
                assert run(2) > 0
    finally:  # the benchmarks keep one event loop for all their variants: close it here
        while inprocess._loops:
            inprocess._loops.pop().close()
