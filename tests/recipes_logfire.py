"""The Logfire recipe (docs/backends.md), served by ``uvicorn --factory``: each factory is one
process's whole Logfire set-up, as ``logfire.configure()`` sets global state.

Logfire's scrubber redacts every attribute whose key matches one of its patterns, ``session``
among them, and keeps a list of safe keys, ``gen_ai.conversation.id`` among them
(``logfire/_internal/scrubbing.py``: ``DEFAULT_PATTERNS``, ``BaseScrubber.SAFE_KEYS``). So the id
arrives under ``gen_ai.conversation.id`` as it is, and under ``session.id`` only with a scrubbing
callback that lets it through: :func:`keep_session_ids`.

Nothing goes to Logfire (``send_to_logfire=False``): the spans Logfire would send leave through
the OTLP exporter Logfire adds when ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set, behind the
same scrubber as its own exporter (``logfire/_internal/config.py``), to the test's receiver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from opentelemetry import trace

from session_mw.otel import ID_ATTRIBUTES, SessionSpanProcessor
from tests.recipes_chat import chat_app

# Logfire needs OpenTelemetry >= 1.39: imported where used, so that the lowest run (which
# deselects these tests) can still import this module for its doctests.
if TYPE_CHECKING:
    import logfire

_ID_PATHS = {("attributes", name) for name in ID_ATTRIBUTES}


def keep_session_ids(match: logfire.ScrubMatch) -> Any:
    """A ``logfire.ScrubbingOptions`` callback that lets session-mw's ids through: a session id
    is no secret (the client sends it and gets it back in a header), but its key, ``session.id``,
    matches Logfire's default pattern ``session``. Every other match is scrubbed as before
    (Logfire redacts what the callback returns None for)."""
    return match.value if match.path in _ID_PATHS else None


def _serve(scrubbing: Any) -> FastAPI:
    import logfire

    logfire.configure(
        send_to_logfire=False,
        console=False,
        metrics=False,
        service_name="chat",
        scrubbing=scrubbing,
        additional_span_processors=[SessionSpanProcessor()],
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        logfire.shutdown()  # flush what is still queued

    def log_turn(message: str) -> None:
        logfire.info("turn: {message}", message=message)  # a log in Logfire: a span

    # logfire.configure() made its tracer provider the global one.
    app = chat_app(trace.get_tracer_provider(), ID_ATTRIBUTES, lifespan, log_turn)
    logfire.instrument_fastapi(app)
    return app


def create_app() -> FastAPI:
    """The recipe: session-mw's default keys, ``session.id`` let through the scrubber."""
    import logfire

    return _serve(logfire.ScrubbingOptions(callback=keep_session_ids))


def create_app_default_scrubbing() -> FastAPI:
    """Logfire's default scrubbing with session-mw's default keys: what the recipe changes."""
    return _serve(None)
