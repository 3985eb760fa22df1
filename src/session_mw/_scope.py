"""The session scope: the one place that knows how the current session is stored.

A session lives in a :class:`contextvars.ContextVar`, so it is local to each thread and asyncio
task. Opening one also attaches it to the OpenTelemetry context (:mod:`session_mw._bridge`).
Adapters open and close sessions through :func:`open_session` and :func:`close_session`;
nothing else touches the context variable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue

from session_mw._bridge import ID_ATTRIBUTES, attach, detach
from session_mw._ids import generate_id

__all__ = ["Session", "close_session", "current_session", "open_session", "session"]

#: Works out attributes from the request on first read: a mapping once they are known, ``None``
#: while they are not (the app has not routed yet).
LateAttributes = Callable[[Any], Mapping[str, AttributeValue] | None]


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

    __slots__ = ("_attributes", "_late", "_request", "id")

    def __init__(
        self,
        id: str,
        attributes: dict[str, AttributeValue] | None = None,
        late: LateAttributes | None = None,
        request: object = None,
    ) -> None:
        self.id = id
        self._attributes = {} if attributes is None else attributes  # owned: callers hand it over
        # Attributes known only once the app has routed (the route template), worked out from
        # the request on read, until they are known: never on requests that nobody asks.
        self._late = late
        self._request = request

    @property
    def attributes(self) -> Mapping[str, AttributeValue]:
        if self._late is not None:
            self._settle()
        return self._attributes

    def _settle(self) -> None:
        """Work out the late attributes now, if they are known by now (for adapters whose
        framework forgets them later)."""
        late = self._late
        if late is not None:
            resolved = late(self._request)
            if resolved is not None:  # None: not known yet (the app has not routed); ask again
                self._late = self._request = None
                self._attributes.update(resolved)

    def __repr__(self) -> str:
        return f"Session(id={self.id!r}, attributes={dict(self.attributes)!r})"


# What open_session hands to close_session: the session and both tokens.
Opened = tuple[Session, Token["Session | None"], Token[Context]]

_current: ContextVar[Session | None] = ContextVar("session_mw.session", default=None)


def current_session() -> Session | None:
    """Return the open :class:`Session`, or ``None`` outside any session.

    >>> current_session() is None
    True
    """
    return _current.get()


def open_session(
    opened: Session,
    mark_span: bool = False,
    baggage: bool = False,
    id_attributes: tuple[str, ...] = ID_ATTRIBUTES,
) -> Opened:
    """Make ``opened`` the current session until :func:`close_session` is given the result;
    the other arguments as :func:`session_mw._bridge.attach` takes them."""
    return opened, _current.set(opened), attach(opened, mark_span, baggage, id_attributes)


def close_session(opened: Opened) -> None:
    """Restore whatever was current before the matching :func:`open_session`."""
    _, token, otel = opened
    try:
        detach(otel)
    finally:
        _current.reset(token)


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
