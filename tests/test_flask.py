"""The Flask extension, driven through Flask's test client."""

from __future__ import annotations

import gc
import uuid
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Blueprint, Flask, Request, Response, jsonify, request, stream_with_context
from werkzeug.test import EnvironBuilder

from session_mw import current_session
from session_mw.flask import SessionMiddleware

SID = "chat-42"


def seen() -> dict[str, Any]:
    opened = current_session()
    assert opened is not None
    return {"id": opened.id, "attributes": dict(opened.attributes)}


def create_app(extension: SessionMiddleware | None = None, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)

    @app.get("/whoami")
    def whoami() -> Any:
        return jsonify(seen())

    chat = Blueprint("chat", __name__, url_prefix="/api")

    @chat.post("/chat/<int:cid>")
    def turn(cid: int) -> Any:
        return jsonify(seen())

    app.register_blueprint(chat)

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("boom")

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            for n in range(3):
                opened = current_session()
                yield f"{n}:{None if opened is None else opened.id}\n"

        return Response(chunks())

    @app.get("/stream-ctx")
    def stream_ctx() -> Response:
        def chunks() -> Iterator[str]:
            for n in range(3):
                opened = current_session()
                yield f"{n}:{None if opened is None else opened.id}\n"

        return Response(stream_with_context(chunks()))

    (extension or SessionMiddleware()).init_app(app)
    return app


def fetch(app: Flask, path: str, method: str = "GET", **kwargs: Any) -> Any:
    client = app.test_client()
    response = client.open(path, method=method, **kwargs)
    response.get_data()
    response.close()
    return response


def test_views_see_the_session_and_the_id_is_echoed() -> None:
    response = fetch(create_app(), "/whoami", headers={"X-Session-Id": SID})
    assert response.json["id"] == SID
    assert response.headers.getlist("X-Session-Id") == [SID]
    assert response.json["attributes"] == {
        "url.path": "/whoami",
        "http.request.method": "GET",
        "http.route": "/whoami",
    }


def test_blueprint_prefix_is_in_the_route() -> None:
    response = fetch(create_app(), "/api/chat/7", method="POST")
    assert response.json["attributes"]["http.route"] == "/api/chat/<int:cid>"
    assert uuid.UUID(response.headers["X-Session-Id"]).version == 4


def test_no_route_on_404() -> None:
    app = create_app()
    captured: list[dict[str, Any]] = []

    @app.errorhandler(404)
    def not_found(error: Exception) -> Any:
        captured.append(dict(current_session().attributes))  # type: ignore[union-attr]
        return "nope", 404

    response = fetch(app, "/missing")
    assert response.status_code == 404
    assert "X-Session-Id" in response.headers
    assert captured == [{"url.path": "/missing", "http.request.method": "GET"}]


def test_route_is_recorded_even_when_a_hook_answers_first() -> None:
    app = create_app()
    captured: list[object] = []

    @app.before_request
    def gate() -> Any:
        captured.append(current_session().attributes.get("http.route"))  # type: ignore[union-attr]
        return "closed", 503

    assert fetch(app, "/whoami").status_code == 503
    assert captured == ["/whoami"]


def test_flasks_own_500_carries_the_header() -> None:
    app = create_app()
    response = fetch(app, "/boom", headers={"X-Session-Id": SID})
    assert response.status_code == 500
    assert response.headers.getlist("X-Session-Id") == [SID]
    assert current_session() is None


@pytest.mark.parametrize("path", ["/stream", "/stream-ctx"])
def test_streamed_responses_see_the_session(path: str) -> None:
    response = fetch(create_app(), path, headers={"X-Session-Id": SID})
    assert response.get_data(as_text=True) == f"0:{SID}\n1:{SID}\n2:{SID}\n"


@pytest.mark.parametrize("read", [True, False])
def test_call_on_close_runs_in_the_session(read: bool) -> None:
    # Werkzeug runs a response's call_on_close functions when the server closes the body, after
    # reading it to the end or not: both in the request's session.
    app = create_app()
    closed: list[str | None] = []

    @app.get("/closing")
    def closing() -> Response:
        response = Response("done")
        response.call_on_close(lambda: closed.append(getattr(current_session(), "id", None)))
        return response

    response = app.test_client().get("/closing", headers={"X-Session-Id": SID}, buffered=read)
    assert closed == ([SID] if read else [])  # buffered: read to the end, then closed
    response.close()
    assert closed == [SID]
    assert current_session() is None


def test_the_request_goes_with_its_response() -> None:
    # The session holds Flask's request for the late http.route, in the request's own context:
    # both go with the response, by reference counting alone (no cycle left to the collector).
    app = create_app()
    requests: list[weakref.ref[Request]] = []

    @app.get("/held")
    def held() -> str:
        requests.append(weakref.ref(request._get_current_object()))  # type: ignore[attr-defined]
        return "ok"

    environ = EnvironBuilder("/held", headers=[("X-Session-Id", SID)]).get_environ()
    gc.disable()
    try:
        body: Any = app(environ, lambda *args: lambda data: None)
        assert b"".join(body) == b"ok"
        assert requests[0]() is not None  # held while the response is: the session keeps it
        body.close()
        del body
        assert requests[0]() is None
    finally:
        gc.enable()


def test_config_keys_are_filled_and_read() -> None:
    app = create_app(SESSION_MW_HEADER_NAME="X-Conversation-Id", SESSION_MW_ON_INVALID="reject")
    assert app.config["SESSION_MW_GENERATOR"] is None
    assert app.config["SESSION_MW_VALIDATOR"] is None
    assert fetch(app, "/whoami", headers={"X-Conversation-Id": SID}).json["id"] == SID
    assert fetch(app, "/whoami", headers={"X-Conversation-Id": "b a d"}).status_code == 400


def test_constructor_options_are_defaults_and_config_wins() -> None:
    extension = SessionMiddleware(header_name="X-From-Constructor")
    plain = create_app(extension)
    configured = create_app(extension, SESSION_MW_HEADER_NAME="X-From-Config")
    assert plain.config["SESSION_MW_HEADER_NAME"] == "X-From-Constructor"
    assert fetch(plain, "/whoami", headers={"X-From-Constructor": SID}).json["id"] == SID
    assert fetch(configured, "/whoami", headers={"X-From-Config": SID}).json["id"] == SID


def test_one_extension_serves_several_apps_from_a_factory() -> None:
    extension = SessionMiddleware()
    first = create_app(extension, SESSION_MW_HEADER_NAME="X-First")
    second = create_app(extension, SESSION_MW_HEADER_NAME="X-Second")
    assert not hasattr(extension, "app")
    assert fetch(first, "/whoami", headers={"X-First": "one"}).json["id"] == "one"
    assert fetch(second, "/whoami", headers={"X-Second": "two"}).json["id"] == "two"
    assert "X-Second" not in fetch(first, "/whoami").headers
    assert first.extensions["session_mw"] is not second.extensions["session_mw"]


def test_direct_construction_with_app() -> None:
    app = Flask(__name__)

    @app.get("/")
    def index() -> Any:
        return seen()["id"]

    SessionMiddleware(app)
    assert fetch(app, "/", headers={"X-Session-Id": SID}).get_data(as_text=True) == SID


def test_registering_twice_says_what_to_do() -> None:
    app = create_app()
    with pytest.raises(RuntimeError, match="once per app"):
        SessionMiddleware().init_app(app)


def test_bad_config_says_what_to_change() -> None:
    with pytest.raises(ValueError, match="not a valid HTTP header name"):
        create_app(SESSION_MW_HEADER_NAME="X Session")


def test_a_view_that_starts_a_new_conversation_keeps_its_id() -> None:
    app = create_app()

    @app.post("/conversations")
    def new_conversation() -> Any:
        return jsonify(seen()), 201, {"X-Session-Id": "conv-from-the-app"}

    for headers in ({"X-Session-Id": SID}, {}, {"Origin": "http://localhost:3000"}):
        response = fetch(app, "/conversations", method="POST", headers=headers)
        assert response.status_code == 201
        assert response.headers.getlist("X-Session-Id") == ["conv-from-the-app"]
    assert response.headers["Access-Control-Expose-Headers"] == "X-Session-Id"
