"""Where a mistake in ``app.add_middleware(SessionMiddleware, ...)`` surfaces, and what it says.

``add_middleware`` only records the class and its keywords: Starlette (and FastAPI) build the
middleware stack, and so construct SessionMiddleware, on the app's first ASGI call. That call is
the lifespan startup when the server runs the lifespan; uvicorn's default lifespan mode,
``auto``, takes an error there for "lifespan unsupported", logs one INFO line that does not name
the option, skips the app's own startup, and serves. The stack is then built, and fails, on
every request: a 500, and uvicorn's ERROR log with the traceback whose last line names the
option and says what to change. Constructing SessionMiddleware directly raises at once.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from session_mw import SessionMiddleware
from tests.servers import free_port, running

# What every place below must show, in full: the option as the user wrote it, and the fix.
MESSAGE = (
    "SessionMiddleware() got an unexpected keyword argument 'hedaer_name': "
    "did you mean 'header_name'?"
)
# Printed by the apps' own lifespan, to show whether their startup ran.
STARTUP = "the app's own startup ran"


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


@asynccontextmanager
async def lifespan(app: object) -> AsyncIterator[None]:
    print(STARTUP, flush=True)
    yield


# The apps, as uvicorn --factory imports them (tests.test_startup:starlette_typo).


def starlette_typo() -> Starlette:
    app = Starlette(routes=[Route("/", hello)], lifespan=lifespan)
    # The mistake: a type checker flags it here (add_middleware is typed with the class's
    # keywords), the interpreter only when the stack is built.
    app.add_middleware(SessionMiddleware, hedaer_name="X-Conversation")  # type: ignore[call-arg]
    return app


def fastapi_typo() -> FastAPI:
    app = FastAPI(lifespan=lifespan)
    app.add_api_route("/", hello)
    app.add_middleware(SessionMiddleware, hedaer_name="X-Conversation")  # type: ignore[call-arg]
    return app


def starlette_middleware_list() -> Starlette:
    middleware = [Middleware(SessionMiddleware, hedaer_name="X-Conversation")]  # type: ignore[call-arg]
    return Starlette(routes=[Route("/", hello)], middleware=middleware, lifespan=lifespan)


def starlette_ok() -> Starlette:
    app = Starlette(routes=[Route("/", hello)], lifespan=lifespan)
    app.add_middleware(SessionMiddleware, header_name="X-Conversation")
    return app


TYPO_APPS = pytest.mark.parametrize(
    "factory", [starlette_typo, fastapi_typo, starlette_middleware_list]
)


# The start-up checks a user can make.


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"hedaer_name": "X-Conversation"}, TypeError, MESSAGE),
        (
            {"header_name": "X Conversation"},
            ValueError,
            "header_name='X Conversation' is not a valid HTTP header name: use a non-empty token "
            "of letters, digits and !#$%&'*+-.^_`|~, such as 'X-Session-Id'",
        ),
        (
            {"issue_ids": "false"},  # from an environment variable
            TypeError,
            "issue_ids='false' is not a bool (any non-empty string counts as true): "
            "use True or False",
        ),
    ],
    ids=["misspelled", "bad-value", "wrong-type"],
)
def test_constructing_it_directly_raises_at_once_naming_the_option(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Wrapping the app outermost (``app = SessionMiddleware(app, ...)``) checks the options
    where the app is made: at import, before any server starts."""
    app = Starlette(routes=[Route("/", hello)])
    with pytest.raises(error) as raised:
        SessionMiddleware(app, **options)
    assert str(raised.value) == message


@TYPO_APPS
def test_add_middleware_itself_raises_nothing(factory: Any) -> None:
    factory()  # the mistake is recorded, not checked


@TYPO_APPS
def test_a_testclient_with_block_raises_at_startup(factory: Any, capsys: Any) -> None:
    """``with TestClient(app):`` runs the lifespan: the mistake raises there, before any request
    (a one-line start-up test for an app built with add_middleware)."""
    with pytest.raises(TypeError) as raised, TestClient(factory()):
        pytest.fail("the lifespan started")
    assert str(raised.value) == MESSAGE
    assert STARTUP not in capsys.readouterr().out


def test_a_testclient_with_block_starts_a_correct_app(capsys: Any) -> None:
    """The control for the test above: with the option spelled right, the app starts."""
    with TestClient(starlette_ok()) as client:
        response = client.get("/")
    assert response.status_code == 200
    assert "x-conversation" in response.headers
    assert STARTUP in capsys.readouterr().out


# What a user sees when nothing checked at start-up.


@TYPO_APPS
def test_a_testclient_request_raises_the_error(factory: Any) -> None:
    """Without the ``with`` block (no lifespan), the first request builds the stack; TestClient
    re-raises server errors by default, so the test fails with the message."""
    client = TestClient(factory())
    with pytest.raises(TypeError) as raised:
        client.get("/")
    assert str(raised.value) == MESSAGE


@TYPO_APPS
def test_a_testclient_that_hides_server_errors_shows_a_bare_500(factory: Any) -> None:
    """``raise_server_exceptions=False`` hides this error as it hides any other: an empty 500,
    nothing logged (it is TestClient's own answer: the app never sent a response)."""
    client = TestClient(factory(), raise_server_exceptions=False)
    response = client.get("/")
    assert response.status_code == 500
    assert response.content == b""
    assert "x-session-id" not in response.headers


@TYPO_APPS
def test_uvicorn_default_lifespan_serves_500s_whose_log_names_the_option(
    factory: Any, tmp_path: Path
) -> None:
    """uvicorn's default (``--lifespan auto``): the server starts, reporting only that lifespan
    "appears unsupported" (the app's own startup does not run), and session-mw's error log
    record names the mistake there; every request is a 500 whose ERROR log record ends with
    the message."""
    port = free_port()
    name = f"tests.test_startup:{factory.__name__}"
    command = ["uvicorn", "--factory", name, "--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "uvicorn.log"
    with log.open("w") as out, running(command, port, log=out) as url:
        at_startup = log.read_text()
        first = httpx.get(url)
        second = httpx.get(url)
    text = log.read_text()

    assert "ASGI 'lifespan' protocol appears unsupported." in at_startup
    assert MESSAGE in at_startup  # logged by session-mw as the stack is built
    assert STARTUP not in text
    for response in (first, second):  # the stack is not kept: every request fails the same
        assert response.status_code == 500
        assert response.text == "Internal Server Error"
        assert "x-session-id" not in response.headers
    errors = text.split("ERROR:    Exception in ASGI application\n")[1:]
    assert len(errors) == 2
    for error in errors:
        traceback = error.split("\nINFO:")[0]
        assert traceback.rstrip().endswith(f"OptionTypeError: {MESSAGE}")
    assert text.count('"GET / HTTP/1.1" 500') == 2


def test_uvicorn_lifespan_on_refuses_to_start_naming_the_option() -> None:
    """``--lifespan on`` (a start-up check a deployment can make): uvicorn logs the traceback,
    "Application startup failed. Exiting.", and exits before listening."""
    port = free_port()
    name = "tests.test_startup:starlette_typo"
    command = ["uvicorn", "--factory", name, "--host", "127.0.0.1", "--port", str(port)]
    with pytest.raises(RuntimeError) as raised, running([*command, "--lifespan", "on"], port):
        pytest.fail("uvicorn started")
    output = str(raised.value)  # running() raises with the exit code and the whole output
    assert re.match(r"uvicorn exited with [1-9]", output)
    assert "ERROR:    Exception in 'lifespan' protocol" in output
    assert re.search(rf"OptionTypeError: {re.escape(MESSAGE)}\n", output)
    assert "ERROR:    Application startup failed. Exiting." in output
    assert STARTUP not in output
    assert "Uvicorn running on" not in output


def test_uvicorn_default_lifespan_starts_a_correct_app(tmp_path: Path) -> None:
    """The control: spelled right, the app's startup runs and its requests get the header."""
    port = free_port()
    name = "tests.test_startup:starlette_ok"
    command = ["uvicorn", "--factory", name, "--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "uvicorn.log"
    with log.open("w") as out, running(command, port, log=out) as url:
        response = httpx.get(url)
    text = log.read_text()
    assert response.status_code == 200
    assert "x-conversation" in response.headers
    assert STARTUP in text
    assert "Application startup complete." in text
    assert "appears unsupported" not in text
