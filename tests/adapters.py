"""One harness for every web adapter: the same app, options and requests, and the same answer.

Each :class:`Adapter` builds, from the options as keywords (``header_name``, ``path_param``,
``cookie_name``, ``issue_ids``, ``trust_incoming``, ``on_invalid``, ``secret``, ``from_baggage``
...), an app with the same routes in its framework's idiom:

========================  ========================  ===========================================
route                     Flask                     Django
========================  ========================  ===========================================
``/threads/{thread_id}``  ``/threads/<thread_id>``  ``threads/<str:thread_id>/``
``/plain``                ``/plain``                ``plain/``
``/api`` + ``/v1/...``    Blueprint ``/api``        ``include()`` under ``api/``
``/n/{n:int}``            ``/n/<int:n>``            ``n/<int:n>/``
========================  ========================  ===========================================

Every endpoint answers ``"<session id> <http.route>"`` (``"none"`` outside a session) and sets a
``theme=dark`` cookie; query parameters make it write what an app may write itself: ``own_id``
its own ``X-Session-Id`` header, ``own_cookie`` its own ``sid`` cookie, ``expose`` its own
``Access-Control-Expose-Headers``. :func:`fetch` sends a request through the adapter's real test
client (Starlette's ``TestClient``, Werkzeug's ``Client``, Django's ``Client``) and checks that
nothing of it stays current in the caller.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_project.settings")

import django
from django.core.exceptions import ImproperlyConfigured
from django.test import Client as DjangoClient
from django.test import override_settings
from fastapi import APIRouter, FastAPI
from flask import Blueprint, Flask
from flask import Response as FlaskResponse
from flask import request as flask_request
from opentelemetry import context as otel_context
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from session_mw import current_session
from session_mw.asgi import SessionMiddleware as AsgiSessionMiddleware
from session_mw.django import SessionMiddleware as DjangoSessionMiddleware
from session_mw.flask import SessionMiddleware as FlaskSessionMiddleware
from session_mw.wsgi import SessionMiddleware as WsgiSessionMiddleware
from tests.clients import wsgi_get

django.setup()

__all__ = ["ADAPTERS", "Adapter", "Answer", "App", "canonical", "fetch", "seen"]

Options = Mapping[str, Any]


class Answer(NamedTuple):
    status: int
    seen: str  # "<session id> <http.route>", "none" outside a session, or the 400 body
    ids: list[str]  # every X-Session-Id response header
    cookies: list[str]  # every Set-Cookie response header, in order
    exposed: str | None  # Access-Control-Expose-Headers

    @property
    def session_id(self) -> str:
        """The id the app saw (``"none"``: it ran outside a session)."""
        return self.seen.split(" ", 1)[0]


def seen() -> str:
    """What every endpoint answers: the current session's id and ``http.route``."""
    opened = current_session()
    if opened is None:
        return "none"
    return f"{opened.id} {opened.attributes.get('http.route')}"


@dataclass(frozen=True)
class App:
    """An app built by ``adapter``; ``target`` is what its test client is given."""

    adapter: Adapter
    target: Any


class Adapter:
    """How one adapter builds the harness app and sends it a request."""

    name = ""
    #: What a configuration mistake raises at build time.
    config_error: type[Exception] = ValueError

    def build(self, options: Options) -> App:
        raise NotImplementedError

    def request(self, target: Any, path: str, headers: dict[str, str], https: bool) -> Answer:
        raise NotImplementedError

    def route(self, template: str) -> str:
        """``http.route`` as this framework writes ``template`` (given in Starlette's style)."""
        return template

    def __repr__(self) -> str:
        return self.name


def fetch(
    app: App, path: str, headers: Mapping[str, str] | None = None, https: bool = False
) -> Answer:
    """A GET of ``path`` with ``headers`` through the adapter's test client."""
    answer = app.adapter.request(app.target, path, dict(headers or {}), https)
    # Nothing of the request may stay attached to the caller's context (here: the test's).
    assert current_session() is None, f"{app.adapter.name}: {path} left its session current"
    assert otel_context.get_value("session.id") is None, f"{app.adapter.name}: {path} leaked"
    return answer


# Starlette and FastAPI


def _starlette_response(request: Request) -> PlainTextResponse:
    query = request.query_params
    response = PlainTextResponse(seen())
    response.set_cookie("theme", "dark")
    if "own_cookie" in query:
        response.set_cookie("sid", query["own_cookie"])
    if "own_id" in query:
        response.headers["x-session-id"] = query["own_id"]
    if "expose" in query:
        response.headers["access-control-expose-headers"] = query["expose"]
    return response


class _Asgi(Adapter):
    def request(self, target: Any, path: str, headers: dict[str, str], https: bool) -> Answer:
        base = "https://testserver" if https else "http://testserver"
        reply = TestClient(target, base_url=base).get(path, headers=headers)
        return Answer(
            reply.status_code,
            reply.text,
            reply.headers.get_list("x-session-id"),
            reply.headers.get_list("set-cookie"),
            reply.headers.get("access-control-expose-headers"),
        )


class _Starlette(_Asgi):
    name = "starlette"

    def build(self, options: Options) -> App:
        async def endpoint(request: Request) -> PlainTextResponse:
            return _starlette_response(request)

        app = Starlette(
            routes=[
                Route("/threads/{thread_id}", endpoint),
                Route("/plain", endpoint),
                Mount("/api", routes=[Route("/v1/threads/{thread_id}", endpoint)]),
                Route("/n/{n:int}", endpoint),
            ]
        )
        app.add_middleware(AsgiSessionMiddleware, **options)
        app.build_middleware_stack()  # a mistake in the options raises here, not on a request
        return App(self, app)


class _FastAPI(_Asgi):
    name = "fastapi"

    def build(self, options: Options) -> App:
        def endpoint(request: Request) -> PlainTextResponse:  # sync: FastAPI's thread pool
            return _starlette_response(request)

        app = FastAPI()
        router = APIRouter()
        router.add_api_route("/v1/threads/{thread_id}", endpoint)
        app.add_api_route("/threads/{thread_id}", endpoint)
        app.add_api_route("/plain", endpoint)
        app.add_api_route("/n/{n:int}", endpoint)
        app.include_router(router, prefix="/api")
        app.add_middleware(AsgiSessionMiddleware, **options)
        app.build_middleware_stack()
        return App(self, app)


# The WSGI adapter around a Flask app, and the Flask extension


def _flask_app() -> Flask:
    def endpoint(**params: Any) -> FlaskResponse:
        query = flask_request.args
        response = FlaskResponse(seen(), mimetype="text/plain")
        response.set_cookie("theme", "dark")
        if "own_cookie" in query:
            response.set_cookie("sid", query["own_cookie"])
        if "own_id" in query:
            response.headers["x-session-id"] = query["own_id"]
        if "expose" in query:
            response.headers["Access-Control-Expose-Headers"] = query["expose"]
        return response

    app = Flask(__name__)
    app.add_url_rule("/threads/<thread_id>", view_func=endpoint)
    app.add_url_rule("/plain", view_func=endpoint, endpoint="plain")
    app.add_url_rule("/n/<int:n>", view_func=endpoint, endpoint="n")
    api = Blueprint("api", __name__, url_prefix="/api")
    api.add_url_rule("/v1/threads/<thread_id>", view_func=endpoint)
    app.register_blueprint(api)
    return app


class _Werkzeug(Adapter):
    def request(self, target: Any, path: str, headers: dict[str, str], https: bool) -> Answer:
        base = "https://localhost" if https else "http://localhost"
        response = wsgi_get(target, path, headers=headers, base_url=base)
        return Answer(
            response.status_code,
            response.get_data(as_text=True),
            response.headers.getlist("X-Session-Id"),
            response.headers.getlist("Set-Cookie"),
            response.headers.get("Access-Control-Expose-Headers"),
        )

    def route(self, template: str) -> str:
        return re.sub(r"\{(\w+)(?::(\w+))?\}", _werkzeug_part, template)


def _werkzeug_part(match: re.Match[str]) -> str:
    name, converter = match.groups()
    return f"<{name}>" if converter is None else f"<{converter}:{name}>"


class _Wsgi(_Werkzeug):
    """The plain WSGI middleware around a whole Flask app, as around any WSGI application."""

    name = "wsgi"

    def build(self, options: Options) -> App:
        return App(self, WsgiSessionMiddleware(_flask_app(), **options))


class _Flask(_Werkzeug):
    """The Flask extension, configured through ``app.config["SESSION_MW_<NAME>"]``."""

    name = "flask"

    def build(self, options: Options) -> App:
        app = _flask_app()
        app.config.update({f"SESSION_MW_{name.upper()}": value for name, value in options.items()})
        FlaskSessionMiddleware().init_app(app)
        return App(self, app)


# Django


class _Django(Adapter):
    """The Django adapter alone in ``MIDDLEWARE``, configured through ``SESSION_MW_<NAME>``
    settings, with tests/django_project/adapters.py as ``ROOT_URLCONF``."""

    name = "django"
    config_error = ImproperlyConfigured

    def build(self, options: Options) -> App:
        settings = {
            "MIDDLEWARE": ["session_mw.django.SessionMiddleware"],
            "ROOT_URLCONF": "tests.django_project.adapters",
            **{f"SESSION_MW_{name.upper()}": value for name, value in options.items()},
        }
        with override_settings(**settings):  # Django reads them when it makes the middleware
            DjangoSessionMiddleware(lambda request: None)  # type: ignore[arg-type]
        return App(self, settings)

    def request(self, target: Any, path: str, headers: dict[str, str], https: bool) -> Answer:
        path, mark, query = path.partition("?")
        if not path.endswith("/"):
            path += "/"  # Django's routes end with one
        with override_settings(**target):
            # A new Client each time: a new handler, so the middleware is made with these
            # settings, and no cookie jar (the Cookie header a test sends is the one sent).
            response = DjangoClient().get(path + mark + query, headers=headers, secure=https)
        return Answer(
            response.status_code,
            response.content.decode(),
            [value for name, value in response.items() if name.lower() == "x-session-id"],
            # As Django's WSGI handler writes them, one Set-Cookie header per cookie.
            [morsel.OutputString() for morsel in response.cookies.values()],
            response.headers.get("Access-Control-Expose-Headers"),
        )

    def route(self, template: str) -> str:
        return re.sub(r"\{(\w+)(?::(\w+))?\}", _django_part, template) + "/"


def _django_part(match: re.Match[str]) -> str:
    name, converter = match.groups()
    return f"<{converter or 'str'}:{name}>"


ADAPTERS: list[Adapter] = [_Starlette(), _FastAPI(), _Wsgi(), _Flask(), _Django()]

# session-mw's order of the cookie attributes (Django's SimpleCookie sorts them by name).
_ATTRIBUTES = ["path", "domain", "max-age", "httponly", "samesite", "secure"]


def canonical(set_cookie: str) -> str:
    """A ``Set-Cookie`` value with its attributes in session-mw's order and spelling, so that
    Django's rendering of the same cookie compares equal. ``Expires`` goes when ``Max-Age`` is
    there (Django writes both; browsers use ``Max-Age``)."""
    pair, *parts = [part.strip() for part in set_cookie.split(";")]
    attributes = {}
    for part in parts:
        key, sep, value = part.partition("=")
        attributes[key.lower()] = (key, sep, value)
    if "max-age" in attributes:
        attributes.pop("expires", None)
    unknown = set(attributes) - set(_ATTRIBUTES)
    assert not unknown, f"unexpected cookie attributes {unknown} in {set_cookie!r}"
    spelled = {"path": "Path", "domain": "Domain", "max-age": "Max-Age"}
    spelled |= {"httponly": "HttpOnly", "samesite": "SameSite", "secure": "Secure"}
    rendered = [pair]
    for key in _ATTRIBUTES:
        if key in attributes:
            _, sep, value = attributes[key]
            rendered.append(f"{spelled[key]}{sep}{value}")
    return "; ".join(rendered)
