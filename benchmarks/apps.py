"""The apps the throughput benchmark serves: one Starlette and one Flask app, wrapped each way."""

from __future__ import annotations

from asgi_correlation_id import CorrelationIdMiddleware
from flask import Flask
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from session_mw import SessionMiddleware
from session_mw.flask import SessionMiddleware as FlaskSessionMiddleware
from session_mw.otel import SessionSpanProcessor


async def chat(request: Request) -> JSONResponse:
    return JSONResponse({"reply": "ok"})


def starlette_app() -> Starlette:
    return Starlette(routes=[Route("/chat/{cid}", chat, methods=["GET", "POST"])])


def traced() -> TracerProvider:
    # No exporter: what is measured is instrumentation, not network I/O to a collector.
    provider = TracerProvider()
    provider.add_span_processor(SessionSpanProcessor())
    return provider


bare = starlette_app()
session_mw = SessionMiddleware(starlette_app())
asgi_correlation_id = CorrelationIdMiddleware(
    starlette_app(), header_name="X-Session-Id", validator=None
)
otel = OpenTelemetryMiddleware(starlette_app(), tracer_provider=traced())
otel_and_session_mw = OpenTelemetryMiddleware(
    SessionMiddleware(starlette_app()), tracer_provider=traced()
)


def flask_app() -> Flask:
    app = Flask(__name__)

    @app.route("/chat/<cid>", methods=["GET", "POST"])
    def flask_chat(cid: str) -> dict[str, str]:
        return {"reply": "ok"}

    return app


flask_bare = flask_app()
flask_session_mw = flask_app()
FlaskSessionMiddleware(flask_session_mw)
