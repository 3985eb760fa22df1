"""Every backend that groups by ``session.id``, shown receiving it: Langfuse's own SDK and a plain
OTLP exporter, each exporting to a local OTLP/HTTP receiver standing where the backend would be.
(Phoenix has its own end-to-end suite, test_phoenix.py; the OpenInference path without a span
processor is in test_openinference.py.)"""

from __future__ import annotations

import os

import httpx
import pytest

from tests.otlp import Received, receiver
from tests.servers import free_port, running

# Langfuse's SDK 5 needs OpenTelemetry API >= 1.28: not installable at the floors.
pytestmark = pytest.mark.above_floors


def serve_two_conversations(factory: str, env: dict[str, str], path: str) -> list[str]:
    """Two conversations of two turns each through ``factory`` under uvicorn; their ids."""
    port = free_port()
    command = ["uvicorn", "--factory", factory, "--port", str(port), "--log-level", "warning"]
    ids = []
    with running(command, port, env={**os.environ, **env}) as url:
        for user in ("ada", "grace"):
            first = httpx.post(url + path, json={"message": "hi"}, headers={"X-User": user})
            session_id = first.headers["x-session-id"]
            again = {"X-Session-Id": session_id, "X-User": user}
            assert httpx.post(url + path, json={"message": "more"}, headers=again).is_success
            ids.append(session_id)
    # The server has shut down: its exporter flushed everything on the way out.
    return ids


def by_session(received: Received) -> dict[str | None, list[str]]:
    names: dict[str | None, list[str]] = {}
    for name, attributes in received.spans:
        names.setdefault(attributes.get("session.id"), []).append(name)
    return names


def test_langfuse_observations_carry_the_session_and_the_user() -> None:
    with receiver() as (url, received):
        env = {
            "LANGFUSE_PUBLIC_KEY": "pk-lf-local",
            "LANGFUSE_SECRET_KEY": "sk-lf-local",
            "LANGFUSE_BASE_URL": url,
        }
        ids = serve_two_conversations("tests.apps:langfuse_chat", env, "/ask")
    assert len(set(ids)) == 2
    assert {path for path, _ in received.requests} == {"/api/public/otel/v1/traces"}
    observations = [(n, a) for n, a in received.spans if "langfuse.observation.type" in a]
    assert len(observations) == 8  # per turn: answer and its generation
    assert sorted(by_session(received)[ids[0]]) == ["answer", "answer", "generate", "generate"]
    for name, attributes in observations:
        assert attributes["session.id"] in ids, name
        expected = "ada" if attributes["session.id"] == ids[0] else "grace"
        assert attributes["user.id"] == expected


def test_a_plain_otlp_exporter_gets_the_session() -> None:
    # The FastAPI example's own telemetry set-up: OTLPSpanExporter() reads the endpoint from
    # OTEL_EXPORTER_OTLP_ENDPOINT, as any OpenTelemetry application configured for a collector.
    with receiver() as (url, received):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        ids = serve_two_conversations("examples.fastapi_app.app:create_app", env, "/chat")
    assert {path for path, _ in received.requests} == {"/v1/traces"}
    names = by_session(received)
    assert set(names) == set(ids)  # every span in one of the two sessions
    for session_id in ids:
        assert sorted(names[session_id]) == ["chat-turn", "chat-turn", "fake-llm", "fake-llm"]
