"""A multi-turn chat service on Django whose turns session-mw groups into sessions.

Run it with ``scripts/example django`` (uvicorn serving the ASGI application, port 8003), then::

    curl -sN -X POST localhost:8003/chat -H 'Content-Type: application/json' -d '{"message": "hi"}'

The response carries ``X-Session-Id``; send it back to continue the conversation. Spans go to the
console, or to Phoenix when ``PHOENIX_COLLECTOR_ENDPOINT`` is set.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")

from django.core.asgi import get_asgi_application

application = get_asgi_application()

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(application, host="127.0.0.1", port=int(os.environ.get("PORT", "8003")))
