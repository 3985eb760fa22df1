"""The Litestar, Quart and Falcon apps benchmarks.server_instructions serves, each wrapped each
way: apart from benchmarks.apps, so that a Starlette or Flask server imports none of these
frameworks (every object they make would lengthen its full collections).

The apps are benchmarks.frameworks_overhead's (one route, ``/threads/{thread_id}``), with the
marker endpoint added after the measured route.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import falcon
import falcon.asgi
import litestar
import quart
from asgi_correlation_id import CorrelationIdMiddleware
from openinference.instrumentation import using_session

from benchmarks.asgi_overhead import UsingSession
from benchmarks.frameworks_overhead import falcon_app, falcon_asgi_app, litestar_app, quart_app
from benchmarks.server_instructions import mark
from benchmarks.wsgi_overhead import MinimalWrapper
from session_mw.falcon import SessionMiddleware as FalconSessions
from session_mw.litestar import SessionMiddleware, SessionPlugin

HEADER = "X-Session-Id"


@litestar.get("/dump", media_type="text/plain")
async def litestar_dump() -> str:
    mark()
    return ""


async def quart_dump() -> str:
    mark()
    return ""


class Dump:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        mark()
        resp.text = ""


class AsyncDump:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        mark()
        resp.text = ""


def litestar_marked(**sessions: Any) -> litestar.Litestar:
    app = litestar_app(**sessions)
    app.register(litestar_dump)
    return app


def quart_marked(sessions: bool = False) -> quart.Quart:
    app = quart_app(sessions)
    app.get("/dump")(quart_dump)
    return app


def falcon_marked() -> falcon.App[Any, Any]:
    app = falcon_app()
    app.add_route("/dump", Dump())
    return app


def falcon_asgi_marked() -> falcon.asgi.App[Any, Any]:
    app = falcon_asgi_app()
    app.add_route("/dump", AsyncDump())
    return app


# Typed loosely: each framework's app and each peer's middleware types its ASGI callable its
# own way, and all of them are one ASGI (or WSGI) callable at run time.
def correlation_id(app: Any) -> Any:
    return CorrelationIdMiddleware(app, header_name=HEADER, validator=None)


def hand_written(app: Any) -> Any:
    return UsingSession(app)


class WsgiUsingSession:
    """What a team writes by hand for a WSGI app: OpenInference's using_session around the
    call, the id echoed (the session ends as the app returns, before the body is read)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        sid = environ.get("HTTP_X_SESSION_ID") or str(uuid.uuid4())

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [*headers, (HEADER, sid)], exc_info)

        with using_session(sid):
            return self.app(environ, start)


def quart_around(middleware: Callable[[Any], Any]) -> quart.Quart:
    """Quart's own way to add ASGI middleware: around ``app.asgi_app``, as its extension does."""
    app = quart_marked()
    app.asgi_app = middleware(app.asgi_app)  # type: ignore[method-assign]
    return app


# Named <framework>_<variant>, as benchmarks.server_instructions' suites look them up.

# Every Litestar variant adds its middleware the Litestar way, where session-mw's goes: to the
# app's middleware list, which Litestar builds into each route's stack (with an exception
# handler layer of its own that any middleware brings).
litestar_bare = litestar_marked()
litestar_session_mw = litestar_marked(plugins=[SessionPlugin()])
litestar_session_mw_middleware = litestar_marked(middleware=[SessionMiddleware()])
litestar_asgi_correlation_id = litestar_marked(middleware=[correlation_id])
litestar_using_session = litestar_marked(middleware=[hand_written])

quart_bare = quart_marked()
quart_session_mw = quart_marked(sessions=True)
quart_asgi_correlation_id = quart_around(correlation_id)
quart_using_session = quart_around(hand_written)

falcon_bare = falcon_marked()
falcon_session_mw = FalconSessions(falcon_marked())
falcon_contextvar = MinimalWrapper(falcon_marked())  # type: ignore[arg-type]
falcon_using_session = WsgiUsingSession(falcon_marked())

falcon_asgi_bare = falcon_asgi_marked()
falcon_asgi_session_mw = FalconSessions(falcon_asgi_marked())
falcon_asgi_asgi_correlation_id = correlation_id(falcon_asgi_marked())
falcon_asgi_using_session = hand_written(falcon_asgi_marked())
