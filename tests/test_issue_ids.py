"""``issue_ids=False``: session-mw never makes an id nor writes the header; the app issues them.

Every adapter (pure ASGI, WSGI, the Flask extension) behaves the same, so every test runs on each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from werkzeug.wrappers import Request, Response

from session_mw import current_session
from session_mw.asgi import SessionMiddleware as AsgiSessionMiddleware
from session_mw.flask import SessionMiddleware as FlaskSessionMiddleware
from session_mw.wsgi import SessionMiddleware as WsgiSessionMiddleware
from tests.clients import policy as IdPolicy
from tests.clients import wsgi_get

SID = "mcp-1f2e3d"


class Answer(NamedTuple):
    status: int
    seen: str  # the session id the app saw, or "none"
    ids: list[str]  # every X-Session-Id response header
    exposed: str | None  # Access-Control-Expose-Headers


def seen_id() -> str:
    opened = current_session()
    return "none" if opened is None else opened.id


def asgi(options: dict[str, Any], headers: dict[str, str]) -> Answer:
    async def endpoint(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse(seen_id())

    app = AsgiSessionMiddleware(Starlette(routes=[Route("/", endpoint)]), **options)
    response = TestClient(app).get("/", headers=headers)
    return Answer(
        response.status_code,
        response.text,
        response.headers.get_list("x-session-id"),
        response.headers.get("access-control-expose-headers"),
    )


def wsgi(options: dict[str, Any], headers: dict[str, str]) -> Answer:
    @Request.application
    def app(request: Request) -> Response:
        return Response(seen_id())

    return _werkzeug(WsgiSessionMiddleware(app, **options), headers)


def flask(options: dict[str, Any], headers: dict[str, str]) -> Answer:
    app = Flask(__name__)
    app.config.update({f"SESSION_MW_{name.upper()}": value for name, value in options.items()})
    app.get("/")(seen_id)
    FlaskSessionMiddleware().init_app(app)
    return _werkzeug(app, headers)


def _werkzeug(app: Any, headers: dict[str, str]) -> Answer:
    response = wsgi_get(app, headers=headers)
    return Answer(
        response.status_code,
        response.get_data(as_text=True),
        response.headers.getlist("X-Session-Id"),
        response.headers.get("Access-Control-Expose-Headers"),
    )


Adapter = Callable[[dict[str, Any], dict[str, str]], Answer]
ADAPTERS = pytest.mark.parametrize("adapter", [asgi, wsgi, flask], ids=["asgi", "wsgi", "flask"])
OFF = {"issue_ids": False}


@ADAPTERS
def test_a_valid_incoming_id_is_the_session_and_is_not_echoed(adapter: Adapter) -> None:
    answer = adapter(OFF, {"X-Session-Id": SID})
    assert (answer.status, answer.seen, answer.ids) == (200, SID, [])


@ADAPTERS
def test_without_an_id_the_request_runs_without_a_session(adapter: Adapter) -> None:
    answer = adapter(OFF, {})
    assert (answer.status, answer.seen, answer.ids) == (200, "none", [])
    assert answer.exposed is None


@ADAPTERS
def test_the_header_is_still_exposed_on_cors_requests(adapter: Adapter) -> None:
    # The app's own header (MCP's Mcp-Session-Id) must reach browser clients all the same.
    for headers in ({"Origin": "http://localhost:3000"}, {"Origin": "x", "X-Session-Id": SID}):
        assert adapter(OFF, headers).exposed == "X-Session-Id"


@ADAPTERS
def test_an_invalid_id_is_ignored_with_a_warning_and_no_session(
    adapter: Adapter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="session_mw"):
        answer = adapter(OFF, {"X-Session-Id": "a\x1bb"})
    assert (answer.status, answer.seen, answer.ids) == (200, "none", [])
    assert "no session" in caplog.text
    assert "\x1b" not in caplog.text


@ADAPTERS
def test_an_invalid_id_is_rejected_when_asked(adapter: Adapter) -> None:
    answer = adapter({**OFF, "on_invalid": "reject"}, {"X-Session-Id": "no spaces"})
    assert answer.status == 400
    assert answer.ids == []


@ADAPTERS
def test_the_default_still_issues_ids(adapter: Adapter) -> None:
    answer = adapter({}, {})
    assert answer.ids == [answer.seen]


def test_issue_ids_false_with_trust_incoming_false_says_why() -> None:
    with pytest.raises(ValueError, match="no request would get a session"):
        IdPolicy(issue_ids=False, trust_incoming=False)
