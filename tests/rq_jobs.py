"""RQ jobs for the tests: they report the session they run in.

Importable by the in-process workers of tests/test_rq.py and by real ``rq worker`` processes
(PYTHONPATH at the repository root), which find the functions by their dotted names.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis import Redis
from rq import get_current_job
from rq.job import Job

from session_mw import SessionIdFilter, current_session, inject_headers
from session_mw.otel import SessionSpanProcessor
from session_mw.rq import SessionJob, SessionQueue

#: The secret of SignedJob: ids signed with it pass, others are refused.
SECRET = "a-secret-of-32-characters-or-so!"

logger = logging.getLogger("tests.rq_jobs")
#: The worker's tracing, as an app sets it up: every span it starts gets the session.
tracing = TracerProvider()
tracing.add_span_processor(SessionSpanProcessor())
spans = InMemorySpanExporter()
tracing.add_span_processor(SimpleSpanProcessor(spans))


class SignedJob(SessionJob):
    """Accepts only ids signed with the tests' secret (``rq worker --job-class``)."""

    secret = SECRET


def whoami() -> dict[str, Any] | None:
    """What the job sees of its session: id, attributes, the OTel context value."""
    opened = current_session()
    if opened is None:
        return None
    return {
        "id": opened.id,
        "attributes": dict(opened.attributes),
        "otel": otel_context.get_value("session.id"),
    }


async def whoami_async() -> dict[str, Any] | None:
    await asyncio.sleep(0)  # a real await: the body runs as a task of RQ's event loop
    return whoami()


def observed() -> dict[str, Any]:
    """What the rest of session-mw sees in a job: a log record, outgoing headers, a span."""
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, "in a job", (), None)
    SessionIdFilter().filter(record)
    with tracing.get_tracer(__name__).start_as_current_span("job-work") as span:
        pass
    attributes = getattr(span, "attributes", None) or {}
    return {
        "log": logging.Formatter("%(session_id)s").format(record),
        "headers": inject_headers({}),
        "span": attributes.get("session.id"),
    }


def _queue() -> SessionQueue:
    job = get_current_job()
    assert job is not None
    return SessionQueue(job.origin, connection=job.connection, job_class=type(job))


def spawn() -> str:
    """Enqueues a job from inside a job: it keeps the job's session."""
    return _queue().enqueue(whoami).id


def spawn_after() -> str:
    """Enqueues a dependent pair from inside a job: the dependent keeps the session too."""
    queue = _queue()
    first = queue.enqueue(whoami)
    return queue.enqueue(whoami, depends_on=first).id


def retried() -> dict[str, Any] | None:
    """Fails on its first run (enqueued with ``Retry(max=1)``), then reports its session."""
    job = get_current_job()
    assert job is not None
    if job.retries_left:
        raise RuntimeError("the first run fails")
    return whoami()


def fails() -> None:
    raise RuntimeError("the job failed")


def enqueue_on_success(job: Job, connection: Redis, result: Any) -> None:
    """An ``on_success`` callback: what it enqueues keeps the job's session."""
    queue = SessionQueue(job.origin, connection=connection, job_class=type(job))
    _record(job, connection, {"seen": whoami(), "child": queue.enqueue(whoami).id})


def record_on_failure(job: Job, connection: Redis, *exc_info: Any) -> None:
    """An ``on_failure`` callback: it runs in the job's session."""
    _record(job, connection, {"seen": whoami()})


def record_on_stopped(job: Job, connection: Redis) -> None:
    """An ``on_stopped`` callback: it runs in the job's session."""
    _record(job, connection, {"seen": whoami()})


def _record(job: Job, connection: Redis, seen: dict[str, Any]) -> None:
    connection.set(callback_key(job), json.dumps(seen))


def callback_key(job: Job) -> str:
    """Where a callback of ``job`` records what it saw."""
    return f"tests:callback:{job.id}"


def callback_seen(job: Job) -> Any:
    recorded = job.connection.get(callback_key(job))
    # redis-py types a sync client's replies as maybe-awaitable (before 6): check what came back.
    assert isinstance(recorded, bytes), f"no callback of {job.id} ran"
    return json.loads(recorded)
