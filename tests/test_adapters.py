"""Every web adapter keeps the same contract: where the id comes from (path parameter, header,
cookie, baggage, a new one), trust, signing, rejection, ``issue_ids``, the echo, CORS exposure and
no leak. Each test runs on every adapter through one harness (tests/adapters.py): the ASGI
middleware in Starlette and in FastAPI, the WSGI middleware, the Flask extension, the Django
middleware, Litestar's plugin and middleware, the Quart extension and the Falcon wrapper (WSGI and
ASGI), each through its framework's real test client.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any
from urllib.parse import unquote

import pytest
from flask import Flask
from starlette.applications import Starlette

from session_mw import SessionMiddleware
from session_mw.wsgi import SessionMiddleware as WsgiSessionMiddleware
from tests.adapters import ADAPTERS, Adapter, canonical, fetch

SID = "chat-42"
THREAD = "thread-7"
ORIGIN = "http://localhost:3000"
SECRET = "a-secret-of-32-characters-or-so!"
SIGNED = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.[\w-]{22}"
)
PATH = {"path_param": "thread_id"}
COOKIE = {"cookie_name": "sid"}
OFF = {"issue_ids": False}

every_adapter = pytest.mark.parametrize(
    "adapter", [pytest.param(adapter, marks=adapter.marks, id=adapter.name) for adapter in ADAPTERS]
)


def is_uuid4(value: str) -> bool:
    return str(uuid.UUID(value)) == value and uuid.UUID(value).version == 4


# The id in, and out


@every_adapter
def test_the_header_is_read_case_insensitively_and_echoed_exactly_once(adapter: Adapter) -> None:
    app = adapter.build({})
    plain = adapter.route("/plain")
    for name in ("X-Session-Id", "x-SESSION-id"):
        answer = fetch(app, "/plain", {name: SID})
        assert (answer.status, answer.seen, answer.ids) == (200, f"{SID} {plain}", [SID])
    generated = fetch(app, "/plain")
    (new,) = generated.ids
    assert is_uuid4(new)
    assert generated.session_id == new


@every_adapter
def test_the_apps_own_header_wins_and_no_second_one_is_added(adapter: Adapter) -> None:
    app = adapter.build({})
    for headers in ({}, {"X-Session-Id": SID}, {"X-Session-Id": SID, "Origin": ORIGIN}):
        answer = fetch(app, "/plain?own_id=conv-9", headers)
        assert answer.ids == ["conv-9"]
    assert fetch(app, "/plain?own_id=conv-9", {"Origin": ORIGIN}).exposed == "X-Session-Id"
    # issue_ids=False: the app issues the id (MCP's Mcp-Session-Id), and its header gets out.
    issuer = adapter.build(OFF)
    assert fetch(issuer, "/plain?own_id=conv-9").ids == ["conv-9"]
    assert fetch(issuer, "/plain?own_id=conv-9", {"X-Session-Id": SID}).ids == ["conv-9"]


@every_adapter
def test_cors_requests_get_the_header_name_appended_to_the_exposed_ones(adapter: Adapter) -> None:
    app = adapter.build({})
    assert fetch(app, "/plain", {"X-Session-Id": SID}).exposed is None  # not a CORS request
    assert fetch(app, "/plain", {"Origin": ORIGIN}).exposed == "X-Session-Id"
    assert fetch(app, "/plain?expose=ETag", {"Origin": ORIGIN}).exposed == "ETag,X-Session-Id"
    listed = fetch(app, "/plain?expose=ETag,x-session-id", {"Origin": ORIGIN})
    assert listed.exposed == "ETag,x-session-id"  # listed already: not twice
    named = adapter.build({"header_name": "X-Conversation-Id"})
    assert fetch(named, "/plain?expose=ETag", {"Origin": ORIGIN}).exposed == (
        "ETag,X-Conversation-Id"
    )


@every_adapter
@pytest.mark.parametrize(
    "value",
    ["a b", "x" * 129, "a,b", "\x1b[31m", '"quoted"', "a\tb"],
    ids=["space", "oversized", "joined-duplicates", "escape", "quotes", "tab"],
)
def test_an_invalid_header_is_replaced_with_a_uuid4_never_echoed_nor_logged(
    adapter: Adapter, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="session_mw"):
        answer = fetch(adapter.build({}), "/plain", {"X-Session-Id": value})
    assert answer.status == 200
    (new,) = answer.ids
    assert is_uuid4(new)
    assert answer.session_id == new
    assert "X-Session-Id request header" in caplog.text
    assert "a new session id" in caplog.text
    assert value not in caplog.text


@every_adapter
def test_reject_answers_400_naming_the_header(adapter: Adapter) -> None:
    app = adapter.build({"on_invalid": "reject", "header_name": "X-Conversation-Id"})
    answer = fetch(app, "/plain", {"X-Conversation-Id": "a b"})
    assert answer.status == 400
    assert "Invalid X-Conversation-Id request header: expected 1 to 128" in answer.seen
    assert "a b" not in answer.seen
    assert answer.ids == []
    assert fetch(app, "/plain", {"X-Conversation-Id": SID}).session_id == SID
    assert fetch(app, "/plain").status == 200  # absent is not invalid: a new id


# issue_ids=False: session-mw never makes an id nor writes the header; the app issues them


@every_adapter
def test_issue_ids_false_a_valid_incoming_id_is_the_session_and_is_not_echoed(
    adapter: Adapter,
) -> None:
    answer = fetch(adapter.build(OFF), "/plain", {"X-Session-Id": SID})
    assert (answer.status, answer.session_id, answer.ids) == (200, SID, [])


@every_adapter
def test_issue_ids_false_without_an_id_the_request_runs_without_a_session(
    adapter: Adapter,
) -> None:
    answer = fetch(adapter.build(OFF), "/plain")
    assert (answer.status, answer.seen, answer.ids) == (200, "none", [])
    assert answer.exposed is None


@every_adapter
def test_issue_ids_false_the_header_is_still_exposed_on_cors_requests(adapter: Adapter) -> None:
    # The app's own header (MCP's Mcp-Session-Id) must reach browser clients all the same.
    app = adapter.build(OFF)
    for headers in ({"Origin": ORIGIN}, {"Origin": "x", "X-Session-Id": SID}):
        assert fetch(app, "/plain", headers).exposed == "X-Session-Id"


@every_adapter
def test_issue_ids_false_an_invalid_id_is_ignored_with_a_warning_and_no_session(
    adapter: Adapter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="session_mw"):
        answer = fetch(adapter.build(OFF), "/plain", {"X-Session-Id": "a\x1bb"})
    assert (answer.status, answer.seen, answer.ids) == (200, "none", [])
    assert "no session" in caplog.text
    assert "\x1b" not in caplog.text


@every_adapter
def test_issue_ids_false_an_invalid_id_is_rejected_when_asked(adapter: Adapter) -> None:
    app = adapter.build({**OFF, "on_invalid": "reject"})
    answer = fetch(app, "/plain", {"X-Session-Id": "no spaces"})
    assert answer.status == 400
    assert "Invalid X-Session-Id request header" in answer.seen
    assert answer.ids == []


@every_adapter
def test_the_default_still_issues_ids(adapter: Adapter) -> None:
    answer = fetch(adapter.build({}), "/plain")
    assert answer.ids == [answer.session_id]


# Sources beside the header: the route's path parameter, the cookie, baggage


@every_adapter
@pytest.mark.parametrize(
    ("path", "template"),
    [("/threads/", "/threads/{thread_id}"), ("/api/v1/threads/", "/api/v1/threads/{thread_id}")],
    ids=["route", "prefixed"],
)
def test_the_path_parameter_is_the_session_and_wins_over_the_header(
    adapter: Adapter, path: str, template: str
) -> None:
    app = adapter.build(PATH)
    for headers in ({}, {"X-Session-Id": SID}):  # the URL names the resource: it wins
        answer = fetch(app, path + THREAD, headers)
        assert answer.seen == f"{THREAD} {adapter.route(template)}"
        assert answer.ids == [THREAD]


@every_adapter
def test_routes_without_the_parameter_fall_back_to_header_cookie_new_id(adapter: Adapter) -> None:
    app = adapter.build({**PATH, **COOKIE})
    plain = adapter.route("/plain")
    assert fetch(app, "/plain", {"X-Session-Id": SID}).seen == f"{SID} {plain}"
    from_cookie = fetch(app, "/plain", {"Cookie": f"theme=dark; sid={THREAD}"})
    assert from_cookie.seen == f"{THREAD} {plain}"
    both = fetch(app, "/plain", {"X-Session-Id": SID, "Cookie": f"sid={THREAD}"})
    assert both.seen.startswith(SID)  # the header before the cookie
    new = fetch(app, "/plain").ids[0]
    assert uuid.UUID(new).version == 4
    missing = fetch(app, "/nowhere", {"X-Session-Id": SID})
    assert missing.status == 404
    # Error responses carry the header too, where the adapter reaches them.
    assert missing.ids == ([SID] if adapter.reaches_unrouted else [])


@every_adapter
def test_the_precedence_path_header_cookie_baggage_new(adapter: Adapter) -> None:
    app = adapter.build({**PATH, **COOKIE, "from_baggage": True})
    cookie = {"Cookie": "sid=from-cookie"}
    header = {"X-Session-Id": "from-header"}
    baggage = {"baggage": "other=1,session.id=from-baggage"}
    every = {**cookie, **header, **baggage}
    assert fetch(app, f"/threads/{THREAD}", every).session_id == THREAD
    assert fetch(app, "/plain", every).session_id == "from-header"
    assert fetch(app, "/plain", {**cookie, **baggage}).session_id == "from-cookie"
    assert fetch(app, "/plain", baggage).session_id == "from-baggage"
    assert is_uuid4(fetch(app, "/plain", {"baggage": "other=1"}).session_id)
    forged = fetch(app, "/plain", {"baggage": "session.id=a%0D%0Ab"})  # validated like the header
    assert is_uuid4(forged.session_id)
    without = adapter.build({})  # baggage is read only when asked
    assert is_uuid4(fetch(without, "/plain", baggage).session_id)


@every_adapter
def test_apps_without_either_option_behave_as_before(
    adapter: Adapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    early: list[object] = []  # the path parameter's match before the app: must not run
    monkeypatch.setattr("session_mw.asgi.match_route", lambda *args: early.append(args))
    monkeypatch.setattr("session_mw.wsgi.match_rule", lambda *args: early.append(args))
    monkeypatch.setattr("session_mw.django.resolve", lambda *args: early.append(args))
    app = adapter.build({})
    path = f"/threads/{THREAD}"
    route = adapter.route("/threads/{thread_id}")
    assert fetch(app, path, {"X-Session-Id": SID}).seen == f"{SID} {route}"
    answer = fetch(app, path, {"Cookie": f"sid={THREAD}; session_id={THREAD}"})
    (new,) = answer.ids  # neither the path nor a cookie: a new id, and no cookie of ours
    assert uuid.UUID(new).version == 4
    assert [cookie.split(";")[0] for cookie in answer.cookies] == ["theme=dark"]
    assert early == []


@every_adapter
@pytest.mark.parametrize(
    "value",
    ["a%20b", "caf%C3%A9", "%E2%80%AE", "x" * 129, "a%0Ab"],
    ids=["space", "non-ascii", "bidi", "oversized", "newline"],
)
def test_an_invalid_path_value_is_replaced_never_echoed_nor_logged(
    adapter: Adapter, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = adapter.build({**PATH, **COOKIE})
    with caplog.at_level(logging.WARNING, logger="session_mw"):
        answer = fetch(app, f"/threads/{value}", {"X-Session-Id": SID})
    assert answer.status == 200
    (new,) = answer.ids
    assert uuid.UUID(new).version == 4  # neither the path value nor the header
    assert answer.session_id == new
    assert all(value not in cookie for cookie in answer.cookies)
    assert canonical(answer.cookies[1]).startswith(f"sid={new};")
    assert "thread_id path parameter" in caplog.text
    assert value not in caplog.text
    assert unquote(value) not in caplog.text
    assert "caf" not in caplog.text


@every_adapter
def test_an_invalid_path_value_is_rejected_when_asked(adapter: Adapter) -> None:
    answer = fetch(adapter.build({**PATH, "on_invalid": "reject"}), "/threads/a%20b")
    assert answer.status == 400
    assert "thread_id path parameter" in answer.seen
    assert answer.ids == []


@every_adapter
def test_a_converted_parameter_is_used_as_text(adapter: Adapter) -> None:
    answer = fetch(adapter.build({"path_param": "n"}), "/n/0042")
    assert answer.seen == f"42 {adapter.route('/n/{n:int}')}"
    assert answer.ids == ["42"]


@every_adapter
def test_the_cookie_is_set_beside_the_apps_cookies(adapter: Adapter) -> None:
    app = adapter.build(COOKIE)
    answer = fetch(app, "/plain", {"X-Session-Id": SID})
    assert len(answer.cookies) == 2
    assert answer.cookies[0].startswith("theme=dark")
    assert canonical(answer.cookies[1]) == f"sid={SID}; Path=/; HttpOnly; SameSite=Lax"
    secure = fetch(app, "/plain", {"X-Session-Id": SID}, https=True)
    assert canonical(secure.cookies[1]) == f"sid={SID}; Path=/; HttpOnly; SameSite=Lax; Secure"


@every_adapter
def test_an_invalid_cookie_is_replaced_and_never_set_again(adapter: Adapter) -> None:
    answer = fetch(adapter.build(COOKIE), "/plain", {"Cookie": 'sid="a b"'})
    (new,) = answer.ids
    assert answer.seen.startswith(new)
    assert canonical(answer.cookies[1]).startswith(f"sid={new};")


@every_adapter
def test_the_apps_own_session_cookie_stands(adapter: Adapter) -> None:
    app = adapter.build(COOKIE)
    path = "/plain?own_id=rotated&own_cookie=rotated-by-the-app"
    answer = fetch(app, path, {"X-Session-Id": SID})
    assert answer.ids == ["rotated"]
    ours = [cookie for cookie in answer.cookies if cookie.startswith("sid=")]
    assert len(ours) == 1
    assert ours[0].startswith("sid=rotated-by-the-app")


@every_adapter
def test_the_apps_own_header_goes_into_the_cookie(adapter: Adapter) -> None:
    answer = fetch(adapter.build(COOKIE), "/plain?own_id=conv-9", {"Cookie": f"sid={SID}"})
    assert answer.cookies[0].startswith("theme=dark")
    assert [canonical(cookie) for cookie in answer.cookies[1:]] == [
        "sid=conv-9; Path=/; HttpOnly; SameSite=Lax"
    ]


@every_adapter
def test_cookie_options(adapter: Adapter) -> None:
    app = adapter.build(
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
    assert canonical(fetch(app, "/plain", {"X-Session-Id": SID}).cookies[1]) == (
        f"sid={SID}; Path=/chat; Domain=example.com; Max-Age=86400; SameSite=Strict; Secure"
    )


@every_adapter
def test_samesite_none_cookies_are_always_secure(adapter: Adapter) -> None:
    # Browsers drop SameSite=None cookies that are not Secure: plain http requests included.
    app = adapter.build({**COOKIE, "cookie_options": {"samesite": "None"}})
    assert canonical(fetch(app, "/plain", {"X-Session-Id": SID}).cookies[1]) == (
        f"sid={SID}; Path=/; HttpOnly; SameSite=None; Secure"
    )


@every_adapter
def test_an_id_a_cookie_cannot_hold_is_echoed_but_never_set_as_the_cookie(adapter: Adapter) -> None:
    # A custom validator may allow ids with characters a cookie value cannot hold.
    app = adapter.build({**COOKIE, "validator": lambda value: True})
    answer = fetch(app, "/plain", {"X-Session-Id": "a b"})
    assert (answer.seen, answer.ids) == (f"a b {adapter.route('/plain')}", ["a b"])
    assert [cookie.split(";")[0] for cookie in answer.cookies] == ["theme=dark"]


# Trust


@every_adapter
def test_trust_incoming_false_ignores_every_source(adapter: Adapter) -> None:
    app = adapter.build({**PATH, **COOKIE, "from_baggage": True, "trust_incoming": False})
    answer = fetch(
        app,
        f"/threads/{THREAD}",
        {"X-Session-Id": SID, "Cookie": f"sid={SID}", "baggage": f"session.id={SID}"},
    )
    (new,) = answer.ids
    assert new not in (THREAD, SID)
    assert is_uuid4(new)
    assert answer.session_id == new
    header_only = fetch(adapter.build({"trust_incoming": False}), "/plain", {"X-Session-Id": SID})
    assert is_uuid4(header_only.session_id)
    assert header_only.ids == [header_only.session_id]


@every_adapter
def test_signed_ids_only_from_every_source(adapter: Adapter) -> None:
    app = adapter.build({**PATH, **COOKIE, "secret": SECRET})
    issued = fetch(app, "/plain").ids[0]
    assert SIGNED.fullmatch(issued)
    assert fetch(app, "/plain", {"X-Session-Id": issued}).ids == [issued]
    assert fetch(app, "/plain", {"Cookie": f"sid={issued}"}).ids == [issued]
    assert fetch(app, f"/threads/{issued}").ids == [issued]
    assert fetch(app, f"/threads/{THREAD}").ids != [THREAD]  # unsigned: replaced


@every_adapter
def test_ids_signed_by_another_service_are_replaced(
    adapter: Adapter, caplog: pytest.LogCaptureFixture
) -> None:
    foreign = fetch(adapter.build({"secret": "another-secret-0123456789abcdef"}), "/plain").ids[0]
    app = adapter.build({"secret": SECRET})
    with caplog.at_level(logging.WARNING, logger="session_mw"):
        answer = fetch(app, "/plain", {"X-Session-Id": foreign})
    (new,) = answer.ids
    assert new != foreign
    assert SIGNED.fullmatch(new)
    assert answer.session_id == new
    assert "signed by this service" in caplog.text
    assert foreign not in caplog.text
    rejecting = adapter.build({"secret": SECRET, "on_invalid": "reject"})
    refused = fetch(rejecting, "/plain", {"X-Session-Id": foreign})
    assert refused.status == 400
    assert "signed by this service" in refused.seen


# No leak


@every_adapter
def test_no_request_leaves_its_session_behind(adapter: Adapter) -> None:
    # fetch() checks after each request that nothing is current in the test; here the next
    # request, without an id and with issue_ids=False, must run without a session too.
    app = adapter.build({**OFF, **PATH, **COOKIE})
    rejecting = adapter.build({**OFF, "on_invalid": "reject"})
    requests: list[tuple[Any, str, dict[str, str]]] = [
        (app, "/plain", {"X-Session-Id": SID}),
        (app, f"/threads/{THREAD}", {}),
        (app, "/plain", {"Cookie": f"sid={SID}"}),
        (app, "/nowhere", {"X-Session-Id": SID}),
        (app, "/plain", {"X-Session-Id": "a b"}),
        (rejecting, "/plain", {"X-Session-Id": "a b"}),
    ]
    for built, path, headers in requests:
        fetch(built, path, headers)
        assert fetch(app, "/plain").seen == "none"


# Configuration


@every_adapter
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
        ({"issue_ids": False, "trust_incoming": False}, "no request would get a session"),
    ],
)
def test_configuration_mistakes_say_what_to_change(
    adapter: Adapter, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(adapter.config_error, match=message):
        adapter.build(options)


def test_path_param_on_apps_whose_routes_are_invisible_says_so() -> None:
    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError

    def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
        raise AssertionError

    with pytest.raises(ValueError, match="cannot see the routes"):
        SessionMiddleware(asgi_app, path_param="thread_id")
    with pytest.raises(ValueError, match="cannot see the routes"):
        WsgiSessionMiddleware(wsgi_app, path_param="thread_id")
    # The same wrappers around a Starlette app and a Flask app's wsgi_app see their routes.
    SessionMiddleware(Starlette(), path_param="thread_id")
    WsgiSessionMiddleware(Flask(__name__).wsgi_app, path_param="thread_id")
