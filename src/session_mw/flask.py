"""The Flask extension: the WSGI adapter, configured from ``app.config``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from session_mw._extension import EXTENSION, Extension
from session_mw._options import Options, document, keywords
from session_mw.wsgi import SessionMiddleware as WsgiSessionMiddleware

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["EXTENSION", "SessionMiddleware"]


@document(config=True)
class SessionMiddleware(Extension["Flask"]):
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

    def _wrap(self, app: Flask, options: Options) -> object:
        app.wsgi_app = WsgiSessionMiddleware(app.wsgi_app, **keywords(options))  # type: ignore[method-assign]
        return app.wsgi_app
