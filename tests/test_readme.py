"""Every Python snippet in the README runs, and the apps it defines answer with a session id."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from flask import Flask
from starlette.testclient import TestClient

from session_mw import session

README = Path(__file__).resolve().parent.parent / "README.md"
ID_HEADERS = ("x-session-id", "x-conversation-id")
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_readme_has_snippets() -> None:
    assert len(SNIPPETS) >= 10


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Snippets configure logging and structlog globally: put both back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger):
            logger.disabled = False
    structlog.reset_defaults()


# Snippets of MCP servers need the MCP SDK 2, which needs OpenTelemetry API >= 1.28.
ABOVE_FLOORS = ("mcp", "langfuse")  # the MCP SDK 2 and Langfuse's SDK need OTel API >= 1.28
CASES = [
    pytest.param(
        code,
        id=f"snippet{n}",
        marks=[pytest.mark.above_floors] if any(name in code for name in ABOVE_FLOORS) else [],
    )
    for n, code in enumerate(SNIPPETS)
]


@pytest.mark.parametrize("code", CASES)
def test_snippet_runs(code: str) -> None:
    if "Langfuse(" in code:  # it registers a global tracer provider: a process of its own
        run_langfuse_snippet(code)
        return
    namespace: dict[str, Any] = {"__name__": "readme_snippet"}
    exec(compile(code, str(README), "exec"), namespace)
    app = namespace.get("app")
    if isinstance(app, Flask):
        response = app.test_client().get("/")
        headers = {name.lower() for name, _ in response.headers.items()}
        response.close()
    elif app is not None and "install(app)" in code:  # Celery: the session reaches a worker
        from celery.contrib.testing.worker import start_worker

        from tests.celery_app import QUICK

        app.conf.update(QUICK, broker_url="memory://", result_backend="cache+memory://")
        app.conf.task_default_queue = "readme"  # its own queue on the in-process broker
        with start_worker(app, pool="solo", perform_ping_check=False), session("readme-1"):
            summary = namespace["summarize"].delay("turn 1").get(timeout=30)
        assert summary == "summary of turn 1 in readme-1"
        headers = {ID_HEADERS[0]}
    elif app is not None and "issue_ids=False" in code:
        # The app issues the ids (an MCP server): session-mw writes no header of its own.
        answer = TestClient(app).get("/", headers={"Mcp-Session-Id": "readme-1"})
        assert answer.status_code == 404  # served by the wrapped app: it has no route at /
        headers = {ID_HEADERS[0]}
    elif app is not None:
        headers = set(TestClient(app).get("/").headers.keys())
    elif "MIDDLEWARE" in namespace:  # a Django settings snippet: serve the test project with it
        headers = django_headers({k: v for k, v in namespace.items() if k.isupper()})
    else:
        headers = {ID_HEADERS[0]}
    assert headers & set(ID_HEADERS)  # the snippets use the default name or X-Conversation-Id
    if "provider" in namespace:
        namespace["provider"].shutdown()
    if "client" in namespace:
        namespace["client"].close()


def django_headers(settings: dict[str, Any]) -> set[str]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_project.settings")
    import django
    from django.test import Client, override_settings

    django.setup()
    with override_settings(**settings):
        response = Client().get("/whoami/")
    return {name.lower() for name, _ in response.items()}


def run_langfuse_snippet(code: str) -> None:
    """The snippet, then its observed function called in a session, exporting to a receiver."""
    from tests.otlp import receiver

    check = code + "\nfrom session_mw import session\n"
    check += 'with session("readme-1"):\n    answer("hi")\nlangfuse.flush()\n'
    with receiver() as (url, received):
        env = {
            **os.environ,
            "LANGFUSE_PUBLIC_KEY": "pk-lf-readme",
            "LANGFUSE_SECRET_KEY": "sk-lf-readme",
            "LANGFUSE_BASE_URL": url,
        }
        subprocess.run([sys.executable, "-c", check], env=env, check=True, timeout=60)
    assert [(name, attributes.get("session.id")) for name, attributes in received.spans] == [
        ("answer", "readme-1")
    ]
