"""The Django adapter, driven through Django's test Client (WSGI path, sync middleware) and
AsyncClient (ASGI path, the middleware natively async), with tests/django_project."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_project.settings")

import django
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, Client, override_settings

from session_mw.django import SessionMiddleware
from session_mw.otel import SessionSpanProcessor
from tests.servers import free_port, gunicorn, running

django.setup()

SID = "chat-42"
ORIGIN = "http://localhost:3000"


def ids(response: Any) -> list[str]:
    return [value for name, value in response.items() if name.lower() == "x-session-id"]


def test_the_id_is_read_case_insensitively_and_echoed_once() -> None:
    response = Client().get("/whoami/", headers={"x-SESSION-id": SID})
    assert response.json()["id"] == SID
    assert response.json()["otel"] == SID  # the OpenTelemetry context carries it into the view
    assert ids(response) == [SID]


def test_a_request_without_an_id_gets_a_uuid4() -> None:
    response = Client().get("/whoami/")
    (new,) = ids(response)
    assert uuid.UUID(new).version == 4
    assert response.json()["id"] == new


def test_attributes_with_the_include_prefix() -> None:
    attributes = Client().get("/api/chat/7/", headers={"X-Session-Id": SID}).json()["attributes"]
    assert attributes == {
        "url.path": "/api/chat/7/",
        "http.request.method": "GET",
        "http.route": "/api/chat/<int:cid>/",
    }


@pytest.mark.parametrize("value", ["a b", "x" * 129, "caf\xe9", "a,b", "\x1b[31m"])
def test_an_invalid_id_is_replaced_never_echoed_nor_logged(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="session_mw"):
        response = Client().get("/whoami/", headers={"X-Session-Id": value})
    (new,) = ids(response)
    assert uuid.UUID(new).version == 4
    assert "X-Session-Id request header" in caplog.text
    assert value not in caplog.text


@override_settings(SESSION_MW_ON_INVALID="reject", SESSION_MW_HEADER_NAME="X-Conversation-Id")
def test_reject_answers_400_naming_the_header_and_the_rule() -> None:
    response = Client().get("/whoami/", headers={"X-Conversation-Id": "a b"})
    assert response.status_code == 400
    assert (
        "Invalid X-Conversation-Id request header: expected 1 to 128" in response.content.decode()
    )
    assert Client().get("/whoami/", headers={"X-Conversation-Id": SID}).json()["id"] == SID


def test_cors_exposes_the_header_beside_django_cors_headers() -> None:
    response = Client().get("/whoami/", headers={"Origin": ORIGIN})
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert response["Access-Control-Expose-Headers"] == "ETag,X-Session-Id"
    assert "Access-Control-Expose-Headers" not in Client().get("/whoami/")


def test_404_and_500_carry_the_header_and_404_has_no_route() -> None:
    missing = Client().get("/nowhere/", headers={"X-Session-Id": SID})
    assert missing.status_code == 404
    assert ids(missing) == [SID]
    boom = Client(raise_request_exception=False).get("/boom/", headers={"X-Session-Id": SID})
    assert boom.status_code == 500
    assert ids(boom) == [SID]


def test_the_apps_own_header_stands() -> None:
    response = Client().get("/own/", headers={"X-Session-Id": SID, "Origin": ORIGIN})
    assert ids(response) == ["conv-from-the-app"]
    assert response["Access-Control-Expose-Headers"] == "ETag,X-Session-Id"


def test_a_streamed_body_runs_in_the_session_to_its_last_chunk() -> None:
    response = Client().get("/stream/", headers={"X-Session-Id": SID})
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    assert body == "".join(f"data: {n}:{SID}\n\n" for n in range(3))


def test_the_path_parameter_and_the_cookie() -> None:
    with override_settings(SESSION_MW_PATH_PARAM="thread_id", SESSION_MW_COOKIE_NAME="sid"):
        client = Client()
        answer = client.get("/threads/t-1/", headers={"X-Session-Id": SID})
        assert answer.json()["id"] == "t-1"  # the path wins over the header
        assert answer.json()["attributes"]["http.route"] == "/threads/<str:thread_id>/"
        assert answer.cookies["sid"].value == "t-1"
        assert answer.cookies["sid"]["httponly"]
        assert answer.cookies["sid"]["samesite"] == "Lax"
        assert client.get("/whoami/").json()["id"] == "t-1"  # the cookie alone, next time
        invalid = client.get("/threads/a%20b/")
        assert invalid.json()["id"] not in ("a b", "t-1")


@pytest.mark.anyio
async def test_async_path_the_same_guarantees() -> None:
    client = AsyncClient()
    response = await client.get("/awhoami/", headers={"X-Session-Id": SID, "Origin": ORIGIN})
    assert response.json()["id"] == SID
    assert response.json()["otel"] == SID
    assert ids(response) == [SID]
    assert response["Access-Control-Expose-Headers"] == "ETag,X-Session-Id"
    generated = await client.get("/awhoami/")
    assert generated.json()["id"] == ids(generated)[0]
    routed = await client.get("/api/chat/7/", headers={"X-Session-Id": SID})
    assert routed.json()["attributes"]["http.route"] == "/api/chat/<int:cid>/"


@pytest.mark.anyio
async def test_an_async_streamed_body_runs_in_the_session() -> None:
    response = await AsyncClient().get("/astream/", headers={"X-Session-Id": SID})
    chunks = [chunk async for chunk in response.streaming_content]  # type: ignore[attr-defined]
    assert b"".join(chunks).decode() == "".join(f"data: {n}:{SID}\n\n" for n in range(3))


def test_the_middleware_is_natively_async_under_asgi() -> None:
    async def get_response(request: Any) -> Any:
        raise AssertionError

    def sync_get_response(request: Any) -> Any:
        raise AssertionError

    from asgiref.sync import iscoroutinefunction

    assert iscoroutinefunction(SessionMiddleware(get_response))
    assert not iscoroutinefunction(SessionMiddleware(sync_get_response))


def user_header(request: Any) -> str | None:
    """A user_id callable named by its dotted path in the settings."""
    user = request.headers.get("X-User")
    return None if user is None else str(user)


@override_settings(SESSION_MW_USER_ID="tests.test_django.user_header")
def test_callables_by_dotted_path() -> None:
    response = Client().get("/whoami/", headers={"X-Session-Id": SID, "X-User": "ada"})
    assert response.json()["attributes"]["user.id"] == "ada"


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("SESSION_MW_HEADER_NAME", "X Session", "SESSION_MW_HEADER_NAME='X Session' is not a"),
        ("SESSION_MW_ON_INVALID", "drop", "SESSION_MW_ON_INVALID='drop': use 'replace'"),
        ("SESSION_MW_GENERATOR", "nowhere.make_id", "SESSION_MW_GENERATOR='nowhere.make_id'"),
        ("SESSION_MW_SECRET", "short", "SESSION_MW_SECRET: give one secret"),
        ("SESSION_MW_COOKIE_NAME", "s id", "SESSION_MW_COOKIE_NAME='s id' is not a valid"),
        ("SESSION_MW_TRUST_INCOMING", "false", "SESSION_MW_TRUST_INCOMING='false' is not a bool"),
        ("SESSION_MW_ON_INVALD", "reject", "did you mean 'SESSION_MW_ON_INVALID'"),
    ],
)
def test_configuration_mistakes_name_the_setting(setting: str, value: str, message: str) -> None:
    with override_settings(**{setting: value}), pytest.raises(ImproperlyConfigured, match=message):
        SessionMiddleware(lambda request: None)  # type: ignore[arg-type]


@pytest.fixture
def database() -> Iterator[None]:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, run_syncdb=True)
    yield
    connection.close()


@pytest.mark.usefixtures("database")
def test_user_id_reads_request_user_after_authentication_middleware() -> None:
    from django.contrib.auth.models import User

    middleware = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "session_mw.django.SessionMiddleware",
    ]
    user = User.objects.create_user("ada")
    with override_settings(
        MIDDLEWARE=middleware,
        SESSION_MW_USER_ID=lambda request: request.user.username or None,
    ):
        client = Client()
        assert "user.id" not in client.get("/whoami/").json()["attributes"]
        client.force_login(user)
        assert client.get("/whoami/").json()["attributes"]["user.id"] == "ada"


def test_django_rest_framework_responses_carry_the_header() -> None:
    response = Client().get("/drf/", headers={"X-Session-Id": SID})
    assert response.json()["id"] == SID
    assert ids(response) == [SID]


def test_the_span_processor_puts_the_session_on_spans_in_views(
    monkeypatch: pytest.MonkeyPatch, exporter: InMemorySpanExporter
) -> None:
    from tests.django_project import views

    provider = TracerProvider()
    provider.add_span_processor(SessionSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(views, "PROVIDER", provider)
    Client().get("/traced/", headers={"X-Session-Id": SID})
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["session.id"] == SID
    assert span.attributes["http.route"] == "/traced/"


@pytest.mark.above_floors  # opentelemetry-instrumentation-django needs OpenTelemetry API >= 1.28
def test_the_server_span_of_the_django_instrumentation_is_marked(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    instrumentor = DjangoInstrumentor()
    instrumentor.instrument(tracer_provider=provider)  # prepends its middleware to MIDDLEWARE
    try:
        Client().get("/api/chat/7/", headers={"X-Session-Id": SID})
    finally:
        instrumentor.uninstrument()
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["session.id"] == SID
    assert span.attributes["http.route"] == "api/chat/<int:cid>/"  # the instrumentation's own


CONCURRENT = 200


async def each_sees_its_own(url: str, path: str) -> None:
    # One connection per request: see test_asgi_server.py on the keep-alive race.
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        sent = [f"conv-{n:04d}" for n in range(CONCURRENT)]
        responses = await asyncio.gather(
            *(client.get(path, headers={"X-Session-Id": i}) for i in sent)
        )
    for session_id, response in zip(sent, responses, strict=True):
        assert response.status_code == 200
        assert response.headers.get_list("x-session-id") == [session_id]
        assert response.json()["id"] == session_id


@pytest.mark.anyio
async def test_gunicorn_serves_the_wsgi_application() -> None:
    port = free_port()
    command = gunicorn("tests.django_project.wsgi:application", port)
    with running(command, port) as url:
        await each_sees_its_own(url, "/whoami/")


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/awhoami/", "/whoami/"], ids=["async view", "sync view"])
async def test_uvicorn_serves_the_asgi_application(path: str) -> None:
    port = free_port()
    command = [
        "uvicorn",
        "tests.django_project.wsgi:asgi_application",
        "--port", str(port),
        "--log-level", "warning",
    ]  # fmt: skip
    with running(command, port) as url:
        await each_sees_its_own(url, path)


@pytest.mark.parametrize(
    "value", ["a%20b", "caf%C3%A9", "x" * 129, "a%0Ab"], ids=["space", "non-ascii", "long", "lf"]
)
def test_an_invalid_path_value_is_never_used_nor_logged(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        override_settings(SESSION_MW_PATH_PARAM="thread_id", SESSION_MW_COOKIE_NAME="sid"),
        caplog.at_level(logging.WARNING, logger="session_mw"),
    ):
        response = Client().get(f"/threads/{value}/", headers={"X-Session-Id": SID})
    (new,) = ids(response)
    assert uuid.UUID(new).version == 4  # neither the path value nor the header
    assert response.cookies["sid"].value == new
    assert "thread_id path parameter" in caplog.text
    assert value not in caplog.text
    assert "caf" not in caplog.text


def test_help_documents_every_setting() -> None:
    import dataclasses
    import pydoc

    from session_mw._options import Options

    text = pydoc.plain(pydoc.render_doc(SessionMiddleware))
    for field in dataclasses.fields(Options):
        assert f":param SESSION_MW_{field.name.upper()}:" in text
