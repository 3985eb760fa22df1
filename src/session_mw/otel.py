"""The OpenTelemetry SDK span processor: every span started in a session carries it."""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from session_mw.scope import SESSION_ID, current_session

__all__ = ["SessionSpanProcessor"]


class SessionSpanProcessor(SpanProcessor):
    """Sets ``session.id`` and the session's attributes on every span started in a session.

    It reads session-mw's own storage, not the OpenTelemetry context: OTel's ASGI and WSGI
    instrumentations attach a fresh context for their server span, which would hide a value a
    middleware placed outside them. So it works whichever side of them the middleware sits, and
    for spans from any instrumentation (manual, httpx, SQLAlchemy, OpenInference...). An attribute
    the span already has when it starts is never overwritten.

    ::

        provider = TracerProvider()
        provider.add_span_processor(SessionSpanProcessor())
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        opened = current_session()
        if opened is None:
            return
        present = span.attributes or {}
        missing = {key: value for key, value in opened.attributes.items() if key not in present}
        if SESSION_ID not in present:
            missing[SESSION_ID] = opened.id
        span.set_attributes(missing)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
