from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace

from session_mw import Session, current_session, session
from session_mw._scope import close_session, open_session


def test_generated_id_is_a_uuid4_string() -> None:
    with session() as opened:
        assert str(uuid.UUID(opened.id)) == opened.id
        assert uuid.UUID(opened.id).version == 4
        assert current_session() is opened


def test_given_id_and_attributes() -> None:
    attributes = {"app.tenant": "acme"}
    with session("chat-1", attributes=attributes) as opened:
        attributes["app.tenant"] = "changed later"  # the session keeps its own copy
        assert opened.id == "chat-1"
        assert dict(opened.attributes) == {"app.tenant": "acme"}
    assert current_session() is None


def test_nesting_restores_the_outer_session() -> None:
    with session("outer") as outer:
        with session("inner"):
            assert current_session() is not None
            assert current_session().id == "inner"  # type: ignore[union-attr]
            assert otel_context.get_value("session.id") == "inner"
        assert current_session() is outer
        assert otel_context.get_value("session.id") == "outer"
    assert otel_context.get_value("session.id") is None


def test_closed_on_exception() -> None:
    with pytest.raises(RuntimeError), session("doomed"):
        raise RuntimeError("boom")
    assert current_session() is None


def test_otel_context_keeps_its_other_values() -> None:
    key = otel_context.create_key("other")
    token = otel_context.attach(otel_context.set_value(key, "kept"))
    try:
        with session("s"):
            assert otel_context.get_value(key) == "kept"
            assert otel_context.get_value("session.id") == "s"
        assert otel_context.get_value(key) == "kept"
    finally:
        otel_context.detach(token)


def test_thread_local() -> None:
    seen: dict[str, str | None] = {}
    started, release = threading.Event(), threading.Event()

    def worker(name: str) -> None:
        with session(name):
            started.set()
            release.wait(5)
            opened = current_session()
            seen[name] = None if opened is None else opened.id

    with session("main"):
        threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(4)]
        for thread in threads:
            thread.start()
        started.wait(5)
        release.set()
        for thread in threads:
            thread.join(5)
        assert current_session().id == "main"  # type: ignore[union-attr]
    assert seen == {f"t{i}": f"t{i}" for i in range(4)}


@pytest.mark.anyio
async def test_task_local_and_async_with() -> None:
    async def turn(name: str) -> str | None:
        with session(name):
            await asyncio.sleep(0.01)  # other tasks open their sessions meanwhile
            opened = current_session()
            return None if opened is None else opened.id

    names = [f"task{i}" for i in range(20)]
    assert await asyncio.gather(*(turn(n) for n in names)) == names
    assert current_session() is None


@pytest.mark.anyio
async def test_child_tasks_inherit_the_session() -> None:
    async def child() -> str | None:
        opened = current_session()
        return None if opened is None else opened.id

    with session("parent"):
        assert await asyncio.create_task(child()) == "parent"


def test_late_attributes_are_resolved_once_on_first_read() -> None:
    calls = []

    def late(request: object) -> dict[str, str]:
        calls.append(request)
        return {"http.route": "/chat/{id}"}

    opened = Session("s", {"url.path": "/chat/1"}, late, "the request")
    assert calls == []
    assert opened.attributes == {"url.path": "/chat/1", "http.route": "/chat/{id}"}
    assert opened.attributes["http.route"] == "/chat/{id}"
    assert calls == ["the request"]
    assert repr(opened) == (
        "Session(id='s', attributes={'url.path': '/chat/1', 'http.route': '/chat/{id}'})"
    )


def test_late_attributes_may_resolve_to_nothing() -> None:
    opened = Session("s", None, lambda request: None)
    assert dict(opened.attributes) == {}


def test_mark_span_sets_session_attributes_on_the_entry_span(
    provider: trace.TracerProvider,
) -> None:
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("server") as span:
        opened = open_session(
            Session("s", {"url.path": "/p", "http.request.method": "GET"}), mark_span=True
        )
        close_session(opened)
    assert span.attributes == {  # type: ignore[attr-defined]
        "session.id": "s",
        "gen_ai.conversation.id": "s",
        "url.path": "/p",
    }


def test_mark_span_outside_any_span_is_harmless() -> None:
    close_session(open_session(Session("s"), mark_span=True))
    assert current_session() is None
