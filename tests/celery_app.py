"""A Celery app for the tests: its tasks report the session they run in.

In process (``memory://``) by default; the real-worker test points it at a Redis through
``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, Task, chain, group
from celery.result import GroupResult
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from session_mw import SessionIdFilter, current_session, inject_headers
from session_mw.celery import install
from session_mw.otel import SessionSpanProcessor

#: For every in-process test app: the memory broker polls for messages, at its default once a
#: second; and Celery 5.3 and 5.4 warn at every worker start unless told what Celery 6 does.
QUICK = {
    "broker_transport_options": {"polling_interval": 0.01},
    "broker_connection_retry_on_startup": True,
}

app = Celery(
    "tests.celery_app",
    broker=os.environ.get("CELERY_BROKER_URL", "memory://"),
    backend=os.environ.get("CELERY_RESULT_BACKEND", "cache+memory://"),
)
app.conf.update(QUICK, task_serializer="json", result_serializer="json", accept_content=["json"])
install(app)
install(app)  # a second call changes nothing

logger = logging.getLogger("tests.celery_app")
#: The worker's tracing, as an app sets it up: every span it starts gets the session.
tracing = TracerProvider()
tracing.add_span_processor(SessionSpanProcessor())
spans = InMemorySpanExporter()
tracing.add_span_processor(SimpleSpanProcessor(spans))


@app.task
def whoami() -> dict[str, Any] | None:
    """What the task sees of its session: id, attributes, the OTel context value."""
    opened = current_session()
    if opened is None:
        return None
    return {
        "id": opened.id,
        "attributes": dict(opened.attributes),
        "otel": otel_context.get_value("session.id"),
    }


@app.task
def observed() -> dict[str, Any]:
    """What the rest of session-mw sees in a task: a log record, outgoing headers, a span."""
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, "in a task", (), None)
    SessionIdFilter().filter(record)
    with tracing.get_tracer(__name__).start_as_current_span("task-work"):
        pass
    span = spans.get_finished_spans()[-1].attributes or {}
    return {
        "log": logging.Formatter("%(session_id)s").format(record),
        "headers": inject_headers({}),
        "span": span.get("session.id"),
    }


@app.task
def spawn() -> str:
    """Publishes a subtask from inside a task: it keeps the task's session."""
    return str(whoami.delay().id)


@app.task
def spawn_chain() -> str:
    return str(chain(whoami.si(), whoami.si()).delay().id)


@app.task
def spawn_group() -> list[str]:
    members = group(whoami.si(), whoami.si()).apply_async()
    assert isinstance(members, GroupResult)  # what a group's apply_async returns
    return [str(member.id) for member in members.results]


@app.task(bind=True, max_retries=1)
def retried(self: Task[Any, Any]) -> dict[str, Any] | None:
    """Fails once, then reports its session: the retry was published in it."""
    if self.request.retries == 0:
        raise self.retry(countdown=0)
    seen: dict[str, Any] | None = whoami()
    return seen


@app.task
def fails() -> None:
    raise RuntimeError("the task failed")
