"""Soak: 30,000 requests through each adapter, in-process; memory must not grow and nothing may
remain of any session afterwards. It takes seconds, so it runs with the default suite."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Callable, MutableMapping
from typing import Any

import pytest
from opentelemetry import context as otel_context

from session_mw import SessionMiddleware, current_session
from session_mw.wsgi import SessionMiddleware as WsgiSessionMiddleware

REQUESTS = 30_000
LIMIT = 512 * 1024


def growth(run: Callable[[int], None]) -> int:
    run(2_000)  # warm-up: the id pool, caches, interned strings
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        run(REQUESTS)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def headers(n: int) -> list[tuple[bytes, bytes]]:
    # A mix: valid ids, none (generated), and invalid ones (replaced, warned about).
    kind = n % 3
    if kind == 0:
        return [(b"x-session-id", f"conv-{n}".encode()), (b"origin", b"http://a")]
    if kind == 1:
        return []
    return [(b"x-session-id", b"bad value\r\n")]


async def streaming(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"set-cookie", b"a=1")]})
    for _ in range(3):
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def test_asgi_soak(caplog: pytest.LogCaptureFixture) -> None:
    app = SessionMiddleware(streaming)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        pass

    def run(n: int) -> None:
        async def many() -> None:
            for i in range(n):
                scope = {
                    "type": "http",
                    "method": "POST",
                    "path": f"/chat/{i}",
                    "headers": headers(i),
                }
                await app(scope, receive, send)

        asyncio.run(many())

    caplog.set_level("ERROR", logger="session_mw")  # 10,000 warnings need not be kept
    assert growth(run) < LIMIT
    assert current_session() is None
    assert otel_context.get_value("session.id") is None


def test_wsgi_soak(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [("Set-Cookie", "a=1")])
        yield b"x"
        yield b"y"

    wrapped = WsgiSessionMiddleware(app)

    def start_response(status: str, response_headers: Any, exc_info: Any = None) -> Any:
        return None

    def run(n: int) -> None:
        for i in range(n):
            environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/chat/{i}"}
            for name, value in headers(i):
                environ["HTTP_" + name.decode().upper().replace("-", "_")] = value.decode()
            body = wrapped(environ, start_response)
            for _ in body:
                pass
            body.close()  # type: ignore[attr-defined]

    caplog.set_level("ERROR", logger="session_mw")
    assert growth(run) < LIMIT
    assert current_session() is None
    assert otel_context.get_value("session.id") is None
