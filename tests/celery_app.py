"""A Celery app for the tests: its tasks report the session they run in.

In process (``memory://``) by default; the real-worker test points it at a Redis through
``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND``. Some of its tasks are made before
``install(app)``, as applications do without meaning to: ``install`` reaches them all.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, Task, chain, group, shared_task
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


def report() -> dict[str, Any]:
    """What a task sees: its session's id and attributes (``None`` and ``{}`` without one), and
    the OpenTelemetry context value ``session.id``."""
    opened = current_session()
    return {
        "id": None if opened is None else opened.id,
        "attributes": {} if opened is None else dict(opened.attributes),
        "otel": otel_context.get_value("session.id"),
    }


# Made before install(app) below.


@app.task
def early() -> dict[str, Any]:
    """Evaluated before install, below (as pytest collection, or a module that reads a task's
    name at import, does): made with Celery's plain task class."""
    return report()


class Audited(Task):  # type: ignore[type-arg]
    """A task base class of the application's own, with a ``__call__`` of its own."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        opened = current_session()  # the session is open around this class's __call__ too
        return {
            "audited in": None if opened is None else opened.id,
            **super().__call__(*args, **kwargs),
        }


@app.task(base=Audited)
def audited() -> dict[str, Any]:
    return report()


@shared_task(name="tests.celery_app.shared")
def shared() -> dict[str, Any]:
    """Every app finalized from now on makes it, in this process: this one after install,
    others (tests.test_celery) before theirs."""
    return report()


MADE_BEFORE_INSTALL = [early.name, audited.name]  # evaluated: both tasks exist now
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
    """What the task sees of its session (:func:`report`), ``None`` without one."""
    seen = report()
    return None if seen["id"] is None else seen


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
