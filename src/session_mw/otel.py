"""The OpenTelemetry SDK processors: every span and log record made in a session carries it."""

from __future__ import annotations

import weakref
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.util.types import AttributeValue

from session_mw._bridge import ID_ATTRIBUTES
from session_mw._options import from_keywords
from session_mw._scope import current_session

__all__ = [
    "ID_ATTRIBUTES",
    "SessionLogRecordProcessor",
    "SessionSpanProcessor",
    "add_session_processor",
]


def _checked(id_attributes: Sequence[str], owner: str) -> tuple[str, ...]:
    return from_keywords({"id_attributes": id_attributes}, owner).id_attributes


def _missing(
    present: Mapping[str, object] | None, id_attributes: tuple[str, ...]
) -> dict[str, AttributeValue] | None:
    """What the current session adds to something that has ``present``: its id under every
    name of ``id_attributes`` and its attributes, none that is there already; ``None`` outside a
    session."""
    opened = current_session()
    if opened is None:
        return None
    # The keys as a set: `in` on the SDK's attribute mapping raises and catches a KeyError per
    # absent key, which cost 10,000 instructions a span (span_processor).
    keys = set(present) if present else set()
    missing = {key: value for key, value in opened.attributes.items() if key not in keys}
    for name in id_attributes:
        if name not in keys:
            missing[name] = opened.id
    return missing


class SessionSpanProcessor(SpanProcessor):
    """Sets the session id and the session's attributes on every span started in a session.

    :param id_attributes: the attributes the id goes under: by default ``session.id``
        (OpenInference, Phoenix, Langfuse) and ``gen_ai.conversation.id`` (OpenTelemetry's GenAI
        conventions; Logfire, Langfuse, Weave). Add a backend's own, or leave one out.

    It reads session-mw's own storage, not the OpenTelemetry context: OTel's ASGI and WSGI
    instrumentations attach a fresh context for their server span, which would hide a value a
    middleware placed outside them. So it works whichever side of them the middleware sits, and
    for spans from any instrumentation (manual, httpx, SQLAlchemy, OpenInference...). An attribute
    the span already has when it starts is never overwritten (a sub-agent's own conversation).

    ::

        provider = TracerProvider()
        provider.add_span_processor(SessionSpanProcessor())
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    """

    def __init__(self, id_attributes: Sequence[str] = ID_ATTRIBUTES) -> None:
        self._names = _checked(id_attributes, "SessionSpanProcessor")

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        missing = _missing(span.attributes, self._names)
        if missing:
            span.set_attributes(missing)

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class SessionLogRecordProcessor(LogRecordProcessor):
    """Sets the session id and the session's attributes on every OpenTelemetry log record
    emitted in a session: records from the SDK's loggers, and stdlib ``logging`` records bridged
    through the SDK's ``LoggingHandler``. A backend then joins a conversation's logs to its
    traces by the same key.

    :param id_attributes: as :class:`SessionSpanProcessor`'s.

    Add it before the processor that exports, which may export a record as soon as it gets it::

        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(SessionLogRecordProcessor())
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))

    An attribute the record already has is never overwritten.
    """

    def __init__(self, id_attributes: Sequence[str] = ID_ATTRIBUTES) -> None:
        self._names = _checked(id_attributes, "SessionLogRecordProcessor")

    def on_emit(self, log_record: Any) -> None:
        # The SDK hands over a ReadWriteLogRecord (older SDKs: a LogData), which holds the record.
        record = getattr(log_record, "log_record", log_record)
        attributes: MutableMapping[str, Any] | None = record.attributes
        missing = _missing(attributes, self._names)
        if not missing:
            return
        if attributes is None:
            record.attributes = missing
            return
        try:
            attributes.update(missing)
        except TypeError:  # an immutable mapping (older SDKs): a merged copy instead
            record.attributes = {**missing, **attributes}

    emit = on_emit  # its name in older SDKs (1.20 among them), which hand over a LogData

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_with_processor: weakref.WeakSet[TracerProvider] = weakref.WeakSet()


def add_session_processor(
    provider: object | None = None, id_attributes: Sequence[str] = ID_ATTRIBUTES
) -> TracerProvider:
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
        target.add_span_processor(SessionSpanProcessor(id_attributes))
        _with_processor.add(target)
    return target
