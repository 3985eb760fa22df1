"""The Flask extension: the WSGI adapter, configured from ``app.config``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from session_mw.ids import DEFAULTS
from session_mw.wsgi import SessionMiddleware as WsgiSessionMiddleware

if TYPE_CHECKING:
    from flask import Flask
    from typing_extensions import Unpack

    from session_mw.ids import Options

__all__ = ["SessionMiddleware"]

EXTENSION = "session_mw"


class SessionMiddleware:
    """Flask extension: a session for every request, configured through ``app.config``.

    :param app: the Flask app; leave it out with an app factory and call :meth:`init_app`.
    :param options: defaults for ``SESSION_MW_HEADER_NAME``, ``SESSION_MW_GENERATOR``,
        ``SESSION_MW_VALIDATOR`` and ``SESSION_MW_ON_INVALID``; the app's config wins.

    It wraps ``app.wsgi_app``, so Flask's own error responses carry the header too; views and
    streamed responses (with or without ``stream_with_context``) see the session, and
    ``http.route`` is Flask's rule with its blueprint prefix (``/api/chat/<int:cid>``).

    With an app factory::

        sessions = SessionMiddleware()

        def create_app() -> Flask:
            app = Flask(__name__)
            app.config["SESSION_MW_HEADER_NAME"] = "X-Session-Id"
            sessions.init_app(app)
            return app

    The config is read when ``init_app`` runs: set it before.
    """

    def __init__(self, app: Flask | None = None, **options: Unpack[Options]) -> None:
        self._defaults: dict[str, Any] = {**DEFAULTS, **options}
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Wrap ``app.wsgi_app`` with the WSGI adapter, configured from ``app.config``."""
        if EXTENSION in app.extensions:
            raise RuntimeError(
                f"session-mw is already registered on the Flask app {app.name!r}: "
                "call SessionMiddleware(app) or init_app(app) once per app"
            )
        settings = {
            option: app.config.setdefault(f"SESSION_MW_{option.upper()}", default)
            for option, default in self._defaults.items()
        }
        app.wsgi_app = WsgiSessionMiddleware(app.wsgi_app, **settings)  # type: ignore[method-assign]
        app.extensions[EXTENSION] = app.wsgi_app
