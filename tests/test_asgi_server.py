"""session-mw under uvicorn: many concurrent requests over real sockets keep their own ids."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.servers import free_port, running

CONCURRENT = 500


@pytest.mark.anyio
async def test_uvicorn_500_concurrent_requests_each_see_their_own_id() -> None:
    port = free_port()
    command = ["uvicorn", "tests.apps:asgi_app", "--host", "127.0.0.1", "--port", str(port)]
    with running([*command, "--log-level", "warning"], port) as url:
        # One connection per request, none reused. httpcore's pool bookkeeping grows with
        # requests x connections, so this burst lasts about 5 s on this machine: as long as
        # uvicorn's keep-alive timeout. A request sent on a pooled connection just as uvicorn
        # closes it for idleness fails with "Server disconnected without sending a response"
        # (or ReadError): the HTTP/1.1 keep-alive race, which httpx does not retry. It is what
        # failed on 3.12/3.13, where the timing happened to line up more often.
        limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
            ids = [f"conv-{n:04d}" for n in range(CONCURRENT)]
            responses = await asyncio.gather(
                *(client.get(f"/turn/{i}", headers={"X-Session-Id": i}) for i in ids)
            )
            fresh = await client.get("/turn/none")
    for session_id, response in zip(ids, responses, strict=True):
        assert response.status_code == 200
        assert response.headers.get_list("x-session-id") == [session_id]
        assert response.json() == {
            "before": session_id,
            "after": session_id,
            "route": "/turn/{conversation_id}",
        }
    generated = fresh.headers["x-session-id"]
    assert generated not in ids
    assert fresh.json()["after"] == generated
