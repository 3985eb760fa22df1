"""Where the id comes from: the route's path parameter, the header, the cookie, a new id.

Every adapter (Starlette, FastAPI, the Flask extension) behaves the same, so most tests run on
each, with a route that has the parameter (also under a prefix) and one that has not.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from fastapi import APIRouter, FastAPI
from flask import Blueprint, Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from session_mw import SessionMiddleware, current_session
from session_mw.flask import SessionMiddleware as FlaskSessionMiddleware
from session_mw.wsgi import SessionMiddleware as WsgiSessionMiddleware
from tests.clients import wsgi_get

SID = "chat-42"
THREAD = "thread-7"


class Answer(NamedTuple):
    status: int
    seen: str  # "<session id> <http.route>", or the 400 body
    ids: list[str]  # every X-Session-Id response header
    cookies: list[str]  # every Set-Cookie response header


def seen() -> str:
    opened = current_session()
    assert opened is not None
    return f"{opened.id} {opened.attributes.get('http.route')}"


def starlette(options: dict[str, Any]) -> Any:
    async def endpoint(request: Request) -> PlainTextResponse:
        response = PlainTextResponse(seen())
        response.set_cookie("theme", "dark")
        return response

    app = Starlette(
        routes=[
            Route("/threads/{thread_id}", endpoint),
            Route("/plain", endpoint),
            Mount("/api", routes=[Route("/v1/threads/{thread_id}", endpoint)]),
        ]
    )
    app.add_middleware(SessionMiddleware, **options)
    return app


def fastapi(options: dict[str, Any]) -> Any:
    app = FastAPI()
    router = APIRouter()

    def endpoint() -> PlainTextResponse:
        response = PlainTextResponse(seen())
        response.set_cookie("theme", "dark")
        return response

    router.add_api_route("/v1/threads/{thread_id}", endpoint)
    app.add_api_route("/threads/{thread_id}", endpoint)
    app.add_api_route("/plain", endpoint)
    app.include_router(router, prefix="/api")
    app.add_middleware(SessionMiddleware, **options)
    return app


def flask(options: dict[str, Any]) -> Any:
    app = Flask(__name__)
    app.config.update({f"SESSION_MW_{name.upper()}": value for name, value in options.items()})

    def endpoint(**params: str) -> Any:
        return seen(), 200, {"Set-Cookie": "theme=dark; Path=/"}

    app.add_url_rule("/threads/<thread_id>", view_func=endpoint)
    app.add_url_rule("/plain", view_func=endpoint, endpoint="plain")
    api = Blueprint("api", __name__, url_prefix="/api")
    api.add_url_rule("/v1/threads/<thread_id>", view_func=endpoint)
    app.register_blueprint(api)
    FlaskSessionMiddleware().init_app(app)
    return app


def fetch(
    app: Any, path: str, headers: dict[str, str] | None = None, https: bool = False
) -> Answer:
    if isinstance(app, Flask):
        base = "https://localhost" if https else "http://localhost"
        response = wsgi_get(app, path, headers=headers or {}, base_url=base)
        return Answer(
            response.status_code,
            response.get_data(as_text=True),
            response.headers.getlist("X-Session-Id"),
            response.headers.getlist("Set-Cookie"),
        )
    base = "https://testserver" if https else "http://testserver"
    reply = TestClient(app, base_url=base).get(path, headers=headers)
    return Answer(
        reply.status_code,
        reply.text,
        reply.headers.get_list("x-session-id"),
        reply.headers.get_list("set-cookie"),
    )


Factory = Callable[[dict[str, Any]], Any]
ADAPTERS = pytest.mark.parametrize("make", [starlette, fastapi, flask])
PATH = {"path_param": "thread_id"}
COOKIE = {"cookie_name": "sid"}


@ADAPTERS
@pytest.mark.parametrize(
    ("path", "route"),
    [("/threads/", "/threads/"), ("/api/v1/threads/", "/api/v1/threads/")],
)
def test_the_path_parameter_is_the_session_and_wins_over_the_header(
    make: Factory, path: str, route: str
) -> None:
    app = make(PATH)
    flask_style = "<thread_id>" if isinstance(app, Flask) else "{thread_id}"
    for headers in ({}, {"X-Session-Id": SID}):  # the URL names the resource: it wins
        answer = fetch(app, path + THREAD, headers)
        assert answer.seen == f"{THREAD} {route}{flask_style}"
        assert answer.ids == [THREAD]


@ADAPTERS
def test_routes_without_the_parameter_fall_back_to_header_cookie_new_id(make: Factory) -> None:
    app = make({**PATH, **COOKIE})
    assert fetch(app, "/plain", {"X-Session-Id": SID}).seen == f"{SID} /plain"
    from_cookie = fetch(app, "/plain", {"Cookie": f"theme=dark; sid={THREAD}"})
    assert from_cookie.seen == f"{THREAD} /plain"
    both = fetch(app, "/plain", {"X-Session-Id": SID, "Cookie": f"sid={THREAD}"})
    assert both.seen.startswith(SID)  # the header before the cookie
    new = fetch(app, "/plain").ids[0]
    assert uuid.UUID(new).version == 4
    assert fetch(app, "/nowhere", {"X-Session-Id": SID}).status == 404


@ADAPTERS
def test_apps_without_either_option_behave_as_before(
    make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    early: list[object] = []  # the path parameter's match before the app: must not run
    monkeypatch.setattr("session_mw.asgi.match_route", lambda *args: early.append(args))
    monkeypatch.setattr("session_mw.wsgi.match_rule", lambda *args: early.append(args))
    app = make({})
    path = f"/threads/{THREAD}"
    route = "/threads/<thread_id>" if isinstance(app, Flask) else "/threads/{thread_id}"
    assert fetch(app, path, {"X-Session-Id": SID}).seen == f"{SID} {route}"
    answer = fetch(app, path, {"Cookie": f"sid={THREAD}; session_id={THREAD}"})
    (new,) = answer.ids  # neither the path nor a cookie: a new id, and no cookie of ours
    assert uuid.UUID(new).version == 4
    assert [cookie.split(";")[0] for cookie in answer.cookies] == ["theme=dark"]
    assert early == []


@ADAPTERS
@pytest.mark.parametrize(
    "value",
    ["a%20b", "caf%C3%A9", "%E2%80%AE", "x" * 129, "a%0Ab"],
    ids=["space", "non-ascii", "bidi", "oversized", "newline"],
)
def test_an_invalid_path_value_is_replaced_never_echoed_nor_logged(
    make: Factory, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make({**PATH, **COOKIE})
    with caplog.at_level(logging.WARNING, logger="session_mw"):
        answer = fetch(app, f"/threads/{value}", {"X-Session-Id": SID})
    assert answer.status == 200
    (new,) = answer.ids
    assert uuid.UUID(new).version == 4  # neither the path value nor the header
    assert all(value not in cookie for cookie in answer.cookies)
    assert "thread_id path parameter" in caplog.text
    assert value not in caplog.text
    assert "caf" not in caplog.text


@ADAPTERS
def test_an_invalid_path_value_is_rejected_when_asked(make: Factory) -> None:
    answer = fetch(make({**PATH, "on_invalid": "reject"}), "/threads/a%20b")
    assert answer.status == 400
    assert "thread_id path parameter" in answer.seen
    assert answer.ids == []


@ADAPTERS
def test_a_converted_parameter_is_used_as_text(make: Factory) -> None:
    app = make({"path_param": "n"})
    if isinstance(app, Flask):
        app.add_url_rule("/n/<int:n>", view_func=lambda n: seen())
    else:
        app.router.routes.append(Route("/n/{n:int}", lambda request: PlainTextResponse(seen())))
    assert fetch(app, "/n/0042").seen.startswith("42 ")


@ADAPTERS
def test_the_cookie_is_set_beside_the_apps_cookies(make: Factory) -> None:
    app = make(COOKIE)
    answer = fetch(app, "/plain", {"X-Session-Id": SID})
    assert answer.cookies[0].startswith("theme=dark")
    assert answer.cookies[1] == f"sid={SID}; Path=/; HttpOnly; SameSite=Lax"
    secure = fetch(app, "/plain", {"X-Session-Id": SID}, https=True)
    assert secure.cookies[1] == f"sid={SID}; Path=/; HttpOnly; SameSite=Lax; Secure"


@ADAPTERS
def test_an_invalid_cookie_is_replaced_and_never_set_again(make: Factory) -> None:
    answer = fetch(make(COOKIE), "/plain", {"Cookie": 'sid="a b"'})
    (new,) = answer.ids
    assert answer.seen.startswith(new)
    assert answer.cookies[1].startswith(f"sid={new};")


@ADAPTERS
def test_trust_incoming_false_ignores_every_source(make: Factory) -> None:
    app = make({**PATH, **COOKIE, "trust_incoming": False})
    answer = fetch(app, f"/threads/{THREAD}", {"X-Session-Id": SID, "Cookie": f"sid={SID}"})
    (new,) = answer.ids
    assert new not in (THREAD, SID)


@ADAPTERS
def test_signed_ids_only_from_every_source(make: Factory) -> None:
    app = make({**PATH, **COOKIE, "secret": "a-secret-of-32-characters-or-so!"})
    issued = fetch(app, "/plain").ids[0]
    assert fetch(app, "/plain", {"Cookie": f"sid={issued}"}).ids == [issued]
    assert fetch(app, f"/threads/{issued}").ids == [issued]
    assert fetch(app, f"/threads/{THREAD}").ids != [THREAD]  # unsigned: replaced


def test_the_apps_own_session_cookie_stands() -> None:
    async def endpoint(request: Request) -> PlainTextResponse:
        response = PlainTextResponse("ok", headers={"X-Session-Id": "rotated"})
        response.set_cookie("sid", "rotated-by-the-app")
        return response

    app = SessionMiddleware(Starlette(routes=[Route("/", endpoint)]), cookie_name="sid")
    answer = fetch(app, "/", {"X-Session-Id": SID})
    assert answer.ids == ["rotated"]
    assert len(answer.cookies) == 1
    assert answer.cookies[0].startswith("sid=rotated-by-the-app")


def test_the_apps_own_header_goes_into_the_cookie() -> None:
    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse("new conversation", headers={"X-Session-Id": "conv-9"})

    app = SessionMiddleware(Starlette(routes=[Route("/", endpoint)]), cookie_name="sid")
    assert fetch(app, "/", {"Cookie": f"sid={SID}"}).cookies == [
        "sid=conv-9; Path=/; HttpOnly; SameSite=Lax"
    ]


def test_cookie_options() -> None:
    app = starlette(
        {
            "cookie_name": "sid",
            "cookie_options": {
                "max_age": 86400,
                "domain": "example.com",
                "path": "/chat",
                "samesite": "Strict",
                "secure": True,
                "httponly": False,
            },
        }
    )
    assert fetch(app, "/plain", {"X-Session-Id": SID}).cookies[1] == (
        f"sid={SID}; Path=/chat; Domain=example.com; Max-Age=86400; SameSite=Strict; Secure"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cookie_name": "s id"}, "not a valid cookie name"),
        ({"cookie_name": "sid", "cookie_options": {"max_age": -1}}, "max_age"),
        ({"cookie_name": "sid", "cookie_options": {"samesite": "lax"}}, "samesite"),
        ({"cookie_name": "sid", "cookie_options": {"path": "chat"}}, "path"),
        ({"cookie_name": "sid", "cookie_options": {"domain": "a b"}}, "domain"),
        ({"cookie_name": "sid", "cookie_options": {"secure": "yes"}}, "secure"),
        ({"cookie_name": "sid", "cookie_options": {"maxage": 1}}, "unknown keys"),
        ({"cookie_options": {"max_age": 1}}, "set cookie_name too"),
        ({"path_param": ""}, "route parameter name"),
    ],
)
def test_configuration_mistakes_say_what_to_change(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SessionMiddleware(Starlette(), **options)


def test_path_param_on_apps_whose_routes_are_invisible_says_so() -> None:
    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError

    def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
        raise AssertionError

    with pytest.raises(ValueError, match="cannot see the routes"):
        SessionMiddleware(asgi_app, path_param="thread_id")
    with pytest.raises(ValueError, match="cannot see the routes"):
        WsgiSessionMiddleware(wsgi_app, path_param="thread_id")
    # The same wrapper around a Flask app's wsgi_app sees its rules.
    WsgiSessionMiddleware(Flask(__name__).wsgi_app, path_param="thread_id")
