from __future__ import annotations

import asyncio
import logging
import logging.config
from collections.abc import Iterator

import pytest

from session_mw import SessionIdFilter, session


@pytest.fixture
def records() -> Iterator[list[str]]:
    """Formatted lines from a handler configured through dictConfig, as users write it."""
    lines: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"session": {"()": "session_mw.SessionIdFilter", "default": "no-session"}},
            "formatters": {"plain": {"format": "%(session_id)s %(levelname)s %(message)s"}},
            "handlers": {"list": {"()": ListHandler, "filters": ["session"], "formatter": "plain"}},
            "loggers": {"app": {"handlers": ["list"], "level": "INFO", "propagate": False}},
        }
    )
    yield lines
    logging.getLogger("app").handlers.clear()


def test_sync_records_inside_and_outside(records: list[str]) -> None:
    log = logging.getLogger("app")
    log.info("before")
    with session("chat-1"):
        log.info("inside")
    log.info("after")
    assert records == ["no-session INFO before", "chat-1 INFO inside", "no-session INFO after"]


def test_async_records_keep_their_own_session(records: list[str]) -> None:
    log = logging.getLogger("app")

    async def turn(name: str) -> None:
        with session(name):
            await asyncio.sleep(0.01)
            log.info("turn")

    async def main() -> None:
        await asyncio.gather(turn("a"), turn("b"))

    asyncio.run(main())
    assert sorted(records) == ["a INFO turn", "b INFO turn"]


def test_default_dash_and_never_drops() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert SessionIdFilter().filter(record) is True
    assert record.__dict__["session_id"] == "-"
