from __future__ import annotations

import asyncio
import logging
import logging.config
from collections.abc import Iterator, MutableMapping
from typing import Any

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


def test_structlog_processor_inside_outside_sync_and_async() -> None:
    import structlog

    from session_mw.logs import add_session_id

    captured: list[dict[str, object]] = []

    def capture(logger: object, method: str, event_dict: MutableMapping[str, Any]) -> str:
        captured.append(dict(event_dict))
        return ""

    structlog.configure(
        processors=[add_session_id, capture],
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    try:
        log = structlog.get_logger()
        log.info("outside")
        with session("chat-7"):
            log.info("inside")
            log.info("explicit", session_id="kept")

        async def turn() -> None:
            with session("async-1"):
                await asyncio.sleep(0)
                log.info("async")

        asyncio.run(turn())
    finally:
        structlog.reset_defaults()
    assert [(e["event"], e.get("session_id")) for e in captured] == [
        ("outside", None),
        ("inside", "chat-7"),
        ("explicit", "kept"),
        ("async", "async-1"),
    ]
