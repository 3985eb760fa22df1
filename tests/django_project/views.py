"""Views that report what they see of their session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from opentelemetry import context as otel_context
from opentelemetry import trace
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from session_mw import current_session


def seen() -> dict[str, Any]:
    opened = current_session()
    if opened is None:
        return {"id": None}
    return {
        "id": opened.id,
        "attributes": dict(opened.attributes),
        "otel": otel_context.get_value("session.id"),
    }


def whoami(request: HttpRequest, **kwargs: Any) -> JsonResponse:
    return JsonResponse(seen())


async def awhoami(request: HttpRequest, **kwargs: Any) -> JsonResponse:
    await asyncio.sleep(0)
    return JsonResponse(seen())


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom")


def own_header(request: HttpRequest) -> HttpResponse:
    return HttpResponse("new conversation", headers={"X-Session-Id": "conv-from-the-app"})


def _event(n: int) -> str:
    opened = current_session()
    return f"data: {n}:{None if opened is None else opened.id}\n\n"


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def events() -> Iterator[str]:
        for n in range(3):
            yield _event(n)

    return StreamingHttpResponse(events(), content_type="text/event-stream")


async def astream(request: HttpRequest) -> StreamingHttpResponse:
    async def events() -> AsyncIterator[str]:
        for n in range(3):
            await asyncio.sleep(0)
            yield _event(n)

    return StreamingHttpResponse(events(), content_type="text/event-stream")


# The tracer provider the traced view starts its span on (a test sets it).
PROVIDER: trace.TracerProvider | None = None


def traced(request: HttpRequest) -> JsonResponse:
    """Starts a span as an LLM instrumentation would."""
    provider = PROVIDER or trace.get_tracer_provider()
    with provider.get_tracer("tests.django_project").start_as_current_span("llm"):
        return JsonResponse(seen())


class DrfWhoami(APIView):
    """A Django REST framework view."""

    def get(self, request: Request) -> Response:
        return Response(seen())


def traced_stream(request: HttpRequest) -> StreamingHttpResponse:
    """An LLM call and a tool call in the view, and one more span in each streamed chunk."""
    tracer = (PROVIDER or trace.get_tracer_provider()).get_tracer("tests.django_project")
    with tracer.start_as_current_span("llm"), tracer.start_as_current_span("tool"):
        pass

    def events() -> Iterator[str]:
        for n in range(2):
            with tracer.start_as_current_span(f"chunk {n}"):
                yield _event(n)

    return StreamingHttpResponse(events(), content_type="text/event-stream")
