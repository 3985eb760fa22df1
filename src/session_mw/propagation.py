"""Carrying the session to downstream services."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TypeVar

from session_mw._scope import current_session

__all__ = ["inject_headers"]

H = TypeVar("H", bound=MutableMapping[str, str])


def inject_headers(headers: H, *, header_name: str = "X-Session-Id") -> H:
    """Add the current session id to an outgoing request's headers and return them.

    :param headers: the outgoing request's header mapping; changed in place.
    :param header_name: the header the downstream service reads.

    Outside a session the headers are returned unchanged.

    >>> from session_mw import session
    >>> with session("chat-42"):
    ...     inject_headers({"Accept": "application/json"})
    {'Accept': 'application/json', 'X-Session-Id': 'chat-42'}
    """
    opened = current_session()
    if opened is not None:
        headers[header_name] = opened.id
    return headers
