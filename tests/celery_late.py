"""A Celery app that calls ``install(app)`` late: in ``worker_process_init``, where
OpenTelemetry's documentation sets up Celery's instrumentation. Celery sends it in each pool
process after it built the tracers of the app's tasks.

For the real-worker test (``celery -A tests.celery_late worker --pool prefork``), with
``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND`` pointing at its Redis.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init
from opentelemetry import context as otel_context

from session_mw import current_session
from session_mw.celery import install

app = Celery(
    "tests.celery_late",
    broker=os.environ.get("CELERY_BROKER_URL", "memory://"),
    backend=os.environ.get("CELERY_RESULT_BACKEND", "cache+memory://"),
)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])


@app.task(name="late.report")
def report() -> dict[str, Any]:
    """The session the task runs in, and the OpenTelemetry context value ``session.id``."""
    opened = current_session()
    return {
        "id": None if opened is None else opened.id,
        "otel": otel_context.get_value("session.id"),
    }


@worker_process_init.connect(weak=False)
def install_in_the_pool_process(**_: Any) -> None:
    install(app)
