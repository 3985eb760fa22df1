"""The Falcon adapter around ``falcon.App`` (WSGI) and ``falcon.asgi.App`` (ASGI), driven through
``falcon.testing``'s ``TestClient``, its request simulation, gunicorn and uvicorn."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import falcon
import falcon.asgi
import falcon.testing
import pytest
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware as AsgiOtel
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as WsgiOtel
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from session_mw import current_session
from session_mw._options import Options
from session_mw.falcon import SessionMiddleware
from tests.frameworks import SID, drive, seen, server_attributes, turn_answer
from tests.servers import concurrent_turns, free_port, gunicorn, running


def chunks() -> Iterator[bytes]:
    for n in range(3):
        opened = current_session()
        yield f"{n}:{None if opened is None else opened.id}\n".encode()


class Chat:
    def on_get(self, req: falcon.Request, resp: falcon.Response, cid: int) -> None:
        resp.media = {**seen(), "template": req.uri_template}

    on_post = on_get


class Stream:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = chunks()


class Failing:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise RuntimeError("boom")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPForbidden(title="no")


class Watcher:
    """A Falcon middleware component: what it sees of the session."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, object]] = []

    def note(self, step: str) -> None:
        opened = current_session()
        route = None if opened is None else opened.attributes.get("http.route")
        self.seen.append((step, None if opened is None else opened.id, route))

    def process_request(self, req: Any, resp: Any) -> None:
        self.note("request")

    def process_response(self, req: Any, resp: Any, resource: Any, succeeded: bool) -> None:
        self.note("response")

    async def process_request_async(self, req: Any, resp: Any) -> None:
        self.note("request")

    async def process_response_async(
        self, req: Any, resp: Any, resource: Any, succeeded: bool
    ) -> None:
        self.note("response")


def wsgi_app(watcher: Watcher | None = None, **options: Any) -> SessionMiddleware:
    app = falcon.App(middleware=[watcher] if watcher else [])
    app.add_route("/api/chat/{cid:int}", Chat())
    app.add_route("/stream", Stream())
    app.add_route("/boom", Failing())
    return SessionMiddleware(app, **options)


# ASGI


class AsyncChat:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, cid: int) -> None:
        resp.media = {**seen(), "template": req.uri_template}

    async def on_websocket(
        self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket, cid: int
    ) -> None:
        await ws.accept()
        await ws.send_media(seen())
        await ws.receive_text()  # until the client has read it


class AsyncStream:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        async def produce() -> AsyncIterator[bytes]:
            for chunk in chunks():
                await asyncio.sleep(0)
                yield chunk

        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = produce()

    async def on_get_events(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        async def events() -> AsyncIterator[falcon.asgi.SSEvent]:
            for _ in range(2):
                await asyncio.sleep(0)
                yield falcon.asgi.SSEvent(data=str(seen()["id"]).encode())

        resp.sse = events()


class AsyncFailing:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        raise RuntimeError("boom")

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        raise falcon.HTTPForbidden(title="no")


def asgi_app(watcher: Watcher | None = None, **options: Any) -> SessionMiddleware:
    app = falcon.asgi.App(middleware=[watcher] if watcher else [])
    app.add_route("/api/chat/{cid:int}", AsyncChat())
    app.add_route("/stream", AsyncStream())
    app.add_route("/events", AsyncStream(), suffix="events")
    app.add_route("/boom", AsyncFailing())
    return SessionMiddleware(app, **options)


both = pytest.mark.parametrize("build", [wsgi_app, asgi_app], ids=["wsgi", "asgi"])


def falcon_app(wrapped: Any) -> Any:
    """The Falcon app inside the middleware: the WSGI one's ``wsgi_app``, the ASGI one's ``app``."""
    return getattr(wrapped, "wsgi_app", None) or wrapped.app


class Client:
    """Falcon's own test client: ``TestClient`` for a WSGI app, ``ASGIConductor`` (in an event
    loop of its own) for an ASGI one. Falcon's ``TestClient`` of an ASGI app on Python 3.10
    runs it in the default event loop and leaves that open, for a later ``asyncio.run()`` to
    orphan (a ResourceWarning in whichever test collects it)."""

    def __init__(self, app: SessionMiddleware) -> None:
        self.app = app

    def simulate_request(self, method: str, path: str, **kwargs: Any) -> falcon.testing.Result:
        if not asyncio.iscoroutinefunction(self.app.__call__):
            return falcon.testing.TestClient(self.app).simulate_request(method, path, **kwargs)

        async def simulate() -> falcon.testing.Result:
            async with falcon.testing.ASGIConductor(self.app) as conductor:
                result: falcon.testing.Result = await conductor.simulate_request(
                    method, path, **kwargs
                )
            return result

        return asyncio.run(simulate())

    def simulate_get(self, path: str, **kwargs: Any) -> falcon.testing.Result:
        return self.simulate_request("GET", path, **kwargs)

    def simulate_post(self, path: str, **kwargs: Any) -> falcon.testing.Result:
        return self.simulate_request("POST", path, **kwargs)

    def simulate_delete(self, path: str, **kwargs: Any) -> falcon.testing.Result:
        return self.simulate_request("DELETE", path, **kwargs)


@both
def test_responders_see_the_session_and_falcons_uri_template(build: Any) -> None:
    response = Client(build()).simulate_get("/api/chat/7", headers={"X-Session-Id": SID})
    assert response.headers["x-session-id"] == SID
    assert response.json == {
        "id": SID,
        "attributes": {
            "url.path": "/api/chat/7",
            "http.request.method": "GET",
            "http.route": "/api/chat/{cid:int}",
        },
        "otel": SID,
        "template": "/api/chat/{cid:int}",  # what Falcon gives req.uri_template
    }


@both
def test_the_path_parameter_is_read_with_falcons_converters(build: Any) -> None:
    test = Client(build(path_param="cid"))
    response = test.simulate_get("/api/chat/0042", headers={"X-Session-Id": SID})
    assert (response.json["id"], response.headers["x-session-id"]) == ("42", "42")
    assert test.simulate_get("/stream", headers={"X-Session-Id": SID}).text.startswith(f"0:{SID}")


@both
def test_falcon_middleware_runs_inside_the_session_with_the_route_known(build: Any) -> None:
    watcher = Watcher()
    Client(build(watcher)).simulate_get("/api/chat/7", headers={"X-Session-Id": SID})
    route = "/api/chat/{cid:int}"
    assert watcher.seen == [("request", SID, route), ("response", SID, route)]


@both
def test_error_responses_carry_the_header(build: Any) -> None:
    test = Client(build())
    missing = test.simulate_get("/nowhere", headers={"X-Session-Id": SID})
    assert (missing.status_code, missing.headers["x-session-id"]) == (404, SID)
    forbidden = test.simulate_post("/boom", headers={"X-Session-Id": SID})
    assert (forbidden.status_code, forbidden.headers["x-session-id"]) == (403, SID)
    failed = test.simulate_get("/boom", headers={"X-Session-Id": SID})  # Falcon's own 500
    assert (failed.status_code, failed.headers["x-session-id"]) == (500, SID)


@both
def test_a_method_the_route_lacks_still_names_the_route(build: Any) -> None:
    watcher = Watcher()
    response = Client(build(watcher)).simulate_delete("/api/chat/7")
    assert response.status_code == 405
    assert watcher.seen[0][2] == "/api/chat/{cid:int}"


@both
def test_streamed_bodies_are_produced_inside_the_session(build: Any) -> None:
    response = Client(build()).simulate_get("/stream", headers={"X-Session-Id": SID})
    assert response.text == f"0:{SID}\n1:{SID}\n2:{SID}\n"


@both
def test_a_trailing_slash_routes_as_falcon_routes_it(build: Any) -> None:
    app = build(path_param="cid")
    plain = Client(app).simulate_get("/api/chat/5/", headers={"X-Session-Id": SID})
    assert (plain.status_code, plain.headers["x-session-id"]) == (404, SID)
    # Read on each request, as Falcon reads it.
    falcon_app(app).req_options.strip_url_path_trailing_slash = True
    stripped = Client(app).simulate_get("/api/chat/5/", headers={"X-Session-Id": SID})
    assert (stripped.status_code, stripped.json["id"]) == (200, "5")


def test_the_wrapper_is_a_wsgi_or_an_asgi_app_as_the_wrapped_one() -> None:
    assert not asyncio.iscoroutinefunction(wsgi_app().__call__)
    assert asyncio.iscoroutinefunction(asgi_app().__call__)
    assert isinstance(wsgi_app(), SessionMiddleware)
    wrapped = asgi_app()
    assert isinstance(wrapped, SessionMiddleware)
    again = type(wrapped)(falcon_app(wrapped))  # the kind itself, as a subclass would construct it
    assert type(again) is type(wrapped)


def test_path_param_without_falcons_router_says_so() -> None:
    app = falcon.App()
    del app._router  # as if a Falcon release kept its router elsewhere
    with pytest.raises(ValueError, match="cannot see the routes"):
        SessionMiddleware(app, path_param="cid")
    SessionMiddleware(app)  # sessions without http.route, as for any WSGI app


class PickyRouter(falcon.routing.CompiledRouter):
    def find(self, uri: str, req: Any = None) -> Any:
        if req is None:  # session-mw asks without a request; Falcon with one
            raise RuntimeError("a custom router")
        return super().find(uri, req)


@pytest.mark.parametrize("kind", [falcon.App, falcon.asgi.App], ids=["wsgi", "asgi"])
def test_a_failing_match_loses_the_route_only(kind: Any) -> None:
    app = kind(router=PickyRouter())
    app.add_route("/api/chat/{cid:int}", Chat() if kind is falcon.App else AsyncChat())
    response = Client(SessionMiddleware(app)).simulate_get(
        "/api/chat/1", headers={"X-Session-Id": SID}
    )
    assert response.status_code == 200
    assert response.json["attributes"] == {"url.path": "/api/chat/1", "http.request.method": "GET"}


# WSGI bodies: read, unread, closed in any order


def environ(path: str, **headers: str) -> dict[str, Any]:
    return falcon.testing.create_environ(path, headers=headers)


def test_wsgi_nothing_stays_attached_when_call_returns_and_closing_closes_the_stream() -> None:
    app = wsgi_app()
    start_response = falcon.testing.StartResponseMock()
    body: Any = app(environ("/stream", **{"X-Session-Id": SID}), start_response)
    assert current_session() is None  # not attached to the caller's context
    first = next(iter(body))
    assert first == f"0:{SID}\n".encode()
    assert current_session() is None
    body.close()  # unread to the end: closing closes the app's stream
    assert list(body) == []
    unread: Any = app(environ("/stream"), falcon.testing.StartResponseMock())
    unread.close()
    assert list(unread) == []  # a closed generator yields nothing more
    plain: Any = app(environ("/api/chat/1"), falcon.testing.StartResponseMock())
    assert type(plain) is list  # Falcon's body is a list, handed over as is
    assert current_session() is None


def test_wsgi_a_failing_app_closes_its_session() -> None:
    def explode(environ: Any, start_response: Any) -> Any:
        assert current_session() is not None
        raise OSError("disk full")

    app: Any = wsgi_app()
    app.wsgi_app = explode  # beneath the wrapper: an error Falcon itself does not catch
    with pytest.raises(OSError, match="disk full"):
        app(environ("/stream"), falcon.testing.StartResponseMock())


def test_wsgi_rejects_with_400() -> None:
    response = Client(wsgi_app(on_invalid="reject")).simulate_get(
        "/stream", headers={"X-Session-Id": "a b"}
    )
    assert response.status_code == 400
    assert "Invalid X-Session-Id request header" in response.text
    assert "x-session-id" not in response.headers


@pytest.mark.parametrize("session_outermost", [True, False])
def test_wsgi_server_span_gets_the_session_and_the_route(
    session_outermost: bool, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = falcon.App()
    app.add_route("/api/chat/{cid:int}", Chat())
    wrapped: Any = SessionMiddleware(app)
    if session_outermost:
        # The server span starts inside the session, as OTel's Falcon instrumentation starts it.
        wrapped.wsgi_app = WsgiOtel(app, tracer_provider=provider)
    else:
        wrapped = WsgiOtel(wrapped, tracer_provider=provider)
    falcon.testing.TestClient(wrapped).simulate_get("/api/chat/9", headers={"X-Session-Id": SID})
    attributes = server_attributes(exporter)
    assert attributes["session.id"] == SID
    assert attributes["url.path"] == "/api/chat/9"
    assert attributes["http.route"] == "/api/chat/{cid:int}"


# ASGI: WebSockets, server-sent events, disconnects


def test_asgi_websocket_accept_carries_the_id_and_the_responder_sees_the_session() -> None:
    async def talk() -> tuple[Any, Any]:
        async with (
            falcon.testing.ASGIConductor(asgi_app()) as conductor,
            conductor.simulate_ws("/api/chat/3", headers={"X-Session-Id": SID}) as socket,
        ):
            body = await socket.receive_json()
            await socket.send_text("bye")
            accepted = socket.headers
        return body, accepted

    body, accepted = asyncio.run(talk())
    assert body["id"] == SID
    assert body["attributes"]["http.route"] == "/api/chat/{cid:int}"
    assert (b"x-session-id", SID.encode()) in accepted


def test_asgi_server_sent_events_are_produced_inside_the_session() -> None:
    # Raw ASGI: Falcon's simulated client says it went away after the first event.
    sent = asyncio.run(drive(asgi_app(), "/events", [(b"x-session-id", SID.encode())]))
    assert (b"x-session-id", SID.encode()) in sent[0]["headers"]
    body = b"".join(message.get("body", b"") for message in sent[1:])
    assert body.count(f"data: {SID}".encode()) == 2


def test_asgi_a_client_disconnecting_mid_stream_closes_the_session() -> None:
    with pytest.raises(OSError, match="client went away"):
        asyncio.run(
            drive(asgi_app(), "/stream", [(b"x-session-id", SID.encode())], send_fails=True)
        )


def test_asgi_reject_answers_400_or_closes_the_websocket() -> None:
    app = asgi_app(on_invalid="reject")
    bad = [(b"x-session-id", b"a b")]
    http = asyncio.run(drive(app, "/stream", bad))
    assert (http[0]["status"], b"Invalid X-Session-Id" in http[1]["body"]) == (400, True)
    socket = asyncio.run(drive(app, "/api/chat/1", bad, "websocket"))
    assert (socket[0]["type"], socket[0]["code"]) == ("websocket.close", 1008)
    denial = asyncio.run(drive(app, "/api/chat/1", bad, "websocket", denial=True))
    assert (denial[0]["type"], denial[0]["status"]) == ("websocket.http.response.start", 400)


def test_asgi_lifespan_passes_through() -> None:
    started: list[object] = []

    class Startup:
        async def process_startup(self, scope: Any, event: Any) -> None:
            started.append(current_session())

    app = falcon.asgi.App(middleware=[Startup()])

    async def run() -> None:
        async with falcon.testing.ASGIConductor(SessionMiddleware(app)):
            pass

    asyncio.run(run())
    assert started == [None]


def test_asgi_server_span_gets_the_session_and_the_route(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    wrapped = AsgiOtel(asgi_app(), tracer_provider=provider)
    asyncio.run(drive(wrapped, "/api/chat/9", [(b"x-session-id", SID.encode())]))
    attributes = server_attributes(exporter)
    assert attributes["session.id"] == SID
    assert attributes["http.route"] == "/api/chat/{cid:int}"


def test_every_option_is_documented_in_help() -> None:
    doc = SessionMiddleware.__doc__ or ""
    for field in dataclasses.fields(Options):
        assert f":param {field.name}:" in doc, field.name


# Under real servers: gunicorn's threaded worker (WSGI) and uvicorn (ASGI), served from here.


class Turn:
    def on_get(self, req: falcon.Request, resp: falcon.Response, conversation_id: str) -> None:
        before = current_session()
        time.sleep(0.005)  # while other threads of the worker serve other sessions
        resp.media = turn_answer(before)


class AsyncTurn:
    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, conversation_id: str
    ) -> None:
        before = current_session()
        await asyncio.sleep(0.005)
        resp.media = turn_answer(before)


served_wsgi: Any = wsgi_app()
served_wsgi.wsgi_app.add_route("/turn/{conversation_id}", Turn())
served_asgi: Any = asgi_app()
served_asgi.app.add_route("/turn/{conversation_id}", AsyncTurn())


async def turns(url: str) -> None:
    async with concurrent_turns(url, "/turn/", "/turn/{conversation_id}") as (http, _):
        streamed = await http.get("/stream", headers={"X-Session-Id": SID})
        failed = await http.get("/boom", headers={"X-Session-Id": SID})
    assert streamed.text == f"0:{SID}\n1:{SID}\n2:{SID}\n"
    assert (failed.status_code, failed.headers.get_list("x-session-id")) == (500, [SID])


@pytest.mark.anyio
async def test_gunicorn_gthread_worker() -> None:
    port = free_port()
    with running(gunicorn("tests.test_falcon:served_wsgi", port), port) as url:
        await turns(url)


@pytest.mark.anyio
async def test_uvicorn() -> None:
    port = free_port()
    command = ["uvicorn", "tests.test_falcon:served_asgi", "--host", "127.0.0.1"]
    with running([*command, "--port", str(port), "--log-level", "warning"], port) as url:
        await turns(url)
