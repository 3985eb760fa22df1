"""Per-request cost of session-mw's Litestar, Quart and Falcon adapters beside each bare app.

    python -m benchmarks.frameworks_overhead [--rounds 21] [--requests 2000]

Requests go straight through each framework's ASGI or WSGI interface, in-process (no server, no
socket), to one route with a path parameter (``/threads/{thread_id}``) answering a short text,
with an incoming ``X-Session-Id``. One table per framework: the bare app, then the same app
with session-mw (for Litestar, both the plugin and the middleware alone; for all, also
``path_param``, which takes the id from the route's parameter).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import falcon
import falcon.asgi
import litestar
import quart

from benchmarks import inprocess
from benchmarks.harness import SESSION_ID, Suites, Variant, main
from benchmarks.inprocess import Message
from session_mw.falcon import SessionMiddleware as FalconSessions
from session_mw.litestar import SessionMiddleware as LitestarMiddleware
from session_mw.litestar import SessionPlugin
from session_mw.quart import SessionMiddleware as QuartSessions

PATH = f"/threads/{SESSION_ID}"
HEADERS = [*inprocess.HTTPX, inprocess.WITH_ID]  # what httpx sends with a GET, and the id


def litestar_app(**sessions: Any) -> litestar.Litestar:
    @litestar.get("/threads/{thread_id:str}", media_type="text/plain")
    async def thread() -> str:
        return "ok"

    return litestar.Litestar(
        route_handlers=[thread], openapi_config=None, logging_config=None, **sessions
    )


def quart_app(sessions: bool = False, **options: Any) -> quart.Quart:
    app = quart.Quart(__name__)

    @app.get("/threads/<thread_id>")
    async def thread(thread_id: str) -> str:
        return "ok"

    if sessions:
        QuartSessions(app, **options)
    return app


class Thread:
    def on_get(self, req: falcon.Request, resp: falcon.Response, thread_id: str) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "ok"


class AsyncThread:
    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, thread_id: str
    ) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "ok"


def falcon_app() -> falcon.App[Any, Any]:
    app = falcon.App()
    app.add_route("/threads/{thread_id}", Thread())
    return app


def falcon_asgi_app() -> falcon.asgi.App[Any, Any]:
    app = falcon.asgi.App()
    app.add_route("/threads/{thread_id}", AsyncThread())
    return app


# Every variant, ASGI or WSGI, times the same request.


def asgi_runner(app: Callable[..., Awaitable[None]]) -> Variant:
    return inprocess.asgi_runner(app, PATH, HEADERS)


def wsgi_runner(app: Callable[..., Iterable[bytes]]) -> Variant:
    return inprocess.wsgi_runner(app, PATH, HEADERS)


def suites() -> Suites:
    """Every table: its variants, its baseline and the variant its ratios are taken against."""
    return {
        "Litestar": (
            {
                "bare Litestar": asgi_runner(litestar_app()),
                "session-mw plugin": asgi_runner(litestar_app(plugins=[SessionPlugin()])),
                "session-mw middleware": asgi_runner(
                    litestar_app(middleware=[LitestarMiddleware()])
                ),
                "session-mw plugin, path_param": asgi_runner(
                    litestar_app(plugins=[SessionPlugin(path_param="thread_id")])
                ),
            },
            "bare Litestar",
            "session-mw plugin",
        ),
        "Quart": (
            {
                "bare Quart": asgi_runner(quart_app()),
                "session-mw extension": asgi_runner(quart_app(sessions=True)),
                "session-mw extension, path_param": asgi_runner(
                    quart_app(sessions=True, path_param="thread_id")
                ),
            },
            "bare Quart",
            "session-mw extension",
        ),
        "Falcon (WSGI)": (
            {
                "bare falcon.App": wsgi_runner(falcon_app()),
                "session-mw": wsgi_runner(FalconSessions(falcon_app())),
                "session-mw, path_param": wsgi_runner(
                    FalconSessions(falcon_app(), path_param="thread_id")
                ),
            },
            "bare falcon.App",
            "session-mw",
        ),
        "Falcon (ASGI)": (
            {
                "bare falcon.asgi.App": asgi_runner(falcon_asgi_app()),
                "session-mw": asgi_runner(FalconSessions(falcon_asgi_app())),
                "session-mw, path_param": asgi_runner(
                    FalconSessions(falcon_asgi_app(), path_param="thread_id")
                ),
            },
            "bare falcon.asgi.App",
            "session-mw",
        ),
    }


def check() -> None:
    """Each app answers 200, with the id where session-mw is in it: a benchmark of error
    responses would measure nothing."""
    apps: list[tuple[Any, bool, bool]] = [
        (litestar_app(), False, True),
        (litestar_app(plugins=[SessionPlugin(path_param="thread_id")]), True, True),
        (litestar_app(middleware=[LitestarMiddleware()]), True, True),
        (quart_app(), False, True),
        (quart_app(sessions=True, path_param="thread_id"), True, True),
        (falcon_asgi_app(), False, True),
        (FalconSessions(falcon_asgi_app(), path_param="thread_id"), True, True),
        (falcon_app(), False, False),
        (FalconSessions(falcon_app(), path_param="thread_id"), True, False),
    ]
    for app, with_id, asgi in apps:
        status, headers = _asgi_answer(app) if asgi else _wsgi_answer(app)
        assert status == 200, (app, status)
        assert ((b"x-session-id", SESSION_ID.encode()) in headers) is with_id, (app, headers)


def _asgi_answer(app: Any) -> tuple[int, list[tuple[bytes, bytes]]]:
    sent: list[Message] = []

    async def capture(message: Message) -> None:
        sent.append(message)

    asgi_runner(_Recording(app, capture))(1)
    return sent[0]["status"], sent[0]["headers"]


class _Recording:
    """``app`` with every message it sends also given to ``record``."""

    def __init__(self, app: Any, record: Callable[[Message], Awaitable[None]]) -> None:
        self.app = app
        self.record = record

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def both(message: Message) -> None:
            await self.record(message)
            await send(message)

        await self.app(scope, receive, both)


def _wsgi_answer(app: Any) -> tuple[int, list[tuple[bytes, bytes]]]:
    answered: list[tuple[str, list[tuple[str, str]]]] = []

    def recording(environ: Any, start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answered.append((status, headers))
            return start_response(status, headers, exc_info)

        return app(environ, start)

    wsgi_runner(recording)(1)
    status, headers = answered[0]
    return int(status[:3]), [(k.lower().encode(), v.encode()) for k, v in headers]


if __name__ == "__main__":
    check()
    main((__doc__ or "").splitlines()[0], suites)
