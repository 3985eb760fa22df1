"""Property-based: whatever bytes arrive in the header, the adapters answer with a usable id,
never a 5xx, never the raw value reflected or logged, and no session left open."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import context as otel_context
from werkzeug.test import Client

from session_mw import SessionMiddleware, current_session
from session_mw._ids import is_valid_id
from session_mw.wsgi import SessionMiddleware as WsgiSessionMiddleware

# The one message an invalid id may produce: its length, never its content.
WARNING = re.compile(
    r"Ignored an invalid X-Session-Id request header \(\d+ characters; expected 1 to 128 "
    r"characters from ASCII letters, digits and - _ \. : @ \+ = /\); "
    r"the request gets a new session id"
)
VALID_TEXT = st.from_regex(r"[A-Za-z0-9\-_.:@+=/]{1,128}", fullmatch=True)
LATIN1_TEXT = st.text(alphabet=st.characters(max_codepoint=255), max_size=200)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def captured() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("session_mw")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def check(raw: str, echoed: str, body: str, status: int, messages: list[str]) -> None:
    assert status < 500
    assert body == echoed  # the app saw the id that was echoed
    if is_valid_id(raw):
        assert echoed == raw
        assert messages == []
    else:
        assert uuid.UUID(echoed).version == 4
        assert echoed != raw
        assert all(WARNING.fullmatch(message) for message in messages), messages
    assert current_session() is None
    assert otel_context.get_value("session.id") is None


async def echo(scope: Any, receive: Any, send: Any) -> None:
    opened = current_session()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send(
        {"type": "http.response.body", "body": b"" if opened is None else opened.id.encode()}
    )


ASGI = SessionMiddleware(echo)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=200), VALID_TEXT.map(str.encode)))
def test_asgi_any_header_bytes(raw: bytes) -> None:
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"x-session-id", raw)]}
    with captured() as records:
        asyncio.run(ASGI(scope, receive, send))
        echoed = [v for k, v in sent[0]["headers"] if k == b"x-session-id"]
        assert len(echoed) == 1
        check(
            raw.decode("latin-1"),
            echoed[0].decode("latin-1"),
            sent[1]["body"].decode("latin-1"),
            sent[0]["status"],
            records.messages,
        )


def wsgi_echo(environ: Any, start_response: Any) -> Any:
    start_response("200 OK", [("Content-Type", "text/plain")])
    opened = current_session()
    return [b"" if opened is None else opened.id.encode("latin-1")]


WSGI = WsgiSessionMiddleware(wsgi_echo)


@settings(max_examples=400, deadline=None)
@given(st.one_of(LATIN1_TEXT, VALID_TEXT))
def test_wsgi_any_header_text(raw: str) -> None:
    environ = {"HTTP_X_SESSION_ID": raw}
    with captured() as records:
        response = Client(WSGI).get("/", environ_overrides=environ)
        body = response.get_data().decode("latin-1")
        response.close()
        echoed = response.headers.getlist("X-Session-Id")
        assert len(echoed) == 1
        check(raw, echoed[0], body, response.status_code, records.messages)
