"""Thread pools: SessionExecutor and in_session carry the submitter's session into the pool
thread, and leave nothing there for the thread's next job."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from session_mw import current_session, session
from session_mw._scope import Session, open_session
from session_mw.otel import SessionSpanProcessor
from session_mw.threads import SessionExecutor, in_session

TIMEOUT = 10


def seen(*_: object) -> str | None:
    opened = current_session()
    return None if opened is None else opened.id


def seen_everything() -> tuple[str | None, object, int]:
    """The session, the OTel context value OpenInference reads, and the thread."""
    return seen(), otel_context.get_value("session.id"), threading.get_ident()


def test_submit_runs_the_job_in_the_submitters_session() -> None:
    with SessionExecutor(max_workers=1) as pool, ThreadPoolExecutor(max_workers=1) as plain:
        with session("conv-1"):  # the pool was made outside: what counts is the submit
            kept = pool.submit(seen_everything)
            lost = plain.submit(seen_everything)
        outside = pool.submit(seen_everything)
        assert kept.result(TIMEOUT)[:2] == ("conv-1", "conv-1")
        assert lost.result(TIMEOUT)[:2] == (None, None)  # what concurrent.futures does alone
        assert outside.result(TIMEOUT)[:2] == (None, None)


def test_map_runs_every_item_in_the_session() -> None:
    with SessionExecutor(max_workers=3) as pool:
        with session("conv-2"):
            inside = list(pool.map(seen, range(6), timeout=TIMEOUT))
        outside = list(pool.map(seen, range(6), timeout=TIMEOUT))
    assert inside == ["conv-2"] * 6
    assert outside == [None] * 6


def test_nested_sessions_the_innermost_goes_to_the_pool() -> None:
    with SessionExecutor(max_workers=2) as pool, session("outer"):
        with session("inner"):
            inner = pool.submit(seen).result(TIMEOUT)
        outer = pool.submit(seen).result(TIMEOUT)
    assert (inner, outer) == ("inner", "outer")


def test_nothing_stays_on_the_pool_thread_for_its_next_job() -> None:
    def opens_and_never_closes() -> tuple[str | None, object, int]:
        open_session(Session("left-open"))  # a job that never closes what it opened
        return seen_everything()

    def fails() -> None:
        raise RuntimeError("the job failed")

    with SessionExecutor(max_workers=1) as pool:  # one thread: every job runs on it
        with session("conv-3"):
            first = pool.submit(seen_everything).result(TIMEOUT)
            careless = pool.submit(opens_and_never_closes).result(TIMEOUT)
            failed = pool.submit(fails)
        with pytest.raises(RuntimeError, match="the job failed"):
            failed.result(TIMEOUT)
        after = pool.submit(seen_everything).result(TIMEOUT)
    assert first[:2] == ("conv-3", "conv-3")
    assert after[:2] == (None, None)
    assert careless[:2] == ("left-open", "left-open")
    assert first[2] == careless[2] == after[2]  # the same thread each time


def test_run_in_executor_and_to_thread() -> None:
    async def run() -> dict[str, str | None]:
        loop = asyncio.get_running_loop()
        with SessionExecutor(max_workers=1) as pool, session("conv-4"):
            return {
                "SessionExecutor": await loop.run_in_executor(pool, seen),
                "in_session, default pool": await loop.run_in_executor(None, in_session(seen)),
                "default pool alone": await loop.run_in_executor(None, seen),
                "to_thread": await asyncio.to_thread(seen),
            }

    assert asyncio.run(run()) == {
        "SessionExecutor": "conv-4",
        "in_session, default pool": "conv-4",
        "default pool alone": None,  # loop.run_in_executor does not copy the context
        "to_thread": "conv-4",  # asyncio.to_thread does
    }


def test_concurrent_tasks_each_submit_in_their_own_session() -> None:
    async def run() -> list[str | None]:
        loop = asyncio.get_running_loop()
        with SessionExecutor(max_workers=2) as pool:

            async def conversation(name: str) -> str | None:
                with session(name):
                    await asyncio.sleep(0)  # the other task runs in between
                    return await loop.run_in_executor(pool, seen)

            return list(await asyncio.gather(*(conversation(f"conv-5{n}") for n in range(4))))

    assert asyncio.run(run()) == ["conv-50", "conv-51", "conv-52", "conv-53"]


def test_in_session_keeps_the_session_of_the_moment_it_wraps() -> None:
    with session("conv-6"):
        wrapped = in_session(seen)
    assert seen() is None
    assert wrapped() == "conv-6"  # called later, outside: the session it was made in
    assert seen() is None  # and nothing left in the caller's context
    assert wrapped.__name__ == "seen"


def test_in_session_runs_in_several_threads_at_once() -> None:
    both_running = threading.Barrier(2, timeout=TIMEOUT)

    def meet(_: object) -> str | None:
        both_running.wait()  # two calls inside the same wrapper at the same time
        return seen()

    with session("conv-7"):
        wrapped = in_session(meet)
    with ThreadPoolExecutor(max_workers=2) as plain:
        assert list(plain.map(wrapped, range(2), timeout=TIMEOUT)) == ["conv-7", "conv-7"]


def test_a_span_in_a_pool_job_carries_the_session_and_its_parent(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    provider.add_span_processor(SessionSpanProcessor())
    tracer = provider.get_tracer(__name__)

    def work() -> None:
        with tracer.start_as_current_span("pool-work"):
            pass

    with (
        SessionExecutor(max_workers=1) as pool,
        session("conv-8"),
        tracer.start_as_current_span("request"),
    ):
        pool.submit(work).result(TIMEOUT)
    spans: dict[str, Any] = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["pool-work"].attributes["session.id"] == "conv-8"
    assert spans["pool-work"].parent.span_id == spans["request"].context.span_id
