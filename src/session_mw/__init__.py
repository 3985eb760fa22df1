"""session-mw: one session per conversation, on every span, log record and outgoing call.

Importing this package imports neither Starlette, Flask nor the OpenTelemetry SDK: adapters that
need them live in ``session_mw.flask`` and ``session_mw.otel``.
"""

from session_mw._scope import Session, current_session, session
from session_mw.asgi import SessionMiddleware
from session_mw.logs import SessionIdFilter
from session_mw.propagation import inject_headers

__all__ = [
    "Session",
    "SessionIdFilter",
    "SessionMiddleware",
    "current_session",
    "inject_headers",
    "session",
]
