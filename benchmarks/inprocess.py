"""Requests straight through the ASGI or the WSGI interface, in-process, as a server makes them.

No server, no socket: the figures are the app's and the middleware's own cost. Every benchmark
of a web adapter times its variants with these runners, so that all measure the same requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

from benchmarks.harness import SESSION_ID, Variant

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

#: What httpx sends with a GET, lower-cased as ASGI servers pass it on.
HTTPX = [
    (b"host", b"127.0.0.1:8000"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
    (b"user-agent", b"python-httpx/0.28.1"),
]
#: The incoming id, as a header.
WITH_ID = (b"x-session-id", SESSION_ID.encode())

# One event loop for every variant, never closed while the benchmark runs (a test that runs
# the variants closes it afterwards).
_loops: list[asyncio.AbstractEventLoop] = []


async def _ignore(message: Message) -> None:
    pass


def asgi_runner(
    app: Callable[..., Awaitable[None]],
    path: str,
    headers: Sequence[tuple[bytes, bytes]],
    method: str = "GET",
    disconnect: bool = True,
) -> Variant:
    """A variant: ``n`` requests for ``path`` through the ASGI interface of ``app``.

    ``disconnect``: ``receive`` answers the request once, then ``http.disconnect``, as uvicorn
    does (frameworks that listen for a disconnect need it); without, it answers the request
    every time, as the ASGI tables were measured (a list and a closure less per request)."""
    if not _loops:
        _loops.append(asyncio.new_event_loop())
    loop = _loops[0]

    async def request() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def many(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            receive = request
            if disconnect:
                incoming: list[Message] = [
                    {"type": "http.request", "body": b"", "more_body": False}
                ]

                async def receive(incoming: list[Message] = incoming) -> Message:
                    # As uvicorn answers once the request is read and the response complete.
                    return incoming.pop() if incoming else {"type": "http.disconnect"}

            # A fresh scope per request, as a server gives: frameworks and middlewares change it.
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": method,
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "query_string": b"",
                "root_path": "",
                "headers": list(headers),
                "client": ("127.0.0.1", 50000),
                "server": ("127.0.0.1", 8000),
            }
            await app(scope, receive, _ignore)
        return time.perf_counter() - start

    return lambda n: loop.run_until_complete(many(n))


def wsgi_runner(
    app: Callable[..., Iterable[bytes]], path: str, headers: Sequence[tuple[bytes, bytes]]
) -> Variant:
    """A variant: ``n`` GETs of ``path`` through the WSGI interface of ``app``, its body read
    and closed."""
    base: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
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
        # The same headers as the ASGI requests, as WSGI servers name them.
        **{f"HTTP_{name.decode().upper().replace('-', '_')}": v.decode() for name, v in headers},
    }

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return None

    def many(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            body: Iterable[bytes] = app(dict(base), start_response)  # a fresh environ each time
            for _chunk in body:
                pass
            close: Callable[[], object] | None = getattr(body, "close", None)
            if close is not None:
                close()
        return time.perf_counter() - start

    return many
