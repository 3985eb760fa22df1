"""The OpenTelemetry SDK span processor: every span started in a session carries it."""

from __future__ import annotations

import weakref

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from session_mw._bridge import SESSION_ID
from session_mw._scope import current_session

__all__ = ["SessionSpanProcessor", "add_session_processor"]


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
        # The span's keys as a set: `in` on the SDK's attribute mapping raises and catches a
        # KeyError per absent key, which cost 10,000 instructions a span (span_processor).
        attributes = span.attributes
        present = set(attributes) if attributes else set()
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


_with_processor: weakref.WeakSet[TracerProvider] = weakref.WeakSet()


def add_session_processor(provider: object | None = None) -> TracerProvider:
    """Put a :class:`SessionSpanProcessor` on ``provider``, or on the global tracer provider.

    The one line for every setup, once the provider exists: Phoenix's ``register()``, the
    provider Langfuse's client creates (and makes global) or is given, your own. A provider that
    has one already is left as it is. Returns the provider.

    ::

        langfuse = Langfuse()
        add_session_processor()  # the provider Langfuse uses: every observation gets session.id
    """
    target = trace.get_tracer_provider() if provider is None else provider
    if not isinstance(target, TracerProvider):
        raise TypeError(
            f"{target!r} is not an OpenTelemetry SDK TracerProvider: pass the provider, or call "
            "add_session_processor() after the one your backend sets up (Phoenix's register(), "
            "Langfuse(), trace.set_tracer_provider(...))"
        )
    if target not in _with_processor:
        target.add_span_processor(SessionSpanProcessor())
        _with_processor.add(target)
    return target
