"""Options: declared once, read strictly from keywords, Flask's app.config and Django's settings,
and every one of them documented in each public class's help()."""

from __future__ import annotations

import dataclasses
import pydoc
import re
from typing import Any

import pytest
from flask import Flask
from starlette.applications import Starlette

from session_mw._options import Options
from session_mw.asgi import SessionMiddleware as AsgiSessionMiddleware
from session_mw.flask import SessionMiddleware as FlaskSessionMiddleware
from session_mw.wsgi import SessionMiddleware as WsgiSessionMiddleware

NAMES = [field.name for field in dataclasses.fields(Options)]


def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b""]


def keyword_adapters() -> list[Any]:
    return [
        lambda **options: AsgiSessionMiddleware(Starlette(), **options),
        lambda **options: WsgiSessionMiddleware(wsgi_app, **options),
        lambda **options: FlaskSessionMiddleware(Flask(__name__), **options),
    ]


KEYWORDS = pytest.mark.parametrize("make", keyword_adapters(), ids=["asgi", "wsgi", "flask"])


@KEYWORDS
def test_a_misspelled_keyword_names_the_class_and_the_closest_option(make: Any) -> None:
    with pytest.raises(TypeError) as raised:
        make(hedaer_name="X-Conversation")
    assert str(raised.value) == (
        "SessionMiddleware() got an unexpected keyword argument 'hedaer_name': "
        "did you mean 'header_name'?"
    )


@KEYWORDS
@pytest.mark.parametrize("name", ["baggage", "from_baggage", "trust_incoming", "issue_ids"])
@pytest.mark.parametrize("value", ["false", "False", 0, 1, None])
def test_a_bool_option_takes_only_a_bool(make: Any, name: str, value: object) -> None:
    with pytest.raises(TypeError, match=rf"^{name}={value!r} is not a bool"):
        make(**{name: value})


@KEYWORDS
@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"generator": 42}, TypeError, "generator=42 is not callable"),
        ({"validator": "no.such.module.check"}, ValueError, "validator='no.such.module.check'"),
        ({"header_name": 5}, ValueError, "header_name=5 is not a valid HTTP header name"),
        ({"cookie_options": "max_age=1"}, TypeError, "cookie_options='max_age=1': give a dict"),
        ({"cookie_name": "s", "cookie_options": {"maxage": 1}}, ValueError, "unknown keys"),
        ({"secret": 12345678901234567890}, TypeError, "secret: give a str or bytes secret"),
        ({"path_param": ""}, ValueError, "path_param='': use a route parameter name"),
    ],
)
def test_wrong_types_and_values_say_what_to_change(
    make: Any, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        make(**options)


def test_callables_may_be_dotted_paths() -> None:
    app = Flask(__name__)
    app.config["SESSION_MW_GENERATOR"] = "tests.test_options.make_id"
    FlaskSessionMiddleware(app)
    response = app.test_client().get("/")
    assert response.headers["X-Session-Id"] == "made-here"


def make_id() -> str:
    return "made-here"


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({"SESSION_MW_TRUST_INCOMING": "false"}, TypeError, "SESSION_MW_TRUST_INCOMING='false'"),
        ({"SESSION_MW_ON_INVALD": "reject"}, ValueError, "did you mean 'SESSION_MW_ON_INVALID'"),
        ({"SESSION_MW_HEADER_NAME": "X Id"}, ValueError, "SESSION_MW_HEADER_NAME='X Id' is not"),
        (
            {"SESSION_MW_ISSUE_IDS": False, "SESSION_MW_TRUST_INCOMING": False},
            ValueError,
            "SESSION_MW_ISSUE_IDS=False with SESSION_MW_TRUST_INCOMING=False",
        ),
    ],
)
def test_flask_config_mistakes_name_the_key(
    config: dict[str, Any], error: type[Exception], message: str
) -> None:
    app = Flask(__name__)
    app.config.update(config)
    extension = FlaskSessionMiddleware()
    with pytest.raises(error, match=re.escape(message)):
        extension.init_app(app)
    assert "session_mw" not in app.extensions  # nothing half-installed


def test_flask_config_overrides_keywords_and_is_checked_under_its_own_name() -> None:
    app = Flask(__name__)
    app.config["SESSION_MW_ISSUE_IDS"] = "no"
    with pytest.raises(TypeError, match=r"^SESSION_MW_ISSUE_IDS='no' is not a bool"):
        FlaskSessionMiddleware(issue_ids=True).init_app(app)


def test_other_config_keys_are_left_alone() -> None:
    app = Flask(__name__)
    app.config["SESSION_COOKIE_NAME"] = "flask-session"  # Flask's own, not ours
    FlaskSessionMiddleware(app)
    assert app.config["SESSION_MW_HEADER_NAME"] == "X-Session-Id"


@pytest.mark.parametrize(
    ("cls", "spelled"),
    [
        (AsgiSessionMiddleware, str),
        (WsgiSessionMiddleware, str),
        (FlaskSessionMiddleware, lambda name: f"SESSION_MW_{name.upper()}"),
    ],
    ids=["asgi", "wsgi", "flask"],
)
def test_help_documents_every_option(cls: type[Any], spelled: Any) -> None:
    text = pydoc.plain(pydoc.render_doc(cls))
    for name in NAMES:
        assert f":param {spelled(name)}:" in text, name
