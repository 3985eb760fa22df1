"""The W&B Weave recipe (docs/backends.md), served by ``uvicorn --factory``: a plain OTLP
exporter, as Weave's docs set it up; Weave's SDK is not needed.

Weave's OTLP endpoint (``/otel/v1/traces``) puts a span in a thread by ``wandb.thread_id`` and
makes it a turn of that thread (a row in the Threads view) when ``wandb.is_turn`` is true
(https://docs.wandb.ai/weave/guides/tracking/otel, "Organize OTel traces into threads"; in
Weave's trace server, ``WB_KEYS`` in ``weave/trace_server/opentelemetry/constants.py`` and
``Span.to_call`` in ``python_spans.py``: ``turn_id`` only with a ``thread_id`` and a truthy
``is_turn``). The turn is the request: its server span, marked by the FastAPI instrumentation's
server request hook; nested spans carry the thread id and no turn mark, as Weave's docs do.
Weave's Agents endpoint (``/agents/otel/v1/traces``) groups turns by ``gen_ai.conversation.id``
(https://docs.wandb.ai/weave/guides/tracking/trace-agents-otel), one of session-mw's default
keys: the recipe keeps them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span

from session_mw.otel import ID_ATTRIBUTES as DEFAULT_ID_ATTRIBUTES
from session_mw.otel import SessionSpanProcessor
from tests.recipes_chat import chat_app

#: session-mw's default keys (``gen_ai.conversation.id`` for the Agents view) and Weave's thread.
ID_ATTRIBUTES = [*DEFAULT_ID_ATTRIBUTES, "wandb.thread_id"]


def mark_turn(span: Span, scope: dict[str, Any]) -> None:
    """The FastAPI instrumentation's ``server_request_hook``: each request is one turn."""
    span.set_attribute("wandb.is_turn", True)


def create_app() -> FastAPI:
    base_url = os.environ["WANDB_BASE_URL"]  # https://trace.wandb.ai in production
    exporter = OTLPSpanExporter(
        endpoint=f"{base_url}/otel/v1/traces",
        headers={"wandb-api-key": os.environ["WANDB_API_KEY"]},
    )
    resource = Resource({"wandb.entity": "acme", "wandb.project": "chat"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SessionSpanProcessor(id_attributes=ID_ATTRIBUTES))
    provider.add_span_processor(BatchSpanProcessor(exporter))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        provider.shutdown()  # flush what is still queued

    app = chat_app(provider, ID_ATTRIBUTES, lifespan)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, server_request_hook=mark_turn)
    return app
