"""The session scope: the one place that knows how the current session is stored.

A session lives in a :class:`contextvars.ContextVar` (so it is local to each thread and asyncio
task) and, while it is open, the OpenTelemetry context also carries ``session.id`` under the key
that OpenInference instrumentors read. Adapters open and close sessions through
:func:`open_session` and :func:`close_session`; nothing else touches the context variables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from json.encoder import encode_basestring

from opentelemetry import context as otel_context
from opentelemetry.baggage import set_baggage
from opentelemetry.context import Context
from opentelemetry.trace import Span, get_current_span
from opentelemetry.util.types import AttributeValue

from session_mw.ids import generate_id

__all__ = ["SESSION_ID", "Session", "current_session", "session"]

#: Span attributes and OpenTelemetry context keys, as OpenInference's ``SpanAttributes`` name them.
SESSION_ID = "session.id"
USER_ID = "user.id"
METADATA = "metadata"

#: Works out attributes on first read: a mapping once they are known, ``None`` while they are not.
LateAttributes = Callable[[], Mapping[str, AttributeValue] | None]


class Session:
    """An open session.

    :param id: the session id, echoed to clients and set as ``session.id`` on spans.
    :param attributes: attributes copied onto every span started in the session; the session
        takes ownership of the dict.

    ``attributes`` is read-only for users; adapters add ``http.route`` once routing has matched.

    >>> with session("chat-42", attributes={"app.tenant": "acme"}) as s:
    ...     current_session() is s, s.attributes["app.tenant"]
    (True, 'acme')
    """

    __slots__ = ("_attributes", "_late", "id")

    def __init__(
        self,
        id: str,
        attributes: dict[str, AttributeValue] | None = None,
        late: LateAttributes | None = None,
    ) -> None:
        self.id = id
        self._attributes = {} if attributes is None else attributes  # owned: callers hand it over
        # Attributes that cost something to work out, or are known only once the app has routed
        # (the route template): resolved on read, until they are known, not on every request.
        self._late = late

    @property
    def attributes(self) -> Mapping[str, AttributeValue]:
        late = self._late
        if late is not None:
            resolved = late()
            if resolved is not None:  # None: not known yet (the app has not routed); ask again
                self._late = None
                self._attributes.update(resolved)
        return self._attributes

    def _set_attribute(self, key: str, value: AttributeValue) -> None:
        self._attributes[key] = value

    def __repr__(self) -> str:
        return f"Session(id={self.id!r}, attributes={dict(self.attributes)!r})"


# What open_session hands to close_session: the session and both tokens.
_Opened = tuple[Session, Token["Session | None"], Token[Context]]

# What the span current at a request's start (OTel's server span) gets from the session.
_SPAN_ATTRIBUTES = ("url.path", "http.route", "user.id")

_current: ContextVar[Session | None] = ContextVar("session_mw.session", default=None)


def current_session() -> Session | None:
    """Return the open :class:`Session`, or ``None`` outside any session.

    >>> current_session() is None
    True
    """
    return _current.get()


def open_session(opened: Session, *, mark_span: bool = False, baggage: bool = False) -> _Opened:
    """Make ``opened`` the current session until :func:`close_session` is given the result.

    The OTel context gets the values OpenInference instrumentors copy onto their spans:
    ``session.id``, ``user.id`` when the session has one, and the session's attributes merged
    into ``metadata``. With ``baggage``, ``session.id`` also goes into W3C baggage, which OTel's
    propagator sends on every outgoing call.

    With ``mark_span``, the span current now (OTel's server span) gets the session id and the
    request attributes. Now, not at close: OTel's ASGI middleware ends that span as soon as the
    last body byte is sent, before the app returns.
    """
    before = otel_context.get_current()
    if mark_span and before:  # an empty context holds no span: skip the lookup
        span = get_current_span(before)
        if span.is_recording():
            mark_span_with(span, opened)
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
    return opened, _current.set(opened), otel_context.attach(context)


def close_session(opened: _Opened) -> None:
    """Restore whatever was current before the matching :func:`open_session`."""
    _, token, otel = opened
    try:
        otel_context.detach(otel)  # logs rather than raises on failure
    finally:
        _current.reset(token)


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


def mark_current_span(opened: Session) -> None:
    """Put the session on the span current now, if it records: for adapters whose server span
    starts inside the session (Flask's, or OTel's WSGI middleware placed inside)."""
    span = get_current_span()
    if span.is_recording():
        mark_span_with(span, opened)


def mark_span_with(span: Span, opened: Session) -> None:
    """Put the session id and the request attributes a server span lacks on ``span``."""
    attributes = opened.attributes
    span.set_attribute(SESSION_ID, opened.id)
    for key in _SPAN_ATTRIBUTES:
        if key in attributes:
            span.set_attribute(key, attributes[key])


@contextmanager
def session(
    id: str | None = None, *, attributes: Mapping[str, AttributeValue] | None = None
) -> Iterator[Session]:
    """Open a session for the length of a ``with`` block, in sync or async code.

    :param id: the session id; a new UUID4 string when ``None``.
    :param attributes: attributes to put on every span started in the session.

    Sessions nest: the innermost is current, and the outer one is current again on exit.

    >>> with session("outer"):
    ...     with session() as inner:
    ...         len(inner.id)
    ...     current_session().id
    36
    'outer'
    """
    opened = Session(generate_id() if id is None else id, dict(attributes) if attributes else None)
    token = open_session(opened)
    try:
        yield opened
    finally:
        close_session(token)
