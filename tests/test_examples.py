"""The examples run as their READMEs say and do what they claim."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from examples.flask_app.app import configure_logging, create_app


def test_flask_example_groups_turns_and_streams() -> None:
    client = create_app().test_client()
    first = client.post("/chat", json={"message": "hello"})
    session_id = first.headers["X-Session-Id"]
    assert first.get_data(as_text=True) == "Turn 1: you said 'hello'. "
    second = client.post("/chat", json={"message": "again"}, headers={"X-Session-Id": session_id})
    assert second.headers["X-Session-Id"] == session_id
    assert second.get_data(as_text=True) == "Turn 2: you said 'again'. "
    other = client.post("/chat", json={"message": "new"})
    assert other.headers["X-Session-Id"] != session_id
    assert other.get_data(as_text=True).startswith("Turn 1:")
    for response in (first, second, other):
        response.close()


def test_flask_example_log_lines_carry_the_session(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers.clear()
    try:
        configure_logging()
        client = create_app().test_client()
        response = client.post("/chat", json={"message": "hi"}, headers={"X-Session-Id": "demo-1"})
        response.get_data()
        response.close()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert "[session demo-1] turn 1 of this conversation" in capsys.readouterr().err


def test_fastapi_example_streams_and_groups_spans_by_session() -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from starlette.testclient import TestClient

    from examples.fastapi_app.app import create_app as create_fastapi_app
    from examples.fastapi_app.telemetry import tracer_provider

    exporter = InMemorySpanExporter()
    client = TestClient(create_fastapi_app(tracer_provider("chat-gateway", exporter)))
    first = client.post("/chat", json={"message": "hello"})
    session_id = first.headers["x-session-id"]
    assert first.headers["content-type"].startswith("text/event-stream")
    assert 'data: "Turn "' in first.text
    assert first.text.endswith("event: done\ndata: {}\n\n")
    second = client.post("/chat", json={"message": "more"}, headers={"X-Session-Id": session_id})
    assert 'data: "2: "' in second.text
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["fake-llm", "chat-turn", "fake-llm", "chat-turn"]
    for span in spans:
        assert (span.attributes or {})["session.id"] == session_id
    chain = spans[1].attributes or {}
    assert chain["openinference.span.kind"] == "CHAIN"
    assert chain["input.value"] == "hello"
    assert chain["output.value"] == "Turn 1: you said 'hello'."
    assert chain["http.route"] == "/chat"


def spans_named(exporter: Any, name: str) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def test_fastapi_example_summarises_a_conversation_in_a_celery_worker_in_its_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from celery.contrib.testing.worker import start_worker
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from starlette.testclient import TestClient

    from examples.fastapi_app import tasks
    from examples.fastapi_app.app import create_app as create_fastapi_app
    from examples.fastapi_app.telemetry import tracer_provider
    from tests.celery_app import QUICK

    exporter = InMemorySpanExporter()
    provider = tracer_provider("chat-worker", exporter)
    monkeypatch.setattr(tasks, "tracer", lambda: provider.get_tracer("test"))
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    assert TestClient(create_fastapi_app(provider)).post("/summary").status_code == 404

    client = TestClient(create_fastapi_app(provider, celery=tasks.celery_app))
    headers = {"X-Session-Id": "conv-summary"}
    for message in ["hello", "and then?"]:
        client.post("/chat", json={"message": message}, headers=headers)
    for key, value in QUICK.items():
        monkeypatch.setitem(tasks.celery_app.conf, key, value)
    with start_worker(tasks.celery_app, pool="solo", perform_ping_check=False):
        accepted = client.post("/summary", headers=headers)
        assert accepted.status_code == 202
        assert accepted.headers["x-session-id"] == "conv-summary"
        deadline = time.monotonic() + 30  # until the worker has run the task
        while not (done := spans_named(exporter, "summarize-conversation")):
            assert time.monotonic() < deadline, "the worker never ran the summary task"
            time.sleep(0.01)
    attributes = done[0].attributes or {}
    assert attributes["session.id"] == "conv-summary"
    assert attributes["output.value"] == "2 messages, the first: 'hello'"


# The demo passes exclude_spans to FastAPIInstrumentor (opentelemetry-instrumentation-fastapi
# >= 0.49b0, which needs opentelemetry-api >= 1.28): not installable at the declared floor 1.20.
@pytest.mark.above_floors
def test_demo_prints_every_turn_grouped_by_session() -> None:
    import io
    import re

    from examples.demo import main

    out = io.StringIO()
    main([], out)
    text = out.getvalue()
    sessions = re.findall(r"session ([0-9a-f-]{36})  \((Ada|Bob), 3 traces\)", text)
    assert sorted(who for _, who in sessions) == ["Ada", "Bob"]
    assert text.count("POST /chat ") == 6
    assert text.count("fake-llm ") == 6
    assert "(no session)" not in text
    for session_id, _ in sessions:
        assert text.count(f"session.id={session_id[:8]}") == 9  # 3 spans in each of 3 turns


@pytest.mark.above_floors  # the MCP SDK 2 needs OpenTelemetry API >= 1.28
def test_mcp_example_runs_as_documented(tmp_path: Path) -> None:
    import asyncio

    from tests.servers import free_port, running
    from tests.test_mcp import Exchange, conversation

    port = free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "PORT": str(port)}
    with log.open("w") as out, running(["examples.mcp_server.app"], port, env=env, log=out) as url:
        ids = asyncio.run(conversation(f"{url}/mcp", Exchange()))
    assert ids[0] == ids[1] != ""
    # The console exporter printed the tool's spans, and the SDK's own, in that session.
    text = log.read_text()
    assert text.count(f'"session.id": "{ids[0]}"') >= 4  # 3 tools/call spans, chat, fake-llm


def test_django_example_streams_and_groups_turns(tmp_path: Path) -> None:
    import httpx

    from tests.servers import free_port, running

    port = free_port()
    log = tmp_path / "server.log"
    # Explicit: the Django tests of this process set DJANGO_SETTINGS_MODULE to their own project.
    env = {
        **os.environ,
        "PORT": str(port),
        "DJANGO_SETTINGS_MODULE": "examples.django_app.settings",
    }
    with log.open("w") as out, running(["examples.django_app.app"], port, env=env, log=out) as url:
        first = httpx.post(f"{url}/chat", json={"message": "hello"})
        session_id = first.headers["x-session-id"]
        again = {"X-Session-Id": session_id}
        second = httpx.post(f"{url}/chat", json={"message": "again"}, headers=again)
        other = httpx.post(f"{url}/chat", json={"message": "new"})
    assert first.headers["content-type"] == "text/event-stream"
    assert first.text.startswith('data: "Turn "\n\ndata: "1: "')
    assert first.text.endswith("event: done\ndata: {}\n\n")
    assert second.headers["x-session-id"] == session_id
    assert 'data: "2: "' in second.text
    assert other.headers["x-session-id"] != session_id
    assert 'data: "1: "' in other.text
    # Each turn's CHAIN and LLM spans, printed by the console exporter, are in its session.
    assert log.read_text().count(f'"session.id": "{session_id}"') == 4
