"""The backend recipes of docs/backends.md, each shown grouping conversations: Logfire and
LangSmith through their own SDKs, Weave through a plain OTLP exporter as its docs set it up.

Each recipe (tests/recipes_*.py) serves the same chat service (tests/recipes_chat.py) under
uvicorn, in a process of its own, exporting to a local OTLP/HTTP receiver that stands where the
backend would be. Two conversations of two turns each go through it: one with the id the server
issues, one with the client's own id, which has "session" in it. Every span that arrives must
carry its conversation's id under the backend's key, and no trace may mix the two."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.otlp import Exported, Received, receiver
from tests.recipes_chat import TURN_SPANS
from tests.servers import free_port, running

# above_floors: Logfire needs OpenTelemetry >= 1.39, langsmith[otel] >= 1.30, not installable
# at the floors. The Weave recipe needs only the OpenTelemetry packages, and runs there too.

CLIENT_ID = "support-session-7"  # the second conversation's own id: Logfire scans values too
SERVER = 2  # OTLP's SpanKind.SPAN_KIND_SERVER

# Settings that could send the recipes' spans anywhere but the receiver: never inherited.
_BACKEND_ENV = re.compile(r"^(OTEL_|LOGFIRE_|LANGSMITH_|LANGCHAIN_|WANDB_)")


def converse(factory: str, env: Mapping[str, str]) -> list[str]:
    """Two conversations of two turns each through ``factory`` under uvicorn; their ids."""
    port = free_port()
    command = ["uvicorn", "--factory", factory, "--port", str(port), "--log-level", "warning"]
    clean = {key: value for key, value in os.environ.items() if not _BACKEND_ENV.match(key)}
    ids = []
    with running(command, port, env={**clean, **env}) as url:
        for opening in ({}, {"X-Session-Id": CLIENT_ID}):
            first = httpx.post(f"{url}/chat", json={"message": "hi"}, headers=opening)
            assert first.text == "you said hi "  # the whole streamed body
            session_id = first.headers["x-session-id"]
            again = {"X-Session-Id": session_id}
            reply = httpx.post(f"{url}/chat", json={"message": "more"}, headers=again)
            assert reply.text == "you said more "
            ids.append(session_id)
    # The server has shut down: its exporter flushed everything on the way out.
    assert ids[1] == CLIENT_ID != ids[0]
    return ids


def conversations(received: Received, key: str, ids: list[str]) -> dict[str, list[Exported]]:
    """The spans that arrived, by their id under ``key``, checked: every span has one of ``ids``
    there; each conversation is two traces, each rooted at a server span (the turn's request),
    holding the turn's own spans and nothing of the other conversation."""
    by_id: dict[str, list[Exported]] = {session_id: [] for session_id in ids}
    for span in received.exported:
        assert span.attributes.get(key) in ids, (key, span.name, span.attributes)
        by_id[span.attributes[key]].append(span)
    traces: set[str] = set()
    for session_id, spans in by_id.items():
        roots = [span for span in spans if not span.parent_span_id]
        assert [(root.name, root.kind) for root in roots] == [("POST /chat", SERVER)] * 2
        turns = {root.trace_id for root in roots}
        assert {span.trace_id for span in spans} == turns, session_id
        assert traces.isdisjoint(turns)  # a trace never holds two conversations
        traces |= turns
        names = [span.name for span in spans]
        for name in TURN_SPANS:
            assert names.count(name) == 2, (session_id, names)
    return by_id


@pytest.mark.above_floors
def test_logfire_recipe_keeps_the_id_unscrubbed_on_every_span() -> None:
    with receiver() as (url, received):
        env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{url}/v1/traces"}
        ids = converse("tests.recipes_logfire:create_app", env)
    assert {path for path, _ in received.requests} == {"/v1/traces"}
    for key in ("gen_ai.conversation.id", "session.id"):
        by_id = conversations(received, key, ids)
    for spans in by_id.values():
        # Logfire's own log spans (logfire.info in the endpoint) too.
        assert [span.name for span in spans].count("turn: {message}") == 2
        for span in spans:
            assert "logfire.scrubbed" not in span.attributes, span.attributes


@pytest.mark.above_floors
def test_logfire_default_scrubbing_redacts_session_id_but_keeps_the_conversation_id() -> None:
    # What the recipe's callback is for, shown on Logfire's defaults: session.id is redacted on
    # every span, gen_ai.conversation.id arrives whole.
    with receiver() as (url, received):
        env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{url}/v1/traces"}
        ids = converse("tests.recipes_logfire:create_app_default_scrubbing", env)
    conversations(received, "gen_ai.conversation.id", ids)
    assert {span.attributes["session.id"] for span in received.exported} == {
        "[Scrubbed due to 'session']"
    }


@pytest.mark.above_floors
def test_logfire_callback_lets_only_session_ids_through() -> None:
    from logfire import ScrubMatch

    from session_mw.otel import ID_ATTRIBUTES
    from tests.recipes_logfire import keep_session_ids

    def match(*path: str) -> ScrubMatch:
        found = re.match(".+", path[-1])  # the callback reads the path only
        assert found is not None
        return ScrubMatch(path, "the value", found)

    for name in ID_ATTRIBUTES:
        assert keep_session_ids(match("attributes", name)) == "the value"
    assert keep_session_ids(match("attributes", "session_token")) is None
    assert keep_session_ids(match("attributes", "http.request.header.cookie", "session.id")) is None
    assert keep_session_ids(match("message", "session.id")) is None


@pytest.mark.above_floors
def test_langsmith_recipe_puts_the_thread_id_on_every_run() -> None:
    with receiver() as (url, received):
        env = {
            "LANGSMITH_ENDPOINT": url,
            "LANGSMITH_API_KEY": "lsv2_pt_local",
            "LANGSMITH_PROJECT": "chat",
        }
        ids = converse("tests.recipes_langsmith:create_app", env)
    # LangSmith's own exporter, as configured in production, to LangSmith's OTLP path.
    assert {path for path, _ in received.requests} == {"/otel/v1/traces"}
    for _, headers in received.requests:
        assert headers["x-api-key"] == "lsv2_pt_local"
        assert headers["langsmith-project"] == "chat"
    for key in ("langsmith.metadata.thread_id", "session.id"):
        conversations(received, key, ids)


@pytest.mark.above_floors
def test_langsmith_thread_key_is_the_one_its_sdk_writes() -> None:
    from langsmith.integrations.otel import set_langsmith_metadata_attribute

    from tests.recipes_langsmith import ID_ATTRIBUTES

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer(__name__).start_as_current_span("run") as span:
        set_langsmith_metadata_attribute(span, "thread_id", "a-thread")
    (run,) = exporter.get_finished_spans()
    written = {key for key, value in (run.attributes or {}).items() if value == "a-thread"}
    assert written == {"langsmith.metadata.thread_id"}
    assert written <= set(ID_ATTRIBUTES)


def test_weave_recipe_makes_each_request_a_turn_of_its_thread() -> None:
    with receiver() as (url, received):
        env = {"WANDB_BASE_URL": url, "WANDB_API_KEY": "local-key"}
        ids = converse("tests.recipes_weave:create_app", env)
    assert {path for path, _ in received.requests} == {"/otel/v1/traces"}
    assert {headers["wandb-api-key"] for _, headers in received.requests} == {"local-key"}
    for span in received.exported:
        assert span.resource["wandb.entity"] == "acme"
        assert span.resource["wandb.project"] == "chat"
    for key in ("wandb.thread_id", "gen_ai.conversation.id", "session.id"):
        by_id = conversations(received, key, ids)
    for spans in by_id.values():
        # The turns are exactly the requests' server spans; nested spans are no turns.
        turns = [span for span in spans if span.attributes.get("wandb.is_turn") is True]
        assert turns == [span for span in spans if not span.parent_span_id]
        assert all("wandb.is_turn" not in span.attributes for span in spans if span.parent_span_id)
