"""SessionSpanProcessor, the OTel context values OpenInference reads, and user ids."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware as WsgiOtelMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from session_mw import SessionMiddleware, session
from session_mw.flask import SessionMiddleware as FlaskSessionMiddleware
from session_mw.otel import SessionSpanProcessor
from session_mw.wsgi import SessionMiddleware as WsgiSessionMiddleware

SID = "chat-42"


@pytest.fixture
def traced() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_spans_in_a_session_get_its_id_and_attributes(
    traced: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = traced
    tracer = provider.get_tracer("t")
    with (
        session("s-1", attributes={"app.tenant": "acme"}),
        tracer.start_as_current_span("outer"),
        tracer.start_as_current_span("inner", attributes={"app.tenant": "own"}),
    ):
        pass
    with tracer.start_as_current_span("outside"):
        pass
    spans = {s.name: attrs(s) for s in exporter.get_finished_spans()}
    both = {"session.id": "s-1", "gen_ai.conversation.id": "s-1"}
    assert spans["outer"] == {**both, "app.tenant": "acme"}
    assert spans["inner"] == {**both, "app.tenant": "own"}  # never overwritten
    assert spans["outside"] == {}


def test_a_span_with_its_own_session_id_keeps_it(
    traced: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = traced
    with (
        session("s-1"),
        provider.get_tracer("t").start_as_current_span("x", attributes={"session.id": "explicit"}),
    ):
        pass
    assert attrs(exporter.get_finished_spans()[0])["session.id"] == "explicit"


def test_a_sub_agents_own_conversation_id_is_kept(
    traced: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = traced
    own = {"gen_ai.conversation.id": "sub-agent-1"}
    with session("s-1"), provider.get_tracer("t").start_as_current_span("x", attributes=own):
        pass
    assert attrs(exporter.get_finished_spans()[0]) == {
        "session.id": "s-1",
        "gen_ai.conversation.id": "sub-agent-1",
    }


@pytest.mark.parametrize(
    ("names", "error", "message"),
    [
        ("session.id", TypeError, "give a list of attribute names"),
        ([], ValueError, "at least one non-empty attribute name"),
        (["session.id", ""], ValueError, "at least one non-empty attribute name"),
    ],
)
def test_the_names_are_checked(names: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        SessionSpanProcessor(names)
    with pytest.raises(error, match=message):
        SessionMiddleware(FastAPI(), id_attributes=names)


def test_flush_and_shutdown() -> None:
    processor = SessionSpanProcessor()
    assert processor.force_flush() is True
    processor.on_end(None)  # type: ignore[arg-type]
    processor.shutdown()


def fastapi_app(provider: trace.TracerProvider | None = None) -> FastAPI:
    app = FastAPI()
    tracer = trace.get_tracer("app", tracer_provider=provider)

    @app.get("/chat/{cid}")
    async def chat(cid: str) -> dict[str, Any]:
        with tracer.start_as_current_span("llm"):
            return {
                "otel": otel_context.get_value("session.id"),
                "metadata": otel_context.get_value("metadata"),
            }

    return app


@pytest.mark.parametrize("placement", ["session-outside", "session-inside"])
def test_asgi_either_side_of_the_otel_middleware(
    placement: str, traced: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = traced
    inner = fastapi_app(provider)
    if placement == "session-outside":
        app: Any = SessionMiddleware(OpenTelemetryMiddleware(inner, tracer_provider=provider))
    else:
        app = OpenTelemetryMiddleware(SessionMiddleware(inner), tracer_provider=provider)
    body = TestClient(app).get("/chat/7", headers={"X-Session-Id": SID}).json()
    spans = exporter.get_finished_spans()
    assert {s.name for s in spans} == {"GET /chat/7", "GET /chat/7 http send", "llm"}
    # OTel's middleware attaches a fresh context: placed inside it, the context value survives.
    assert body["otel"] == (SID if placement == "session-inside" else None)
    for span in spans:
        assert attrs(span)["session.id"] == SID, span.name


@pytest.mark.parametrize("instrument_first", [True, False])
def test_fastapi_instrumentor_either_order(
    instrument_first: bool, traced: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = traced
    app = fastapi_app(provider)
    if instrument_first:
        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
        app.add_middleware(SessionMiddleware)
    else:
        app.add_middleware(SessionMiddleware)
        FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    try:
        response = TestClient(app).get("/chat/7", headers={"X-Session-Id": SID})
    finally:
        FastAPIInstrumentor.uninstrument_app(app)
    assert response.headers["x-session-id"] == SID
    server = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert server
    for span in exporter.get_finished_spans():
        assert attrs(span)["session.id"] == SID, span.name


@pytest.mark.parametrize("session_outside", [True, False])
def test_wsgi_either_side_of_the_otel_middleware(
    session_outside: bool, traced: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    from werkzeug.test import Client
    from werkzeug.wrappers import Request, Response

    @Request.application
    def hello(request: Request) -> Response:
        return Response("hi")

    if session_outside:
        app: Any = WsgiSessionMiddleware(
            WsgiOtelMiddleware(hello, tracer_provider=provider_of(traced))
        )
    else:
        app = WsgiOtelMiddleware(WsgiSessionMiddleware(hello), tracer_provider=provider_of(traced))
    response = Client(app).get("/", headers={"X-Session-Id": SID})
    response.close()
    [span] = traced[1].get_finished_spans()
    assert attrs(span)["session.id"] == SID


def provider_of(traced: tuple[TracerProvider, InMemorySpanExporter]) -> TracerProvider:
    return traced[0]


@pytest.mark.parametrize("with_processor", [True, False])
@pytest.mark.parametrize("instrument_first", [True, False])
def test_flask_instrumentor_span_in_either_order(
    instrument_first: bool, with_processor: bool, exporter: InMemorySpanExporter
) -> None:
    """With or without the processor: the WSGI adapter marks the span current at start_response."""
    from flask import Flask

    provider = TracerProvider()
    if with_processor:
        provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = Flask(__name__)

    @app.get("/chat/<cid>")
    def chat(cid: str) -> str:
        return "ok"

    instrumentor = FlaskInstrumentor()
    if instrument_first:
        instrumentor.instrument_app(app, tracer_provider=provider)  # type: ignore[no-untyped-call]
        FlaskSessionMiddleware(app)
    else:
        FlaskSessionMiddleware(app)
        instrumentor.instrument_app(app, tracer_provider=provider)  # type: ignore[no-untyped-call]
    try:
        app.test_client().get("/chat/1", headers={"X-Session-Id": SID}).close()
    finally:
        instrumentor.uninstrument_app(app)  # type: ignore[no-untyped-call]
    [span] = exporter.get_finished_spans()
    assert attrs(span)["session.id"] == SID
    assert attrs(span)["http.route"] == "/chat/<cid>"


def test_metadata_and_user_id_reach_the_otel_context() -> None:
    app = fastapi_app()
    app.add_middleware(
        SessionMiddleware,
        user_id=lambda scope: dict(scope["headers"]).get(b"x-user", b"").decode() or None,
    )
    client = TestClient(app)
    body = client.get("/chat/1", headers={"X-Session-Id": SID, "X-User": "alice"}).json()
    assert body["otel"] == SID
    assert json.loads(body["metadata"]) == {
        "url.path": "/chat/1",
        "http.request.method": "GET",
        "user.id": "alice",
    }
    anonymous = client.get("/chat/1").json()
    assert "user.id" not in json.loads(anonymous["metadata"])


def test_user_id_on_spans_and_context(traced: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = traced
    seen: list[object] = []

    def app(environ: Any, start_response: Any) -> Any:
        seen.append(otel_context.get_value("user.id"))
        with provider.get_tracer("t").start_as_current_span("work"):
            pass
        start_response("200 OK", [])
        return [b""]

    wrapped = WsgiSessionMiddleware(app, user_id=lambda environ: environ.get("HTTP_X_USER"))
    from werkzeug.test import Client

    Client(wrapped).get("/", headers={"X-User": "bob"}).close()
    assert seen == ["bob"]
    assert attrs(exporter.get_finished_spans()[0])["user.id"] == "bob"


def test_existing_metadata_is_merged_never_clobbered() -> None:
    token = otel_context.attach(otel_context.set_value("metadata", '{"experiment": "b"}'))
    try:
        with session("s", attributes={"experiment": "a", "app.tier": "gold"}):
            merged = json.loads(str(otel_context.get_value("metadata")))
        assert merged == {"experiment": "b", "app.tier": "gold"}
    finally:
        otel_context.detach(token)
    token = otel_context.attach(otel_context.set_value("metadata", "not json"))
    try:
        with session("s", attributes={"a": 1}):
            assert otel_context.get_value("metadata") == "not json"
    finally:
        otel_context.detach(token)


def test_non_string_attribute_values_in_metadata() -> None:
    with session("s", attributes={"n": 3, "ok": True, "tags": ("a", "b")}):
        assert json.loads(str(otel_context.get_value("metadata"))) == {
            "n": 3,
            "ok": True,
            "tags": ["a", "b"],
        }


def test_metadata_of_non_string_values_and_of_repeated_requests() -> None:
    # Lists cannot key the cache of encoded metadata, and 1, 1.0 and True are equal keys there.
    for value in (["a", "b"], ["a", "b"], 1, True, 1.0, 1):
        with session("s", attributes={"v": value}):
            assert json.loads(str(otel_context.get_value("metadata"))) == {"v": value}
            assert json.dumps(value) in str(otel_context.get_value("metadata"))
    # Same attributes, cached encoding: each session still gets its own values.
    with session("s1", attributes={"url.path": "/chat"}):
        first = otel_context.get_value("metadata")
    with session("s2", attributes={"url.path": "/other"}):
        assert otel_context.get_value("metadata") != first
    with session("s3", attributes={"url.path": "/chat"}):
        assert otel_context.get_value("metadata") == first == '{"url.path":"/chat"}'


def test_the_cache_of_encoded_metadata_stays_bounded() -> None:
    from session_mw import _bridge as scope

    for n in range(scope._ENCODED_MAX + 10):  # a path per conversation: a miss each
        with session("s", attributes={"url.path": f"/threads/{n}"}):
            assert otel_context.get_value("metadata") == f'{{"url.path":"/threads/{n}"}}'
    assert 0 < len(scope._encoded) <= scope._ENCODED_MAX
