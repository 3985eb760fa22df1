"""End to end against a real Phoenix: three concurrent conversations of three turns through the
FastAPI example and its model service, each exactly one Phoenix session holding every trace; two
concurrent MCP clients of the MCP example, each one Phoenix session under its Mcp-Session-Id;
an agent's conversation through two MCP client sessions, one Phoenix session.

Phoenix is large and lives in its own environment: ``scripts/phoenix-env`` makes it, and
``.ci/run`` runs this file on its own step (``scripts/test -m phoenix``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import ROOT, free_port, running

pytestmark = pytest.mark.phoenix

PROJECT = "session-mw-demo"
PHOENIX = Path(os.environ.get("PHOENIX_BIN", ROOT / ".venv-phoenix" / "bin" / "phoenix"))


@pytest.fixture(scope="module")
def phoenix() -> Iterator[str]:
    if not PHOENIX.exists():
        pytest.fail(f"no Phoenix at {PHOENIX}: run scripts/phoenix-env (or set PHOENIX_BIN)")
    port, grpc_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as workdir:
        env = {
            **os.environ,
            "PHOENIX_WORKING_DIR": workdir,
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(port),
            "PHOENIX_GRPC_PORT": str(grpc_port),
        }
        log = Path(workdir) / "phoenix.log"
        with log.open("wb") as out:
            process = subprocess.Popen([str(PHOENIX), "serve"], env=env, stdout=out, stderr=out)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while not healthy(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Phoenix did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
            yield url
        finally:
            process.terminate()
            process.wait(30)


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except (OSError, httpx.HTTPError):
        return False


async def conversation(client: httpx.AsyncClient, name: str) -> str:
    session_id: str | None = None
    for turn in range(3):
        headers = {} if session_id is None else {"X-Session-Id": session_id}
        response = await client.post("/chat", json={"message": f"{name} {turn}"}, headers=headers)
        assert response.status_code == 200
        assert response.text.endswith("event: done\ndata: {}\n\n")
        echoed = response.headers["x-session-id"]
        assert session_id is None or echoed == session_id
        session_id = echoed
    assert session_id is not None
    return session_id


def collect(phoenix: str, resource: str, project: str = PROJECT) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        response = httpx.get(f"{phoenix}/v1/projects/{project}/{resource}", params=params)
        if response.status_code == 404 and not items:
            # Phoenix makes a project when it stores the project's first span, after the export
            # returned: until then the project holds nothing, which the callers wait out.
            return items
        response.raise_for_status()
        body = response.json()
        items += body["data"]
        cursor = body.get("next_cursor")
        if not cursor:
            return items


def stored_spans(
    phoenix: str, project: str, ready: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The project's spans once ``ready`` finds them all stored, or what is there after 60 s."""
    deadline = time.monotonic() + 60
    while True:
        spans = collect(phoenix, "spans", project)
        if ready(spans) or time.monotonic() > deadline:
            return spans
        time.sleep(0.5)


def test_three_conversations_are_three_sessions_in_phoenix(phoenix: str) -> None:
    env = {
        **os.environ,
        "PHOENIX_COLLECTOR_ENDPOINT": phoenix,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    model_port, gateway_port = free_port(), free_port()
    model = ["uvicorn", "--factory", "examples.fastapi_app.model_service:create_model_service"]
    gateway = ["uvicorn", "--factory", "examples.fastapi_app.app:create_app"]
    common = ["--host", "127.0.0.1", "--log-level", "warning", "--port"]
    with running([*model, *common, str(model_port)], model_port, env=env) as model_url:
        env["MODEL_URL"] = model_url
        with running([*gateway, *common, str(gateway_port)], gateway_port, env=env) as url:

            async def drive() -> list[str]:
                async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                    return list(
                        await asyncio.gather(*(conversation(client, f"c{n}") for n in range(3)))
                    )

            ids = asyncio.run(drive())
    # Both services have shut down and flushed; Phoenix may still be ingesting.
    # Per turn: chat-turn (gateway) + fake-llm (model service).
    spans = stored_spans(phoenix, PROJECT, lambda spans: len(spans) >= 18)
    assert len(set(ids)) == 3
    assert len(spans) == 18
    for span in spans:
        assert span["attributes"].get("session.id") in ids, span["name"]

    traces_by_session: dict[str, set[str]] = defaultdict(set)
    names_by_session: dict[str, list[str]] = defaultdict(list)
    for span in spans:
        traces_by_session[span["attributes"]["session.id"]].add(span["context"]["trace_id"])
        names_by_session[span["attributes"]["session.id"]].append(span["name"])

    sessions = {s["session_id"]: s for s in collect(phoenix, "sessions")}
    assert set(sessions) == set(ids)
    for session_id in ids:
        in_phoenix = {t["trace_id"] for t in sessions[session_id]["traces"]}
        assert in_phoenix == traces_by_session[session_id]
        assert len(in_phoenix) == 3  # one trace per turn, spanning both services
        assert sorted(names_by_session[session_id]) == ["chat-turn"] * 3 + ["fake-llm"] * 3


def test_demo_sends_its_run_to_phoenix_and_links_the_sessions(phoenix: str) -> None:
    import io

    from examples.demo import main

    out = io.StringIO()
    main(["--phoenix", phoenix], out)
    links = [line for line in out.getvalue().splitlines() if f"{phoenix}/projects/" in line]
    assert len(links) == 2
    for line in links:
        link = line.split(": ", 1)[1]
        assert httpx.get(link, timeout=10).status_code == 200


@pytest.mark.above_floors  # the MCP SDK 2 needs OpenTelemetry API >= 1.28
def test_each_mcp_client_session_is_one_phoenix_session(phoenix: str, tmp_path: Path) -> None:
    from tests.test_mcp import Exchange, conversation

    project = "session-mw-mcp"
    port = free_port()
    env = {
        **os.environ,
        "PHOENIX_COLLECTOR_ENDPOINT": phoenix,
        "PHOENIX_PROJECT_NAME": project,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "PORT": str(port),
    }

    async def two_clients(url: str) -> list[list[str]]:
        return list(await asyncio.gather(*(conversation(url, Exchange()) for _ in range(2))))

    with (
        (tmp_path / "server.log").open("w") as log,
        running(["examples.mcp_server.app"], port, env=env, log=log) as url,
    ):
        calls = asyncio.run(two_clients(f"{url}/mcp"))
    ids = [first for first, _ in calls]
    assert len(set(ids)) == 2

    # Phoenix stores each export batch on its own: wait for every span the checks below name
    # (per client: three tool calls, the chat span and its fake-llm), not only the last ones.
    def complete(spans: list[dict[str, Any]]) -> bool:
        names = [s["name"] for s in spans]
        tool_calls = sum(n.startswith("tools/call") for n in names)
        return tool_calls >= 6 and names.count("chat") >= 2 and names.count("fake-llm") >= 2

    spans = stored_spans(phoenix, project, complete)
    traces_by_session: dict[str, set[str]] = defaultdict(set)
    names_by_session: dict[str, list[str]] = defaultdict(list)
    for span in spans:
        session_id = span["attributes"].get("session.id")
        if session_id is None:  # initialize: the server has issued no id yet
            assert span["name"] == "initialize"
            continue
        traces_by_session[session_id].add(span["context"]["trace_id"])
        names_by_session[session_id].append(span["name"])

    sessions = {s["session_id"]: s for s in collect(phoenix, "sessions", project)}
    assert set(sessions) == set(ids)
    for session_id in ids:
        assert {t["trace_id"] for t in sessions[session_id]["traces"]} == traces_by_session[
            session_id
        ]
        names = names_by_session[session_id]
        assert sorted(n for n in names if n.startswith("tools/call")) == [
            "tools/call chat",
            "tools/call session_id",
            "tools/call session_id",
        ]
        assert names.count("chat") == names.count("fake-llm") == 1


@pytest.mark.above_floors  # the MCP SDK 2 needs OpenTelemetry API >= 1.28
def test_an_agents_conversation_is_one_phoenix_session_across_mcp_clients(
    phoenix: str, tmp_path: Path
) -> None:
    """An agent's conversation reaches the MCP example through two MCP client sessions (the
    2026-07-28 protocol, then the handshake-era one with an Mcp-Session-Id of its own), the id in
    each request's _meta: the agent's spans and the server's are one Phoenix session, the
    conversation's, and the example's chat tool counts its turns across both."""
    import uuid
    from collections import Counter

    from mcp import Client
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from session_mw import session
    from session_mw.mcp import session_transport
    from session_mw.otel import SessionSpanProcessor

    project = "session-mw-mcp-agent"
    conversation = f"conv-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        **os.environ,
        "PHOENIX_COLLECTOR_ENDPOINT": phoenix,
        "PHOENIX_PROJECT_NAME": project,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "PORT": str(port),
    }
    # The agent's own tracing, into the same Phoenix project as the server's.
    resource = Resource({"service.name": "agent", "openinference.project.name": project})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(SessionSpanProcessor())
    exporter = OTLPSpanExporter(endpoint=f"{phoenix}/v1/traces")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("agent")

    async def agent(url: str) -> list[str]:
        replies = []
        with session(conversation):
            for mode, message in (("auto", "hi"), ("legacy", "bye")):
                attributes = {"openinference.span.kind": "AGENT", "input.value": message}
                with tracer.start_as_current_span("agent turn", attributes=attributes):
                    async with Client(session_transport(url), mode=mode) as client:
                        result = await client.call_tool("chat", {"message": message})
                replies.append(result.content[0].text)  # type: ignore[union-attr]
        return replies

    with (
        (tmp_path / "server.log").open("w") as log,
        running(["examples.mcp_server.app"], port, env=env, log=log) as url,
    ):
        replies = asyncio.run(agent(f"{url}/mcp"))
    provider.shutdown()
    assert replies == ["Turn 1: you said 'hi'.", "Turn 2: you said 'bye'."]

    # Per turn: the agent's span, the server's tools/list and tools/call, the chat tool's span
    # and its fake-llm; the first client's server/discover, the second's initialize and
    # notifications/initialized (a trace of its own), each in the conversation through _meta.
    expected = Counter(
        {
            "agent turn": 2,
            "tools/list": 2,
            "tools/call chat": 2,
            "chat": 2,
            "fake-llm": 2,
            "server/discover": 1,
            "initialize": 1,
            "notifications/initialized": 1,
        }
    )
    spans = stored_spans(
        phoenix, project, lambda spans: Counter(s["name"] for s in spans) >= expected
    )
    assert Counter(s["name"] for s in spans) == expected
    assert {s["attributes"].get("session.id") for s in spans} == {conversation}
    sessions = {s["session_id"]: s for s in collect(phoenix, "sessions", project)}
    assert set(sessions) == {conversation}
    traces = {s["context"]["trace_id"] for s in spans}
    assert {t["trace_id"] for t in sessions[conversation]["traces"]} == traces
    # Each agent turn is one trace, across both processes: the SDK carries it in _meta.
    for turn in (s for s in spans if s["name"] == "agent turn"):
        trace = turn["context"]["trace_id"]
        names = {s["name"] for s in spans if s["context"]["trace_id"] == trace}
        assert {"agent turn", "tools/call chat", "chat", "fake-llm"} <= names
