"""The chat's background work: a Celery worker summarises a conversation, in its session.

Used when ``CELERY_BROKER_URL`` is set (the demo needs no broker otherwise). With a Redis on
127.0.0.1:6379, the worker and the chat service::

    export CELERY_BROKER_URL=redis://127.0.0.1:6379/0
    .venv/bin/celery -A examples.fastapi_app.tasks worker --pool threads
    scripts/example fastapi

then ``POST /summary`` with a conversation's ``X-Session-Id``: the worker's spans carry that
``session.id``, and Phoenix shows the summary in the conversation's session.
"""

from __future__ import annotations

import os
from functools import cache

from celery import Celery
from opentelemetry import trace

from examples.fastapi_app.telemetry import tracer_provider
from session_mw.celery import install

celery_app = Celery("chat", broker=os.environ.get("CELERY_BROKER_URL", "memory://"))
celery_app.conf.update(task_default_queue="chat", broker_connection_retry_on_startup=True)
install(celery_app)  # before the tasks: the session travels with every one of them


@cache
def tracer() -> trace.Tracer:
    """The worker's tracer, made on first use: in the process that runs the task."""
    return tracer_provider("chat-worker").get_tracer("examples.fastapi_app.tasks")


@celery_app.task(name="chat.summarize")
def summarize(messages: list[str]) -> str:
    """Stands in for an LLM call that summarises the conversation so far."""
    with tracer().start_as_current_span(
        "summarize-conversation",
        attributes={"openinference.span.kind": "CHAIN", "input.value": "\n".join(messages)},
    ) as span:
        summary = f"{len(messages)} messages, the first: {messages[0]!r}" if messages else ""
        span.set_attribute("output.value", summary)
        return summary
