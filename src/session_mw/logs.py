"""Log records that say which session they belong to."""

from __future__ import annotations

import logging

from session_mw.scope import current_session

__all__ = ["SessionIdFilter"]


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
