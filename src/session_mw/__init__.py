"""session-mw: one session per conversation, on every span, log record and outgoing call.

The core (this package) is :func:`session`, :func:`current_session`, :class:`Session`,
:func:`inject_headers`, :class:`SessionIdFilter` and the ASGI :class:`SessionMiddleware`.
Adapters and integrations, each imported on its own so that this package imports neither
Starlette, Flask, Django, any other framework, queue nor the OpenTelemetry SDK:

- ``session_mw.asgi`` (Starlette, FastAPI, any ASGI app), ``session_mw.wsgi`` (any WSGI app),
  ``session_mw.flask`` (the Flask extension), ``session_mw.django`` (Django's ``MIDDLEWARE``),
  ``session_mw.litestar`` (Litestar's middleware and plugin), ``session_mw.quart`` (the Quart
  extension), ``session_mw.falcon`` (Falcon's WSGI and ASGI apps);
- ``session_mw.celery``, ``session_mw.rq``, ``session_mw.huey``, ``session_mw.dramatiq``,
  ``session_mw.taskiq``, ``session_mw.arq`` (background jobs keep the publisher's session) and
  ``session_mw.threads`` (thread pools);
- ``session_mw.mcp`` (an agent's conversation reaches the MCP server's tools, any transport);
- ``session_mw.otel`` (the OpenTelemetry SDK span processor), ``session_mw.logs`` (logging and
  structlog), ``session_mw.clients`` and ``session_mw.propagation`` (outgoing calls).

Modules whose names start with ``_`` are internal.
"""

from importlib.metadata import PackageNotFoundError, version

from session_mw._scope import Session, current_session, session
from session_mw.asgi import SessionMiddleware
from session_mw.logs import SessionIdFilter
from session_mw.propagation import inject_headers

try:
    __version__ = version("session-mw")
except PackageNotFoundError:  # pragma: no cover  (a source tree on sys.path, not installed)
    __version__ = "0+unknown"

__all__ = [
    "Session",
    "SessionIdFilter",
    "SessionMiddleware",
    "__version__",
    "current_session",
    "inject_headers",
    "session",
]
