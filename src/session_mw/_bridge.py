"""What a session writes to OpenTelemetry: the context values OpenInference instrumentors copy
onto their spans (``session.id``, ``user.id``, ``metadata``), W3C baggage, and the server span.

It knows sessions only by their id and attributes, and nothing of adapters or of how sessions
are stored (that is :mod:`session_mw._scope`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import Token
from json.encoder import encode_basestring
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry.baggage import set_baggage
from opentelemetry.context import Context
from opentelemetry.trace import Span, get_current_span
from opentelemetry.util.types import AttributeValue

if TYPE_CHECKING:
    from session_mw._scope import Session

__all__ = ["METADATA", "SESSION_ID", "USER_ID", "attach", "detach", "mark_current_span"]

#: Span attributes and OpenTelemetry context keys, as OpenInference's ``SpanAttributes`` name them.
SESSION_ID = "session.id"
USER_ID = "user.id"
METADATA = "metadata"

#: The attributes spans and log records get the id under, unless configured otherwise: the key
#: OpenInference, Phoenix and Langfuse group on, and OpenTelemetry's GenAI conversation id (which
#: Logfire's scrubber lets through, and Langfuse and Weave read).
ID_ATTRIBUTES = (SESSION_ID, "gen_ai.conversation.id")

# What the span current at a request's start (OTel's server span) gets from the session.
_SPAN_ATTRIBUTES = ("url.path", "http.route", "user.id")


def attach(
    opened: Session, mark_span: bool, baggage: bool, id_attributes: tuple[str, ...]
) -> Token[Context]:
    """Attach an OpenTelemetry context that carries ``opened``; :func:`detach` takes the token.

    The context gets ``session.id``, ``user.id`` when the session has one, and the attributes
    known now merged into ``metadata`` (OpenInference reads ``metadata`` as a JSON string, fixed
    once it is attached: a route matched later is not in it, but on every span through the span
    processor). With ``baggage``, ``session.id`` also goes into W3C baggage, which OTel's
    propagator sends on every outgoing call.

    With ``mark_span``, the span current now (OTel's server span) gets the session id (under
    ``id_attributes``) and the request attributes. Now, not at close: OTel's ASGI middleware
    ends that span as soon as the last body byte is sent, before the app returns.
    """
    before = otel_context.get_current()
    if mark_span and before:  # an empty context holds no span: skip the lookup
        span = get_current_span(before)
        if span.is_recording():
            mark_span_with(span, opened.id, opened.attributes, id_attributes)
    values = {**before, SESSION_ID: opened.id}
    attributes = opened._attributes
    if attributes:
        values[METADATA] = _metadata(attributes, before.get(METADATA))
        user = attributes.get(USER_ID)
        if user is not None:
            values[USER_ID] = user
    context = Context(values)
    if baggage:
        context = set_baggage(SESSION_ID, opened.id, context)
    return otel_context.attach(context)


#: Detaches what :func:`attach` attached; logs rather than raises on failure.
detach = otel_context.detach


def mark_current_span(opened: Session, id_attributes: tuple[str, ...]) -> None:
    """Put the session on the span current now, if it records: for adapters whose server span
    starts inside the session (Flask's, or OTel's WSGI middleware placed inside)."""
    span = get_current_span()
    if span.is_recording():
        mark_span_with(span, opened.id, opened.attributes, id_attributes)


def mark_span_with(
    span: Span,
    session_id: str,
    attributes: Mapping[str, AttributeValue],
    id_attributes: tuple[str, ...],
) -> None:
    """Put the session id and the request attributes a server span lacks on ``span``; what it
    has already (set by the app or an instrumentation) stays."""
    present = getattr(span, "attributes", None) or {}
    missing: dict[str, AttributeValue] = {
        key: session_id for key in id_attributes if key not in present
    }
    for key in _SPAN_ATTRIBUTES:
        if key in attributes and key not in present:
            missing[key] = attributes[key]
    span.set_attributes(missing)


def _metadata(attributes: Mapping[str, AttributeValue], existing: object) -> str:
    """OpenInference's ``metadata`` context value: a JSON object, merged with what is there."""
    if isinstance(existing, str):
        try:
            earlier = json.loads(existing)
        except ValueError:
            earlier = None
        if not isinstance(earlier, dict):
            return existing  # not ours to rewrite: never clobber it
        return json.dumps({**attributes, **earlier})  # what was set before wins
    items = tuple(attributes.items())
    try:
        # A hit needs every value equal to a cached all-string value, hence a string: 1, 1.0
        # and True (equal as keys, encoded differently) never hit. A plain dict, not lru_cache
        # behind a type check: about 3,700 instructions less per request (benchmarks.instructions).
        cached = _encoded.get(items)
    except TypeError:  # a list value: not hashable, never cached
        return _encode(items)
    if cached is None:
        cached = _encode(items)
        if all(type(value) is str for _, value in items):
            if len(_encoded) >= _ENCODED_MAX:  # bounded: paths carrying ids cost a miss each
                _encoded.clear()
            _encoded[items] = cached
    return cached


def _encode(items: tuple[tuple[str, AttributeValue], ...]) -> str:
    # Written by hand: json.dumps() costs three times as much, and this runs on every request.
    return (
        "{"
        + ",".join(
            [
                f"{encode_basestring(key)}:"
                f"{encode_basestring(value) if type(value) is str else json.dumps(value)}"
                for key, value in items
            ]
        )
        + "}"
    )


# Most requests of a service repeat a few (path, method) pairs: each is encoded once.
_ENCODED_MAX = 1024
_encoded: dict[tuple[tuple[str, AttributeValue], ...], str] = {}
