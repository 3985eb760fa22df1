"""A Dramatiq broker and actors for the tests: the actors report the session they run in.

A ``StubBroker`` in process by default; the real-worker test points it at a Redis through
``DRAMATIQ_REDIS_URL`` and runs ``dramatiq tests.dramatiq_app:broker``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO, CurrentMessage
from dramatiq.results import Results
from dramatiq.results.backends import StubBackend
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from session_mw import SessionIdFilter, current_session, inject_headers
from session_mw.dramatiq import SessionMiddleware
from session_mw.otel import SessionSpanProcessor

broker: dramatiq.Broker
_redis = os.environ.get("DRAMATIQ_REDIS_URL")
if _redis:
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.results.backends.redis import RedisBackend

    # Dramatiq's Redis broker, backend and Results middleware have untyped constructors.
    broker = RedisBroker(url=_redis)  # type: ignore[no-untyped-call]
    results: Any = RedisBackend(url=_redis)  # type: ignore[no-untyped-call]
else:
    broker = StubBroker()
    results = StubBackend()
broker.add_middleware(Results(backend=results, store_results=True))  # type: ignore[no-untyped-call]
broker.add_middleware(CurrentMessage())
broker.add_middleware(AsyncIO())
# The session middleware is added below, once the actors are declared: the order does not matter.

logger = logging.getLogger("tests.dramatiq_app")
#: The worker's tracing, as an app sets it up: every span it starts gets the session.
tracing = TracerProvider()
tracing.add_span_processor(SessionSpanProcessor())
spans = InMemorySpanExporter()
tracing.add_span_processor(SimpleSpanProcessor(spans))

#: What the callback actors saw, in process (the stub broker's tests read it).
reports: list[dict[str, Any]] = []


def seen() -> dict[str, Any] | None:
    """What an actor sees of its session: id, attributes, the OTel context value."""
    opened = current_session()
    if opened is None:
        return None
    return {
        "id": opened.id,
        "attributes": dict(opened.attributes),
        "otel": otel_context.get_value("session.id"),
    }


@dramatiq.actor(broker=broker, max_retries=0)
def whoami() -> dict[str, Any] | None:
    return seen()


@dramatiq.actor(broker=broker, max_retries=0)
async def whoami_async() -> dict[str, Any] | None:
    await asyncio.sleep(0)  # the session is kept across awaits on Dramatiq's event loop thread
    return seen()


@dramatiq.actor(broker=broker, max_retries=0)
def observed() -> dict[str, Any]:
    """What the rest of session-mw sees in an actor: a log record, outgoing headers, a span."""
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, "in an actor", (), None)
    SessionIdFilter().filter(record)
    with tracing.get_tracer(__name__).start_as_current_span("actor-work") as span:
        pass
    attributes = getattr(span, "attributes", None) or {}
    return {
        "log": logging.Formatter("%(session_id)s").format(record),
        "headers": inject_headers({}),
        "span": attributes.get("session.id"),
    }


@dramatiq.actor(broker=broker, max_retries=0)
def spawn() -> dict[str, Any]:
    """Sends a message from inside an actor: it keeps the actor's session."""
    return whoami.send().asdict()


@dramatiq.actor(broker=broker, max_retries=1, min_backoff=1, max_backoff=10)
def retried() -> dict[str, Any] | None:
    """Fails once, then reports its session: the retry is the same message, sent again."""
    message = CurrentMessage.get_current_message()
    assert message is not None
    if not message.options.get("retries"):
        raise RuntimeError("the first try fails")
    return seen()


@dramatiq.actor(broker=broker, max_retries=0)
def fails() -> None:
    raise RuntimeError("the actor failed")


@dramatiq.actor(broker=broker, max_retries=0)
def report(message: dict[str, Any], outcome: Any) -> None:
    """An ``on_success`` / ``on_failure`` callback: records the session it runs in."""
    reports.append({"after": message["actor_name"], "seen": seen()})


broker.add_middleware(SessionMiddleware())
