"""Celery: the session travels with the task. Eager mode, Celery's in-process test worker (solo
and threads pools, memory broker), and real ``celery worker`` processes (prefork, solo, threads)
with Debian's redis-server as broker, started on a free loopback port by the test."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.result import AsyncResult
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.concurrency import run_in_threadpool

from session_mw import current_session, session
from session_mw.celery import install
from tests.celery_app import (
    QUICK,
    app,
    fails,
    observed,
    retried,
    spawn,
    spawn_chain,
    spawn_group,
    whoami,
)
from tests.servers import ROOT, free_port, running

TIMEOUT = 30


def seen_id(result: Any) -> str | None:
    seen = result.get(timeout=TIMEOUT, interval=0.01)
    return None if seen is None else str(seen["id"])


# One in-process worker per pool for the whole module: stopping one takes seconds.
@pytest.fixture(scope="module", params=["solo", "threads"])
def worker(request: pytest.FixtureRequest) -> Iterator[None]:
    with start_worker(app, pool=request.param, perform_ping_check=False, shutdown_timeout=30):
        yield


@pytest.mark.usefixtures("worker")
def test_a_task_runs_in_the_session_that_published_it() -> None:
    with session("conv-1"):
        result = whoami.delay()
    seen = result.get(timeout=TIMEOUT)
    assert seen == {
        "id": "conv-1",
        "attributes": {"celery.task.name": "tests.celery_app.whoami", "celery.task.id": result.id},
        "otel": "conv-1",  # OpenInference spans in the task group by it
    }
    with session("conv-1"):
        everything = observed.delay()
    assert everything.get(timeout=TIMEOUT) == {
        "log": "conv-1",  # SessionIdFilter
        "headers": {"X-Session-Id": "conv-1"},  # inject_headers
        "span": "conv-1",  # SessionSpanProcessor
    }


@pytest.mark.usefixtures("worker")
def test_outside_a_session_and_after_one_a_task_has_none() -> None:
    with session("conv-2"):
        first = whoami.delay()
    assert seen_id(first) == "conv-2"
    assert seen_id(whoami.delay()) is None  # the same worker thread: nothing leaked
    failed = None
    with session("conv-3"):
        failed = fails.delay()
    with pytest.raises(RuntimeError, match="the task failed"):
        failed.get(timeout=TIMEOUT)
    assert seen_id(whoami.delay()) is None  # not after a task that raised either


@pytest.mark.usefixtures("worker")
def test_subtasks_chains_groups_and_retries_keep_the_session() -> None:
    with session("conv-4"):
        child = spawn.delay()
        chained = spawn_chain.delay()
        grouped = spawn_group.delay()
        retry = retried.delay()
    assert seen_id(app.AsyncResult(child.get(timeout=TIMEOUT))) == "conv-4"
    assert seen_id(app.AsyncResult(chained.get(timeout=TIMEOUT))) == "conv-4"
    members = grouped.get(timeout=TIMEOUT)
    assert len(members) == 2
    assert [seen_id(app.AsyncResult(member)) for member in members] == ["conv-4", "conv-4"]
    assert retry.get(timeout=TIMEOUT)["id"] == "conv-4"


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("value", ["a b", "x" * 129, "caf\xe9", "\x1b[31m"])
def test_an_invalid_id_is_never_used_nor_logged(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="session_mw"):
        result = whoami.apply_async(headers={"session_id": value})
        assert result.get(timeout=TIMEOUT) is None
    assert "Ignored an invalid session_id task header" in caplog.text
    assert value not in caplog.text


def test_signed_ids_only_with_a_secret() -> None:
    from session_mw._signing import Signer

    secret = "a-secret-of-32-characters-or-so!"
    signed = Signer(secret).sign("conv-5")
    strict = Celery("tests.strict", broker="memory://", backend="cache+memory://")
    strict.conf.update(QUICK, task_default_queue="strict")  # its own queue on the shared broker
    install(strict, secret=secret)

    @strict.task(name="strict.whoami")
    def strict_whoami() -> str | None:
        opened = current_session()
        return None if opened is None else opened.id

    with start_worker(strict, pool="solo", perform_ping_check=False):
        with session(signed):
            assert strict_whoami.delay().get(timeout=TIMEOUT) == signed
        with session("conv-5"):  # unsigned: refused
            assert strict_whoami.delay().get(timeout=TIMEOUT) is None


def test_install_after_the_tasks_were_made_says_when_to_call_it() -> None:
    late = Celery("tests.late", broker="memory://")

    @late.task(name="late.noop")
    def noop() -> None:
        pass

    late.finalize()
    with pytest.raises(RuntimeError, match="right after creating the Celery app"):
        install(late)


def test_eager_mode_runs_in_the_callers_session() -> None:
    app.conf.task_always_eager = True
    try:
        with session("conv-6"):
            assert seen_id(whoami.delay()) == "conv-6"
            # Retried in process too: before Celery 5.5 the overridden __call__ lost the
            # request's eagerness, and the retry went to the broker (push_request).
            retry = retried.delay()
        assert retry.state == "SUCCESS"
        assert seen_id(retry) == "conv-6"
        assert whoami.delay().get() is None
    finally:
        app.conf.task_always_eager = False


@pytest.mark.above_floors  # opentelemetry-instrumentation-celery needs OpenTelemetry API >= 1.28
@pytest.mark.usefixtures("worker")
def test_the_span_of_the_celery_instrumentation_carries_the_session(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    instrumentor = CeleryInstrumentor()  # type: ignore[no-untyped-call]
    instrumentor.instrument(tracer_provider=provider)  # its signals reach the running worker
    try:
        with session("conv-7"):
            whoami.delay().get(timeout=TIMEOUT)
    finally:
        instrumentor.uninstrument()
    runs = [s for s in exporter.get_finished_spans() if s.name == "run/tests.celery_app.whoami"]
    assert len(runs) == 1
    assert runs[0].attributes is not None
    assert runs[0].attributes["session.id"] == "conv-7"


# Real worker processes with a Redis broker.

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


@contextmanager
def redis() -> Iterator[str]:
    if not os.path.exists(REDIS):
        pytest.fail(f"no redis-server at {REDIS}: apt-get install redis-server")
    port = free_port()
    args = [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with running(args, port, program=True):
        yield f"redis://127.0.0.1:{port}"


@pytest.mark.redis
@pytest.mark.parametrize("pool", ["prefork", "solo", "threads"])
def test_a_real_worker_process(pool: str) -> None:
    with redis() as url:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CELERY_BROKER_URL": f"{url}/0",
            "CELERY_RESULT_BACKEND": f"{url}/1",
        }
        command = [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker"]
        command += ["--pool", pool, "--concurrency", "2", "--loglevel", "warning"]
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        client = Celery("tests.client", broker=f"{url}/0", backend=f"{url}/1")
        try:
            sessions = [f"conv-{n:02d}" for n in range(20)]
            published: list[tuple[str | None, AsyncResult[Any]]] = []
            for n, name in enumerate(sessions):
                if n % 4 == 0:  # some tasks published outside any session in between
                    published.append((None, client.send_task("tests.celery_app.whoami")))
                with session(name):
                    published.append((name, client.send_task("tests.celery_app.whoami")))
            with session("conv-real"):  # what the worker publishes itself, and a retry
                grouped = client.send_task("tests.celery_app.spawn_group")
                retry = client.send_task("tests.celery_app.retried")
                everything = client.send_task("tests.celery_app.observed")
            for expected, result in published:
                seen = result.get(timeout=60)
                assert (None if seen is None else seen["id"]) == expected
                assert seen is None or seen["otel"] == expected
            members = [client.AsyncResult(m).get(timeout=60) for m in grouped.get(timeout=60)]
            assert [m["id"] for m in members] == ["conv-real", "conv-real"]
            assert retry.get(timeout=60)["id"] == "conv-real"
            seen = everything.get(timeout=60)
            assert (seen["log"], seen["span"]) == ("conv-real", "conv-real")
            assert seen["headers"] == {"X-Session-Id": "conv-real"}
        finally:
            worker.terminate()
            _, errors = worker.communicate(timeout=60)
            client.close()
        assert "Traceback" not in errors, errors


# Thread pools: concurrent.futures does not copy context variables; these do.


def test_an_executor_keeps_the_session_with_copy_context() -> None:
    with ThreadPoolExecutor(max_workers=2) as pool, session("conv-8"):
        lost = pool.submit(current_session).result()
        kept = pool.submit(contextvars.copy_context().run, current_session).result()
    assert lost is None
    assert kept is not None
    assert kept.id == "conv-8"


def test_to_thread_and_run_in_threadpool_keep_the_session() -> None:
    async def run() -> list[str | None]:
        def seen() -> str | None:
            opened = current_session()
            return None if opened is None else opened.id

        with session("conv-9"):
            loop = asyncio.get_running_loop()
            executor = await loop.run_in_executor(None, seen)
            return [await asyncio.to_thread(seen), await run_in_threadpool(seen), executor]

    to_thread, threadpool, executor = asyncio.run(run())
    assert (to_thread, threadpool) == ("conv-9", "conv-9")
    assert executor is None  # loop.run_in_executor does not copy the context


def test_a_task_base_class_of_the_apps_own_is_kept() -> None:
    from celery import Task

    class Audited(Task):  # type: ignore[type-arg]
        audited = True

    own: Celery[Any] = Celery(
        "tests.own", broker="memory://", backend="cache+memory://", task_cls=Audited
    )
    own.conf.update(QUICK, task_default_queue="own")
    install(own)

    @own.task(name="own.whoami")
    def own_whoami() -> str | None:
        opened = current_session()
        return None if opened is None else opened.id

    assert isinstance(own_whoami, Audited)
    with start_worker(own, pool="solo", perform_ping_check=False), session("conv-10"):
        assert own_whoami.delay().get(timeout=TIMEOUT) == "conv-10"
