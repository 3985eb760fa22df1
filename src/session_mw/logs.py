"""Log records that say which session they belong to: stdlib logging and structlog."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from session_mw._scope import current_session

__all__ = ["SessionIdFilter", "add_session_id"]


class SessionIdFilter(logging.Filter):
    """Sets ``record.session_id`` on every record, for ``%(session_id)s`` in a format.

    :param default: the value outside any session.

    It never drops a record. Attach it to a handler (so records from every logger get it)::

        handler.addFilter(SessionIdFilter())
        handler.setFormatter(logging.Formatter("%(session_id)s %(levelname)s %(message)s"))

    or from ``logging.config.dictConfig``::

        "filters": {"session": {"()": "session_mw.SessionIdFilter", "default": "-"}}
    """

    def __init__(self, default: str = "-") -> None:
        super().__init__()
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        opened = current_session()
        record.session_id = self.default if opened is None else opened.id
        return True


def add_session_id(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: adds ``session_id`` to every event logged inside a session.

    Events outside a session are left as they are; a ``session_id`` the caller set is kept::

        structlog.configure(processors=[add_session_id, structlog.processors.JSONRenderer()])
    """
    opened = current_session()
    if opened is not None:
        event_dict.setdefault("session_id", opened.id)
    return event_dict
