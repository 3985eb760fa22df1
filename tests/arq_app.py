"""arq worker settings and job functions for the tests: the functions report their session.

The real-worker test runs ``arq tests.arq_app.WorkerSettings`` with ``ARQ_REDIS_URL`` pointing at
its Redis; the in-process tests run a ``Worker`` made from these settings in burst mode.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, ClassVar

from arq import Retry, func
from arq.connections import RedisSettings
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from session_mw import SessionIdFilter, current_session, inject_headers
from session_mw.arq import enqueue_job, install
from session_mw.otel import SessionSpanProcessor

logger = logging.getLogger("tests.arq_app")
#: The worker's tracing, as an app sets it up: every span it starts gets the session.
tracing = TracerProvider()
tracing.add_span_processor(SessionSpanProcessor())
spans = InMemorySpanExporter()
tracing.add_span_processor(SimpleSpanProcessor(spans))


def seen() -> dict[str, Any] | None:
    """What a job sees of its session: id, attributes, the OTel context value."""
    opened = current_session()
    if opened is None:
        return None
    return {
        "id": opened.id,
        "attributes": dict(opened.attributes),
        "otel": otel_context.get_value("session.id"),
    }


async def whoami(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> dict[str, Any] | None:
    """Also reports the arguments it was given: the session's is never among them."""
    await asyncio.sleep(0)
    found = seen()
    return None if found is None else {**found, "args": list(args), "kwargs": kwargs}


async def observed(ctx: dict[Any, Any]) -> dict[str, Any]:
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


async def spawn(ctx: dict[Any, Any]) -> str:
    """Enqueues a job from inside a job: it keeps the job's session."""
    job = await enqueue_job(ctx["redis"], "whoami")
    assert job is not None
    return job.job_id


async def retried(ctx: dict[Any, Any]) -> dict[str, Any] | None:
    """Asks to be run again once, then reports its session: arq runs the same job again."""
    if ctx["job_try"] == 1:
        raise Retry(defer=0.01)
    found = seen()
    return None if found is None else {**found, "try": ctx["job_try"]}


async def fails(ctx: dict[Any, Any]) -> None:
    raise RuntimeError("the job failed")


class WorkerSettings:
    functions: ClassVar[list[Any]] = [
        whoami,
        observed,
        spawn,
        func(retried, max_tries=2),
        func(fails, max_tries=1),
    ]
    redis_settings = RedisSettings.from_dsn(os.environ.get("ARQ_REDIS_URL", "redis://127.0.0.1"))
    poll_delay = 0.01
    max_jobs = 2


install(WorkerSettings)  # once the functions are listed
install(WorkerSettings)  # a second call changes nothing
