"""The apps the server benchmarks serve: Starlette, FastAPI and Flask apps, wrapped each way."""

from __future__ import annotations

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from flask import Flask
from flask_log_request_id import RequestID
from flask_log_request_id.parser import generic_http_header_parser_for
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from benchmarks.asgi_overhead import UsingSession
from benchmarks.server_instructions import mark
from session_mw import SessionMiddleware
from session_mw.flask import SessionMiddleware as FlaskSessionMiddleware
from session_mw.otel import SessionSpanProcessor


async def chat(request: Request) -> JSONResponse:
    return JSONResponse({"reply": "ok"})


def dump() -> dict[str, str]:
    """Where benchmarks.server_instructions has callgrind dump its counters (routed after the
    route measured, so that its matching costs nothing)."""
    mark()
    return {}


async def starlette_dump(request: Request) -> JSONResponse:
    return JSONResponse(dump())


def starlette_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/chat/{cid}", chat, methods=["GET", "POST"]),
            Route("/dump", starlette_dump),
        ]
    )


def traced() -> TracerProvider:
    # No exporter: what is measured is instrumentation, not network I/O to a collector.
    provider = TracerProvider()
    provider.add_span_processor(SessionSpanProcessor())
    return provider


class PassThrough:
    """An ASGI middleware that does nothing but call the app: the floor for any middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


bare = starlette_app()
passthrough = PassThrough(starlette_app())
session_mw = SessionMiddleware(starlette_app())
asgi_correlation_id = CorrelationIdMiddleware(
    starlette_app(), header_name="X-Session-Id", validator=None
)
using_session = UsingSession(starlette_app())
otel = OpenTelemetryMiddleware(starlette_app(), tracer_provider=traced())
otel_and_session_mw = OpenTelemetryMiddleware(
    SessionMiddleware(starlette_app()), tracer_provider=traced()
)


class Reply(BaseModel):
    conversation_id: int
    turn: int
    reply: str


def fastapi_app() -> FastAPI:
    """What a typical FastAPI endpoint does: typed parameters in, a validated model out."""
    app = FastAPI()

    @app.get("/chat/{cid}", response_model=Reply)
    async def fastapi_chat(cid: int, turn: int = 1) -> Reply:
        return Reply(conversation_id=cid, turn=turn, reply="ok")

    app.get("/dump")(dump)
    return app


fastapi_bare = fastapi_app()
fastapi_session_mw = fastapi_app()
fastapi_session_mw.add_middleware(SessionMiddleware)


def flask_app() -> Flask:
    app = Flask(__name__)

    @app.route("/chat/<cid>", methods=["GET", "POST"])
    def flask_chat(cid: str) -> dict[str, str]:
        return {"reply": "ok"}

    app.route("/dump")(dump)
    return app


flask_bare = flask_app()
flask_session_mw = flask_app()
FlaskSessionMiddleware(flask_session_mw)
flask_log_request_id = flask_app()
RequestID(flask_log_request_id, request_id_parser=generic_http_header_parser_for("X-Session-Id"))
