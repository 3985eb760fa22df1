"""Runs the ```python blocks of README.md and docs/**/*.md (test_readme.py, test_docs.py).

Each block runs on its own, as a reader would paste it into a module, and what it defines is then
put to work: an app (``app``, ``application``, ``asgi_app``, ``wsgi_app``; Starlette, FastAPI,
Litestar, Quart, Falcon, Flask, any ASGI or WSGI callable) is sent a request carrying the id
``X-Session-Id: snippet-1`` and must answer with exactly that id in its session header (and in
its body when its view reads ``current_session()``); Django ``MIDDLEWARE`` settings serve the
test project's ``/whoami/``; a Celery app gets an in-process worker that runs ``summarize`` in the
publisher's session; a ``provider`` (a ``TracerProvider``) gets a span started in a session, and
every span exported over OTLP (the exporter's ``export`` recorded, nothing sent) must carry the
session's id.

The markdown may say more in an HTML comment on the line before a block's fence:
``<!-- test: POST /chat/42 -->`` (the request to send, which must answer 200), or
``<!-- not run: why -->`` for a deliberate fragment (keep those rare).

Only the standard library and pytest at module level: the lowest run lacks the packages of the
blocks it deselects (``above_floors``), and this module is imported there too.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import os
import re
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from session_mw import session

ROOT = Path(__file__).resolve().parent.parent
ID = "snippet-1"
ID_HEADERS = ("x-session-id", "x-conversation-id")
APP_NAMES = ("app", "application", "asgi_app", "wsgi_app")
# Packages that need anyio 4 or OpenTelemetry API >= 1.28 (the MCP SDK 2, Langfuse's and
# Logfire's SDKs...) or that the lowest run does not install (taskiq, Litestar, Quart): blocks
# importing them, directly or through session_mw.<name>, are marked above_floors.
ABOVE_FLOORS = frozenset(
    {"mcp", "fastmcp", "langfuse", "logfire", "langsmith", "taskiq", "litestar", "quart"}
)
# Blocks that configure process-wide state nothing can undo (Logfire's global configuration, a
# global tracer provider, which OpenTelemetry sets once and FastAPI's own telemetry then uses
# in every later test): each runs in a Python process of its own.
OWN_PROCESS = frozenset({"logfire"})
GLOBAL_STATE = ("set_tracer_provider(",)
_FENCE = re.compile(r"^```python\n(.*?)^```$", re.M | re.S)
_COMMENT = re.compile(r"<!--\s*(test|not run):\s*(.*?)\s*-->\s*\n$")


@dataclasses.dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the code's first line, 1-based
    code: str
    request: tuple[str, str] | None = None  # (method, path) from <!-- test: ... -->
    not_run: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def modules(self) -> set[str]:
        """Every dotted part of every module the block imports."""
        parts: set[str] = set()
        for node in ast.walk(ast.parse(self.code)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                parts.update(name.split("."))
        return parts


def blocks(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()]
        comment = _COMMENT.search(before)
        request, not_run = None, None
        if comment and comment.group(1) == "test":
            method, _, target = comment.group(2).partition(" ")
            request = (method, target)
        elif comment:
            not_run = comment.group(2)
        line = before.count("\n") + 2
        found.append(Block(path, line, match.group(1), request, not_run))
    return found


def cases(found: list[Block]) -> list[Any]:
    """pytest parameters, one per block, with their marks."""
    params = []
    for block in found:
        marks: list[Any] = []
        if block.modules & ABOVE_FLOORS:
            marks.append(pytest.mark.above_floors)
        if block.not_run is not None:
            marks.append(pytest.mark.skip(reason=f"not run: {block.not_run}"))
        params.append(pytest.param(block, id=block.name, marks=marks))
    return params


def run(block: Block, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run the block and check what it defines; the block's namespace is returned."""
    # Credentials the block reads or names (LANGSMITH_API_KEY): dummies, as nothing is sent.
    needed = re.findall(r"""os\.environ\[["'](\w+)["']\]""", block.code)
    for name in needed + re.findall(r"\b([A-Z][A-Z0-9]*_(?:API_KEY|PROJECT))\b", block.code):
        monkeypatch.setenv(name, f"{name.lower()}-for-the-test")
    if "Langfuse(" in block.code:  # it registers a global tracer provider: a process of its own
        run_langfuse(block)
        return {}
    if block.modules & OWN_PROCESS or any(call in block.code for call in GLOBAL_STATE):
        command = [sys.executable, "-m", "tests.snippets", str(block.path), str(block.line)]
        subprocess.run(command, cwd=ROOT, check=True, timeout=120)
        return {}
    return check(block)


def check(block: Block) -> dict[str, Any]:
    with otlp_exports() as exported:
        # A module of its own (frameworks look up the module a function was defined in), whose
        # line numbers in tracebacks are the markdown file's.
        module = types.ModuleType("snippet")
        namespace: dict[str, Any] = module.__dict__
        code = "\n" * (block.line - 1) + block.code
        sys.modules["snippet"] = module
        try:
            exec(compile(code, str(block.path), "exec"), namespace)
            put_to_work(block, namespace)
        finally:
            del sys.modules["snippet"]
    for span_name, attributes in exported:
        assert attributes.get("session.id") == ID, (span_name, attributes)
    return namespace


def put_to_work(block: Block, namespace: dict[str, Any]) -> None:
    apps = [namespace[name] for name in APP_NAMES if name in namespace]
    for app in apps:
        check_app(app, block, namespace)
    if "MIDDLEWARE" in namespace:
        check_django({k: v for k, v in namespace.items() if k.isupper()})
    provider = namespace.get("provider")
    if provider is not None and type(provider).__name__ == "TracerProvider":
        with session(ID), provider.get_tracer("snippets").start_as_current_span("check"):
            pass
        provider.force_flush()
        provider.shutdown()
    if "logger_provider" in namespace:
        namespace["logger_provider"].shutdown()
    for name in ("client", "async_client", "http"):
        if hasattr(namespace.get(name), "close"):
            namespace[name].close()


def check_app(app: Any, block: Block, namespace: dict[str, Any]) -> None:
    method, target = block.request or ("GET", "/")
    headers = {"X-Session-Id": ID, "X-Conversation-Id": ID}
    if type(app).__module__.startswith("celery"):
        check_celery(app, namespace)
        return
    if type(app).__module__.startswith("flask"):
        response = app.test_client().open(target, method=method, headers=headers)
        status, text = response.status_code, response.get_data(as_text=True)
        answered = {name.lower(): value for name, value in response.headers.items()}
        response.close()
    elif is_asgi(app):
        from starlette.testclient import TestClient

        # No lifespan: a request is what builds Starlette's middleware stack, as under a server.
        reply = TestClient(app).request(method, target, headers=headers)
        status, text = reply.status_code, reply.text
        answered = {name.lower(): value for name, value in reply.headers.items()}
    else:
        from werkzeug.test import Client

        wsgi_reply = Client(app).open(target, method=method, headers=headers)
        status, text = wsgi_reply.status_code, wsgi_reply.get_data(as_text=True)
        answered = {name.lower(): value for name, value in wsgi_reply.headers.items()}
        wsgi_reply.close()
    ids = [answered[name] for name in ID_HEADERS if name in answered]
    if "issue_ids=False" in block.code:  # the app issues ids (an MCP server): none written here
        assert ids == [], answered
        assert status == 404  # served by the wrapped app, which has no route at /
        return
    if block.request is not None:
        assert status == 200, (status, text)
    assert ids == [ID], answered
    if status == 200 and "current_session()" in block.code:
        assert ID in text, text


def is_asgi(app: Any) -> bool:
    call = type(app).__dict__.get("__call__") or getattr(app, "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(call)


def check_django(settings: dict[str, Any]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_project.settings")
    import django
    from django.test import Client, override_settings

    django.setup()
    with override_settings(**settings):
        response = Client().get("/whoami/", HTTP_X_SESSION_ID=ID, HTTP_X_CONVERSATION_ID=ID)
    assert response.status_code == 200
    assert [response[name] for name in ID_HEADERS if response.has_header(name)] == [ID]


def check_celery(app: Any, namespace: dict[str, Any]) -> None:
    """The task runs on a worker in the session it was published in."""
    from celery.contrib.testing.worker import start_worker

    from tests.celery_app import QUICK

    app.conf.update(QUICK, broker_url="memory://", result_backend="cache+memory://")
    app.conf.task_default_queue = "snippets"  # its own queue on the in-process broker
    with start_worker(app, pool="solo", perform_ping_check=False), session(ID):
        summary = namespace["summarize"].delay("turn 1").get(timeout=30)
    assert summary == f"summary of turn 1 in {ID}"


@contextmanager
def otlp_exports() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The spans handed to any OTLP/HTTP span exporter meanwhile, as (name, attributes): they
    are recorded, and nothing is sent."""
    exported: list[tuple[str, dict[str, Any]]] = []
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import SpanExportResult
    except ImportError:  # pragma: no cover  (no exporter installed: nothing to record)
        yield exported
        return

    def export(self: object, spans: Any) -> SpanExportResult:
        exported.extend((span.name, dict(span.attributes or {})) for span in spans)
        return SpanExportResult.SUCCESS

    original: Callable[..., Any] = OTLPSpanExporter.export
    OTLPSpanExporter.export = export  # type: ignore[method-assign]
    try:
        yield exported
    finally:
        OTLPSpanExporter.export = original  # type: ignore[method-assign]


def run_langfuse(block: Block) -> None:
    """The block, then its observed function called in a session, exporting to a receiver."""
    from tests.otlp import receiver

    code = block.code + "\nfrom session_mw import session\n"
    code += f'with session("{ID}"):\n    answer("hi")\nlangfuse.flush()\n'
    with receiver() as (url, received):
        env = {
            **os.environ,
            "LANGFUSE_PUBLIC_KEY": "pk-lf-snippets",
            "LANGFUSE_SECRET_KEY": "sk-lf-snippets",
            "LANGFUSE_BASE_URL": url,
        }
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert [(name, attributes.get("session.id")) for name, attributes in received.spans] == [
        ("answer", ID)
    ]


def run_and_check_output(
    block: Block, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """:func:`run`, and where the block prints spans, each printed with the session id."""
    run(block, monkeypatch)
    if "ConsoleSpanExporter" in block.code:
        printed = capfd.readouterr().out
        assert f'"session.id": "{ID}"' in printed, printed
        assert '"name": "llm-call"' in printed


if __name__ == "__main__":  # python -m tests.snippets FILE LINE: one block, in this process
    path, line = Path(sys.argv[1]).resolve(), int(sys.argv[2])
    (block,) = [found for found in blocks(path) if found.line == line]
    check(block)
