"""The Flask extension: the WSGI adapter, configured from ``app.config``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from session_mw._options import PREFIX, document, from_config, from_keywords, keywords
from session_mw.wsgi import SessionMiddleware as WsgiSessionMiddleware

if TYPE_CHECKING:
    from flask import Flask
    from typing_extensions import Unpack

    from session_mw._options import Keywords

__all__ = ["EXTENSION", "SessionMiddleware"]

#: The key of ``app.extensions`` under which the extension registers (the wrapped ``wsgi_app``).
EXTENSION = "session_mw"


@document(config=True)
class SessionMiddleware:
    """Flask extension: a session for every request, configured through ``app.config``.

    :param app: the Flask app; leave it out with an app factory and call :meth:`init_app`.
    :param options: keyword defaults for the settings below (``header_name="X-Session-Id"``);
        the app's ``SESSION_MW_*`` config wins.

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

    The config is read when ``init_app`` runs: set it before. A mistake in it (an unknown
    ``SESSION_MW_*`` key, a string where a bool belongs) raises there, naming the key.
    """

    def __init__(self, app: Flask | None = None, **options: Unpack[Keywords]) -> None:
        from_keywords(options)  # mistakes in the keywords raise here, naming the keyword
        self._defaults = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Wrap ``app.wsgi_app`` with the WSGI adapter, configured from ``app.config``."""
        if EXTENSION in app.extensions:
            raise RuntimeError(
                f"session-mw is already registered on the Flask app {app.name!r}: "
                "call SessionMiddleware(app) or init_app(app) once per app"
            )
        options = from_config(app.config, list(app.config), self._defaults)
        settings = keywords(options)
        for name, value in settings.items():
            app.config.setdefault(PREFIX + name.upper(), value)
        app.wsgi_app = WsgiSessionMiddleware(app.wsgi_app, **settings)  # type: ignore[method-assign]
        app.extensions[EXTENSION] = app.wsgi_app
