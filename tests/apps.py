"""Apps that the integration tests serve with real servers (``uvicorn tests.apps:asgi_app``)."""

from __future__ import annotations

import asyncio
import random

from fastapi import FastAPI

from session_mw import SessionMiddleware, current_session

asgi_app = FastAPI()
asgi_app.add_middleware(SessionMiddleware)


@asgi_app.get("/turn/{conversation_id}")
async def turn(conversation_id: str) -> dict[str, str | None]:
    """Answers the session id seen before and after awaiting, while other requests run."""
    before = current_session()
    await asyncio.sleep(random.uniform(0, 0.02))
    after = current_session()
    return {
        "before": None if before is None else before.id,
        "after": None if after is None else after.id,
        "route": None if after is None else str(after.attributes.get("http.route")),
    }
