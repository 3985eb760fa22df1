"""session-mw under real WSGI servers: Werkzeug's threaded server and gunicorn's gthread worker."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.servers import free_port, gunicorn, running

CONCURRENT = 500


async def many_turns(url: str) -> None:
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        ids = [f"conv-{n:04d}" for n in range(CONCURRENT)]
        responses = await asyncio.gather(
            *(client.get(f"/turn/{i}", headers={"X-Session-Id": i}) for i in ids)
        )
        bad = await client.get("/turn/x", headers={"X-Session-Id": "a, b"})
    threads = set()
    for session_id, response in zip(ids, responses, strict=True):
        assert response.status_code == 200
        assert response.headers.get_list("x-session-id") == [session_id]
        body = response.json()
        assert body["before"] == body["after"] == session_id
        assert body["route"] == "/turn/<conversation_id>"
        threads.add(body["thread"])
    assert len(threads) > 1  # the requests really were served by several threads
    assert bad.status_code == 200
    assert bad.headers["x-session-id"] not in ("a, b", "a", "b")


@pytest.mark.anyio
async def test_werkzeug_threaded_server() -> None:
    port = free_port()
    with running(["tests.apps", str(port)], port) as url:
        await many_turns(url)


@pytest.mark.anyio
async def test_gunicorn_gthread_worker() -> None:
    port = free_port()
    command = gunicorn("tests.apps:wsgi_app", port)
    with running(command, port) as url:
        await many_turns(url)
