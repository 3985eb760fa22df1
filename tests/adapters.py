"""One harness for every web adapter: the same app, options and requests, and the same answer.

Each :class:`Adapter` builds, from the options as keywords (``header_name``, ``path_param``,
``cookie_name``, ``issue_ids``, ``trust_incoming``, ``on_invalid``, ``secret``, ``from_baggage``
...), an app with the same routes in its framework's idiom:

========================  ========================  ===========================================
route                     Flask, Quart              Django
========================  ========================  ===========================================
``/threads/{thread_id}``  ``/threads/<thread_id>``  ``threads/<str:thread_id>/``
``/plain``                ``/plain``                ``plain/``
``/api`` + ``/v1/...``    Blueprint ``/api``        ``include()`` under ``api/``
``/n/{n:int}``            ``/n/<int:n>``            ``n/<int:n>/``
========================  ========================  ===========================================

Litestar writes ``/threads/{thread_id:str}`` (a ``Router`` for ``/api``), Falcon writes the
Starlette templates as they are (it has no prefixes: ``/api/v1/...`` is one template).

Every endpoint answers ``"<session id> <http.route>"`` (``"none"`` outside a session) and sets a
``theme=dark`` cookie; query parameters make it write what an app may write itself: ``own_id``
its own ``X-Session-Id`` header, ``own_cookie`` its own ``sid`` cookie, ``expose`` its own
``Access-Control-Expose-Headers``. :func:`fetch` sends a request through the adapter's real test
client (Starlette's and Litestar's ``TestClient``, Werkzeug's ``Client``, Django's ``Client``,
Quart's ``test_client()``, Falcon's ``falcon.testing`` request simulation) and checks that
nothing of it stays current in the caller.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_project.settings")

import django
import falcon
import falcon.asgi
import falcon.testing
import pytest
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
from session_mw.falcon import SessionMiddleware as FalconSessionMiddleware
from session_mw.flask import SessionMiddleware as FlaskSessionMiddleware
from session_mw.wsgi import SessionMiddleware as WsgiSessionMiddleware
from tests.clients import wsgi_get

if TYPE_CHECKING:
    import quart
    from litestar import Request as LitestarRequest
    from litestar import Response as LitestarResponse

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
    #: Whether the adapter reaches the answer to a request that no route matched (Litestar's
    #: middleware does not: its router answers those before any middleware runs).
    reaches_unrouted = True
    #: The marks of its tests (``above_floors``: its framework needs newer releases than the
    #: declared floors of the others, so the lowest run has it not).
    marks: tuple[pytest.MarkDecorator, ...] = ()

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


class _Headers(Protocol):
    def __setitem__(self, name: str, value: str, /) -> None: ...


class _Response(Protocol):
    """Starlette's, Werkzeug's (Flask's) and Quart's responses: the calls of ``_written``."""

    @property
    def headers(self) -> _Headers: ...

    def set_cookie(self, key: str, value: str = ..., /) -> None: ...


_AnyResponse = TypeVar("_AnyResponse", bound=_Response)


def _written(response: _AnyResponse, query: Mapping[str, str]) -> _AnyResponse:
    """``response`` with what the endpoints write besides the answer, as ``query`` asks."""
    response.set_cookie("theme", "dark")
    if "own_cookie" in query:
        response.set_cookie("sid", query["own_cookie"])
    if "own_id" in query:
        response.headers["x-session-id"] = query["own_id"]
    if "expose" in query:
        # As a Flask app writes it; Starlette lower-cases every name.
        response.headers["Access-Control-Expose-Headers"] = query["expose"]
    return response


def _starlette_response(request: Request) -> PlainTextResponse:
    return _written(PlainTextResponse(seen()), request.query_params)


def _httpx_answer(reply: Any) -> Answer:
    """The answer as an httpx-based test client gives it: Litestar's (httpx), Starlette's
    (httpx2 where installed, else httpx: one API, two types)."""
    return Answer(
        reply.status_code,
        reply.text,
        reply.headers.get_list("x-session-id"),
        reply.headers.get_list("set-cookie"),
        reply.headers.get("access-control-expose-headers"),
    )


class _Asgi(Adapter):
    def request(self, target: Any, path: str, headers: dict[str, str], https: bool) -> Answer:
        base = "https://testserver" if https else "http://testserver"
        reply = TestClient(target, base_url=base).get(path, headers=headers)
        return _httpx_answer(reply)


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
        return _written(FlaskResponse(seen(), mimetype="text/plain"), flask_request.args)

    app = Flask(__name__)
    _werkzeug_routes(app, Blueprint("api", __name__, url_prefix="/api"), endpoint)
    return app


# Flask and Quart share one API (Quart builds on Flask's app and blueprints): what serves one
# serves the other.


def _werkzeug_routes(app: Any, api: Any, endpoint: Callable[..., Any]) -> None:
    """The harness routes on a Flask or a Quart ``app``, ``/api`` on the blueprint ``api``."""
    app.add_url_rule("/threads/<thread_id>", view_func=endpoint)
    app.add_url_rule("/plain", view_func=endpoint, endpoint="plain")
    app.add_url_rule("/n/<int:n>", view_func=endpoint, endpoint="n")
    api.add_url_rule("/v1/threads/<thread_id>", view_func=endpoint)
    app.register_blueprint(api)


def _extension_config(options: Options) -> dict[str, Any]:
    """``options`` as the Flask and Quart extensions read them, from ``app.config``."""
    return {f"SESSION_MW_{name.upper()}": value for name, value in options.items()}


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
        app.config.update(_extension_config(options))
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


# Litestar: the plugin, and the middleware alone in Litestar(middleware=[...])


def _litestar_app(sessions: dict[str, Any]) -> Any:
    import litestar
    from litestar.datastructures import Cookie

    def handler(paths: list[str]) -> Any:
        async def endpoint(request: LitestarRequest[Any, Any, Any]) -> LitestarResponse[str]:
            query = request.query_params
            headers = {}
            cookies = [Cookie(key="theme", value="dark")]
            if "own_cookie" in query:
                cookies.append(Cookie(key="sid", value=query["own_cookie"]))
            if "own_id" in query:
                headers["x-session-id"] = query["own_id"]
            if "expose" in query:
                headers["access-control-expose-headers"] = query["expose"]
            return litestar.Response(
                seen(), media_type="text/plain", headers=headers, cookies=cookies
            )

        # One handler on two paths (/threads/... and /plain): the route is the path it matched.
        # Its annotations name classes imported here, not globals: Litestar is told.
        names = {"LitestarRequest": litestar.Request, "LitestarResponse": litestar.Response}
        return litestar.get(paths, signature_namespace=names)(endpoint)

    api = litestar.Router("/api", route_handlers=[handler(["/v1/threads/{thread_id:str}"])])
    handlers = [handler(["/threads/{thread_id:str}", "/plain"]), handler(["/n/{n:int}"]), api]
    # No logging_config: Litestar's would replace the root logger's handlers (pytest's too).
    return litestar.Litestar(
        route_handlers=handlers, openapi_config=None, logging_config=None, **sessions
    )


class _Litestar(Adapter):
    """The plugin: the middleware on the app, and a before_send hook for unrouted answers.

    Litestar (>= 2.15, for ASGIMiddleware) loads its pydantic plugin when pydantic is there,
    and that needs pydantic >= 2.5, above FastAPI 0.100's: imported only here, and its tests
    are above the floors."""

    name = "litestar"
    marks = (pytest.mark.above_floors,)

    def build(self, options: Options) -> App:
        from session_mw.litestar import SessionPlugin

        return App(self, _litestar_app({"plugins": [SessionPlugin(**options)]}))

    def request(self, target: Any, path: str, headers: dict[str, str], https: bool) -> Answer:
        from litestar.testing import TestClient as LitestarTestClient

        base = "https://testserver.local" if https else "http://testserver.local"
        with LitestarTestClient(target, base_url=base) as client:
            reply = client.get(path, headers=headers)
        return _httpx_answer(reply)

    def route(self, template: str) -> str:
        return re.sub(r"\{(\w+)\}", r"{\1:str}", template)


class _LitestarMiddleware(_Litestar):
    """``Litestar(middleware=[SessionMiddleware(...)])``: every routed request."""

    name = "litestar-middleware"
    reaches_unrouted = False

    def build(self, options: Options) -> App:
        from session_mw.litestar import SessionMiddleware

        return App(self, _litestar_app({"middleware": [SessionMiddleware(**options)]}))


# Quart: the extension, configured through app.config["SESSION_MW_<NAME>"]


class _Quart(_Werkzeug):
    """Quart needs Flask >= 3 (Quart 0.18 needs blinker < 1.6, Flask 2.3 blinker >= 1.6.2): it
    is imported only here, and its tests are above the floors."""

    name = "quart"
    marks = (pytest.mark.above_floors,)

    def build(self, options: Options) -> App:
        import quart

        from session_mw.quart import SessionMiddleware as QuartSessionMiddleware

        async def endpoint(**params: Any) -> quart.Response:
            return _written(quart.Response(seen(), mimetype="text/plain"), quart.request.args)

        app = quart.Quart(__name__)
        _werkzeug_routes(app, quart.Blueprint("api", __name__, url_prefix="/api"), endpoint)
        app.config.update(_extension_config(options))
        QuartSessionMiddleware().init_app(app)
        return App(self, app)

    def request(self, target: Any, path: str, headers: dict[str, str], https: bool) -> Answer:
        path, _, query = path.partition("?")

        async def get() -> quart.Response:
            client = target.test_client(use_cookies=False)
            return await client.get(  # type: ignore[no-any-return]
                path,
                headers=headers,
                query_string=_query(query),
                scheme="https" if https else "http",
            )

        response = asyncio.run(get())
        return Answer(
            response.status_code,
            asyncio.run(response.get_data(as_text=True)),
            response.headers.getlist("X-Session-Id"),
            response.headers.getlist("Set-Cookie"),
            response.headers.get("Access-Control-Expose-Headers"),
        )


def _query(query: str) -> dict[str, str]:
    return dict(part.partition("=")[::2] for part in query.split("&") if part)


# Falcon: the wrapper around a falcon.App (WSGI) and around a falcon.asgi.App (ASGI)


class _FalconResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response, **params: Any) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = seen()
        resp.set_cookie("theme", "dark", secure=False)
        query: dict[str, str] = req.params  # type: ignore[assignment]  # one value each here
        if "own_cookie" in query:
            resp.set_cookie("sid", query["own_cookie"], secure=False)
        if "own_id" in query:
            resp.set_header("X-Session-Id", query["own_id"])
        if "expose" in query:
            resp.set_header("Access-Control-Expose-Headers", query["expose"])


class _AsyncFalconResource(_FalconResource):
    async def on_get(  # type: ignore[override]
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, **params: Any
    ) -> None:
        super().on_get(req, resp, **params)


_FALCON_ROUTES = ("/threads/{thread_id}", "/plain", "/api/v1/threads/{thread_id}", "/n/{n:int}")


class _Falcon(Adapter):
    """The wrapper around a ``falcon.App``, requests simulated with ``falcon.testing``'s
    environ and ``start_response`` (its ``Result`` keeps one of repeated headers only)."""

    name = "falcon"
    kind: type[falcon.App[Any, Any]] = falcon.App
    resource: _FalconResource = _FalconResource()

    def build(self, options: Options) -> App:
        app = self.kind()
        for template in _FALCON_ROUTES:
            app.add_route(template, self.resource)
        return App(self, FalconSessionMiddleware(app, **options))

    def request(self, target: Any, path: str, headers: dict[str, str], https: bool) -> Answer:
        path, _, query = path.partition("?")
        return self.simulate(target, path, query, headers, "https" if https else "http")

    # The request as the WSGI interface takes it; the ASGI kind's below.
    def simulate(
        self, target: Any, path: str, query: str, headers: dict[str, str], scheme: str
    ) -> Answer:
        environ = falcon.testing.create_environ(path, query, headers=headers, scheme=scheme)
        start_response = falcon.testing.StartResponseMock()
        body = target(environ, start_response)
        try:
            data = b"".join(body)
        finally:
            if hasattr(body, "close"):
                body.close()
        return _falcon_answer(start_response.status, start_response.headers, data)


class _FalconAsgi(_Falcon):
    name = "falcon-asgi"
    kind = falcon.asgi.App
    resource = _AsyncFalconResource()

    def simulate(
        self, target: Any, path: str, query: str, headers: dict[str, str], scheme: str
    ) -> Answer:
        scope = falcon.testing.create_scope(path, query, headers=headers, scheme=scheme)
        events = falcon.testing.ASGIRequestEventEmitter()
        collected = falcon.testing.ASGIResponseEventCollector()
        asyncio.run(target(scope, events, collected))
        return _falcon_answer(str(collected.status), collected.headers, collected.body_chunks)


def _falcon_answer(status: Any, headers: Any, body: Any) -> Answer:
    pairs = [(name.lower(), value) for name, value in headers]
    exposed = [value for name, value in pairs if name == "access-control-expose-headers"]
    return Answer(
        int(str(status)[:3]),
        (body if isinstance(body, bytes) else b"".join(body)).decode(),
        [value for name, value in pairs if name == "x-session-id"],
        [value for name, value in pairs if name == "set-cookie"],
        exposed[0] if exposed else None,
    )


ADAPTERS: list[Adapter] = [
    _Starlette(),
    _FastAPI(),
    _Wsgi(),
    _Flask(),
    _Django(),
    _Litestar(),
    _LitestarMiddleware(),
    _Quart(),
    _Falcon(),
    _FalconAsgi(),
]

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
