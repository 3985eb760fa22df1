"""session-mw under uvicorn: many concurrent requests over real sockets keep their own ids."""

from __future__ import annotations

import pytest

from tests.servers import concurrent_turns, free_port, running


@pytest.mark.anyio
async def test_uvicorn_500_concurrent_requests_each_see_their_own_id() -> None:
    port = free_port()
    command = ["uvicorn", "tests.apps:asgi_app", "--host", "127.0.0.1", "--port", str(port)]
    with running([*command, "--log-level", "warning"], port) as url:
        turns = concurrent_turns(url, "/turn/", "/turn/{conversation_id}", count=500)
        async with turns as (client, ids):
            fresh = await client.get("/turn/none")
    generated = fresh.headers["x-session-id"]
    assert generated not in ids
    assert fresh.json()["after"] == generated
