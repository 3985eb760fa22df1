"""A multi-turn chat on Flask whose turns session-mw groups into one session per conversation.

Run it with ``scripts/example flask``, then talk to it::

    curl -si -X POST localhost:5000/chat -H 'Content-Type: application/json' -d '{"message": "hi"}'
    curl -si -X POST localhost:5000/chat -H 'X-Session-Id: <the id it answered>' \\
         -H 'Content-Type: application/json' -d '{"message": "and again"}'
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

from flask import Flask, Response, request

from session_mw import SessionIdFilter, current_session
from session_mw.flask import SessionMiddleware

log = logging.getLogger("chat")

# What each conversation has said so far; a real app keeps this in a database.
HISTORY: dict[str, list[str]] = {}


def fake_model(message: str, turn: int) -> Iterator[str]:
    """Stands in for an LLM: streams a reply word by word."""
    for word in f"Turn {turn}: you said {message!r}.".split():
        time.sleep(0.01)
        yield word + " "


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SESSION_MW_HEADER_NAME"] = "X-Session-Id"
    SessionMiddleware(app)

    @app.post("/chat")
    def chat() -> Response:
        message = str(request.get_json(force=True).get("message", ""))
        session = current_session()
        assert session is not None  # the extension opened it before this view ran
        history = HISTORY.setdefault(session.id, [])
        history.append(message)
        log.info("turn %d of this conversation", len(history))
        # The session stays open while the reply streams: log lines in here carry it too.
        return Response(fake_model(message, len(history)), mimetype="text/plain")

    return app


def configure_logging() -> None:
    handler = logging.StreamHandler()
    handler.addFilter(SessionIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s [session %(session_id)s] %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])


if __name__ == "__main__":
    configure_logging()
    create_app().run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))
