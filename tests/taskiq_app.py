"""A taskiq broker and tasks for the tests: the tasks report the session they run in.

An ``InMemoryBroker`` in process by default, running each task in place (in the kicker's
asyncio task, the strictest place for a leak); the real-worker test points it at a Redis through
``TASKIQ_REDIS_URL`` and runs ``taskiq worker tests.taskiq_app:broker``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from taskiq import AsyncBroker, Context, InMemoryBroker, SimpleRetryMiddleware, TaskiqDepends

from session_mw import SessionIdFilter, current_session, inject_headers
from session_mw.otel import SessionSpanProcessor
from session_mw.taskiq import SessionMiddleware

broker: AsyncBroker
_redis = os.environ.get("TASKIQ_REDIS_URL")
if _redis:
    from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

    broker = ListQueueBroker(_redis).with_result_backend(RedisAsyncResultBackend(_redis))
else:
    broker = InMemoryBroker(await_inplace=True)
# Retries kick the failed message again from on_error, while its session is still open.
broker.with_middlewares(SimpleRetryMiddleware(default_retry_count=2))
# The session middleware is added below, once the tasks are defined: the order does not matter.

logger = logging.getLogger("tests.taskiq_app")
#: The worker's tracing, as an app sets it up: every span it starts gets the session.
tracing = TracerProvider()
tracing.add_span_processor(SessionSpanProcessor())
spans = InMemorySpanExporter()
tracing.add_span_processor(SimpleSpanProcessor(spans))


def seen() -> dict[str, Any] | None:
    """What a task sees of its session: id, attributes, the OTel context value."""
    opened = current_session()
    if opened is None:
        return None
    return {
        "id": opened.id,
        "attributes": dict(opened.attributes),
        "otel": otel_context.get_value("session.id"),
    }


@broker.task
async def whoami() -> dict[str, Any] | None:
    await asyncio.sleep(0)
    return seen()


@broker.task
def whoami_sync() -> dict[str, Any] | None:
    """A sync task: taskiq runs it in its thread pool, in a copy of the task's context."""
    return seen()


@broker.task
async def observed() -> dict[str, Any]:
    """What the rest of session-mw sees in a task: a log record, outgoing headers, a span."""
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, "in a task", (), None)
    SessionIdFilter().filter(record)
    with tracing.get_tracer(__name__).start_as_current_span("task-work") as span:
        pass
    attributes = getattr(span, "attributes", None) or {}
    return {
        "log": logging.Formatter("%(session_id)s").format(record),
        "headers": inject_headers({}),
        "span": attributes.get("session.id"),
    }


@broker.task
async def spawn() -> str:
    """Kicks a task from inside a task: it keeps the task's session."""
    return (await whoami.kiq()).task_id


#: taskiq's dependency marker for the message's Context (a default read from a module variable).
THE_CONTEXT: Any = TaskiqDepends()


@broker.task(retry_on_error=True, max_retries=2)
async def retried(context: Context = THE_CONTEXT) -> dict[str, Any] | None:
    """Fails once, then reports its session: the retry was kicked with the message's labels."""
    if not context.message.labels.get("_retries"):
        raise RuntimeError("the first try fails")
    return seen()


@broker.task
async def fails() -> None:
    raise RuntimeError("the task failed")


broker.with_middlewares(SessionMiddleware())
