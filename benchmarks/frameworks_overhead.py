"""Per-request cost of session-mw's Litestar, Quart and Falcon adapters beside each bare app.

    python -m benchmarks.frameworks_overhead [--rounds 21] [--requests 2000]

Requests go straight through each framework's ASGI or WSGI interface, in-process (no server, no
socket), to one route with a path parameter (``/threads/{thread_id}``) answering a short text,
with an incoming ``X-Session-Id``. One table per framework: the bare app, then the same app
with session-mw (for Litestar, both the plugin and the middleware alone; for all, also
``path_param``, which takes the id from the route's parameter).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import falcon
import falcon.asgi
import litestar
import quart

from benchmarks.harness import SESSION_ID, Suites, main
from session_mw.falcon import SessionMiddleware as FalconSessions
from session_mw.litestar import SessionMiddleware as LitestarMiddleware
from session_mw.litestar import SessionPlugin
from session_mw.quart import SessionMiddleware as QuartSessions

Message = MutableMapping[str, Any]
PATH = f"/threads/{SESSION_ID}"
# What httpx sends with a GET, lower-cased as ASGI servers pass it on, and the id.
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
    (b"user-agent", b"python-httpx/0.28.1"),
    (b"x-session-id", SESSION_ID.encode()),
]


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


_loops: list[asyncio.AbstractEventLoop] = []


def asgi_runner(app: Any) -> Callable[[int], float]:
    if not _loops:
        _loops.append(asyncio.new_event_loop())  # one loop for every variant, never closed
    loop = _loops[0]

    async def send(message: Message) -> None:
        pass

    async def many(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            incoming: list[Message] = [{"type": "http.request", "body": b"", "more_body": False}]

            async def receive(incoming: list[Message] = incoming) -> Message:
                # As uvicorn answers once the request is read and the response complete.
                return incoming.pop() if incoming else {"type": "http.disconnect"}

            # A fresh scope per request, as a server gives: frameworks change it.
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": PATH,
                "raw_path": PATH.encode(),
                "query_string": b"",
                "root_path": "",
                "headers": list(HEADERS),
                "client": ("127.0.0.1", 50000),
                "server": ("127.0.0.1", 8000),
            }
            await app(scope, receive, send)
        return time.perf_counter() - start

    return lambda n: loop.run_until_complete(many(n))


def wsgi_runner(app: Any) -> Callable[[int], float]:
    base: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": PATH,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": None,
        "wsgi.errors": None,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ACCEPT": "*/*",
        "HTTP_ACCEPT_ENCODING": "gzip, deflate",
        "HTTP_CONNECTION": "keep-alive",
        "HTTP_USER_AGENT": "python-httpx/0.28.1",
        "HTTP_X_SESSION_ID": SESSION_ID,
    }

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    def many(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            body: Iterable[bytes] = app(dict(base), start_response)
            for _chunk in body:
                pass
            close: Callable[[], object] | None = getattr(body, "close", None)
            if close is not None:
                close()
        return time.perf_counter() - start

    return many


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
