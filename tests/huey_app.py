"""Huey tasks for the tests: they report the session they run in.

:class:`Tasks` defines them on any Huey (the tests make in-memory ones of their own). The
module's ``huey`` is the one a real ``huey_consumer tests.huey_app.huey`` runs: a RedisHuey on
``HUEY_REDIS_URL`` when that is set (the real-consumer test sets it), else in memory.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from huey import MemoryHuey, RedisHuey
from huey.exceptions import RetryTask
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from session_mw import SessionIdFilter, current_session, inject_headers
from session_mw.huey import install
from session_mw.otel import SessionSpanProcessor

NAME = "tests-huey"

logger = logging.getLogger("tests.huey_app")
#: The consumer's tracing, as an app sets it up: every span it starts gets the session.
tracing = TracerProvider()
tracing.add_span_processor(SessionSpanProcessor())
spans = InMemorySpanExporter()
tracing.add_span_processor(SimpleSpanProcessor(spans))


def whoami() -> dict[str, Any]:
    """What the task sees of its session: id, attributes, the OTel context value; ``id``
    ``None`` outside any. (Never ``None`` itself: Huey stores no result for that.)"""
    opened = current_session()
    if opened is None:
        return {"id": None}
    return {
        "id": opened.id,
        "attributes": dict(opened.attributes),
        "otel": otel_context.get_value("session.id"),
    }


def task(huey: Any, **settings: Any) -> Callable[[Callable[..., Any]], Any]:
    """``huey.task(**settings)``, typed (Huey ships no types)."""
    decorator: Callable[[Callable[..., Any]], Any] = huey.task(**settings)
    return decorator


class Tasks:
    """The tests' tasks, defined on ``huey`` (each Huey has its own registry)."""

    def __init__(self, huey: Any) -> None:
        self.huey = huey

        @task(huey)
        def report() -> dict[str, Any]:
            return whoami()

        @task(huey)
        def observed() -> dict[str, Any]:
            """What the rest of session-mw sees in a task: a log record, outgoing headers, a
            span."""
            record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, "task", (), None)
            SessionIdFilter().filter(record)
            with tracing.get_tracer(__name__).start_as_current_span("task-work") as span:
                pass
            attributes = getattr(span, "attributes", None) or {}
            return {
                "log": logging.Formatter("%(session_id)s").format(record),
                "headers": inject_headers({}),
                "span": attributes.get("session.id"),
            }

        @task(huey)
        def spawn() -> str:
            """Enqueues a task from inside a task: it keeps the task's session."""
            return str(report().id)

        @task(huey, retries=1, context=True)
        def retried(task: Any) -> dict[str, Any]:
            """Fails on its first run, then reports its session: the retry kept it."""
            if task.retries:
                raise RuntimeError("the first run fails")
            return whoami()

        @task(huey, context=True)
        def rescheduled(task: Any) -> dict[str, Any]:
            """Asks for a retry through the schedule on its first run (RetryTask counts
            itself in ``retries``: the first run is the one without an eta)."""
            if task.eta is None:
                raise RetryTask(delay=1)
            return whoami()

        @task(huey)
        def fails() -> None:
            raise RuntimeError("the task failed")

        @task(huey)
        def after(*previous: Any, **fields: Any) -> dict[str, Any]:
            """A pipeline's next step (``.then()``, given the result: a dict's items come as
            keywords) or error handler (``.error()``, given the exception): it runs in the
            session of the step before."""
            return whoami()

        self.report = report
        self.observed = observed
        self.spawn = spawn
        self.retried = retried
        self.rescheduled = rescheduled
        self.fails = fails
        self.after = after


def make(url: str | None) -> Any:
    return MemoryHuey(NAME) if url is None else RedisHuey(NAME, url=url)


#: For ``huey_consumer tests.huey_app.huey``: installed after its tasks were defined.
huey = make(os.environ.get("HUEY_REDIS_URL"))
tasks = Tasks(huey)
install(huey)
install(huey)  # a second call changes nothing
