"""Celery: the session travels with the task, whenever ``install(app)`` was called (before or
after the tasks were made, used, finalized, or the worker started). Eager mode, Celery's
in-process test worker (solo and threads pools, memory broker), and real ``celery worker``
processes (prefork, solo, threads) with Debian's redis-server as broker, started on a free
loopback port by the test."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any

import pytest
from celery import Celery, Task
from celery.contrib.testing.worker import start_worker
from celery.result import AsyncResult
from celery.signals import task_postrun
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.concurrency import run_in_threadpool

from session_mw import current_session, session
from session_mw.celery import install
from tests.celery_app import (
    MADE_BEFORE_INSTALL,
    QUICK,
    Audited,
    app,
    fails,
    observed,
    report,
    retried,
    spawn,
    spawn_chain,
    spawn_group,
    whoami,
)
from tests.servers import ROOT, redis

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


# Tasks made in any order: before install (evaluated, finalized, shared, a base class of the
# app's own), after it, in a worker that has started.


def fresh_app(name: str, **conf: Any) -> Celery[Any]:
    """An app of a test's own on the in-process broker, with a queue of its own."""
    made: Celery[Any] = Celery(name, broker="memory://", backend="cache+memory://")
    made.conf.update(QUICK, task_default_queue=name, **conf)
    return made


def publish(made: Celery[Any], name: str, how: str) -> Any:
    """Runs the task ``name``: ``apply()`` (in process), ``eager`` (``apply_async`` with
    ``task_always_eager``) or ``worker`` (``apply_async`` to the app's running worker)."""
    task = made.tasks[name]
    if how == "apply":
        return task.apply()
    made.conf.task_always_eager = how == "eager"
    try:
        return task.apply_async()
    finally:
        made.conf.task_always_eager = False


def check_sessions(made: Celery[Any], names: list[str], how: str, session_id: str) -> None:
    """Each task runs in the session it was published in, and without one when published
    outside any (nothing left over from the run before it)."""
    for name in names:
        with session(session_id):
            inside = publish(made, name, how)
        outside = publish(made, name, how)
        seen = inside.get(timeout=TIMEOUT, interval=0.01)
        assert seen.pop("audited in", session_id) == session_id, name  # Audited.__call__ too
        attributes = {"celery.task.name": name, "celery.task.id": inside.id}
        assert seen == {"id": session_id, "attributes": attributes, "otel": session_id}, name
        seen = outside.get(timeout=TIMEOUT, interval=0.01)
        assert seen.pop("audited in", None) is None, name
        assert seen == {"id": None, "attributes": {}, "otel": None}, name


#: Tasks of tests.celery_app made before its install(app): evaluated (early, audited: a base
#: class of the app's own) and defined (shared: @shared_task, made when the app finalizes).
MADE_EARLY = [*MADE_BEFORE_INSTALL, "tests.celery_app.shared"]


def test_tasks_made_before_install_keep_their_classes() -> None:
    assert MADE_BEFORE_INSTALL == ["tests.celery_app.early", "tests.celery_app.audited"]
    assert isinstance(app.tasks["tests.celery_app.audited"], Audited)
    for name in MADE_EARLY:  # pickled as its name and the module that makes it, as before
        assert app.tasks[name].__reduce__()[1] == (name, "tests.celery_app")


@pytest.mark.parametrize("how", ["apply", "eager"])
def test_tasks_made_before_install_run_in_the_session_in_process(how: str) -> None:
    check_sessions(app, MADE_EARLY, how, f"conv-{how}")


@pytest.mark.usefixtures("worker")
def test_tasks_made_before_install_run_in_the_session_on_a_worker() -> None:
    check_sessions(app, MADE_EARLY, "worker", "conv-11")


def test_an_eager_task_has_the_callers_attributes_and_its_own() -> None:
    with session("conv-19", attributes={"user.id": "u-1", "url.path": "/chat"}):
        result = app.tasks["tests.celery_app.early"].apply()
    assert result.get()["attributes"] == {
        "user.id": "u-1",
        "url.path": "/chat",
        "celery.task.name": "tests.celery_app.early",
        "celery.task.id": result.id,
    }


def test_every_task_of_an_app_finalized_before_install_runs_in_the_session() -> None:
    made = fresh_app("tests.finalized")

    @made.task(name="finalized.decorated")
    def decorated() -> dict[str, Any]:
        return report()

    @made.task(name="finalized.audited", base=Audited)
    def audited() -> dict[str, Any]:
        return report()

    class ClassBased(Task):  # type: ignore[type-arg]
        name = "finalized.class_based"

        def run(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return report()

    made.register_task(ClassBased())
    made.finalize()  # makes the @shared_task of tests.celery_app too
    install(made)

    # Made after install, in a finalized app: made at once, registered as they are made.
    @made.task(name="finalized.late")
    def late() -> dict[str, Any]:
        return report()

    @made.task(name="finalized.late_audited", base=Audited)
    def late_audited() -> dict[str, Any]:
        return report()

    class LateClassBased(ClassBased):
        name = "finalized.late_class_based"

    made.register_task(LateClassBased())
    kind = type(made.tasks[late.name])
    made.register_task(made.tasks[late.name])  # registered again: its class stays
    assert type(made.tasks[late.name]) is kind
    names = [decorated.name, audited.name, ClassBased.name, "tests.celery_app.shared"]
    names += [late.name, late_audited.name, LateClassBased.name]
    assert all(name in made.tasks for name in names)
    check_sessions(made, names, "apply", "conv-12")
    check_sessions(made, names, "eager", "conv-13")
    with start_worker(made, pool="solo", perform_ping_check=False):
        check_sessions(made, names, "worker", "conv-14")


def test_install_in_a_worker_that_has_started() -> None:
    """As ``install(app)`` in a ``worker_ready`` or ``worker_process_init`` handler: the worker
    built its tracers already, and keeps its name in the ones install rebuilds."""
    made = fresh_app("tests.started", task_track_started=True)

    @made.task(name="started.whoami", bind=True)
    def started(self: Task[Any, Any]) -> dict[str, Any]:
        seen = report()
        seen["started on"] = made.AsyncResult(str(self.request.id)).info["hostname"]
        return seen

    with start_worker(made, pool="solo", perform_ping_check=False) as worker:
        with session("conv-15"):
            before = started.delay()
        # The header travels (another app's install connected the publish hook), but the
        # task's class and tracer are Celery's own: no session yet.
        assert before.get(timeout=TIMEOUT, interval=0.01)["id"] is None
        install(made)
        with session("conv-16"):
            after = started.delay()
        seen = after.get(timeout=TIMEOUT, interval=0.01)
        assert (seen["id"], seen["otel"]) == ("conv-16", "conv-16")
        assert seen["started on"] == worker.hostname  # type: ignore[attr-defined]
        assert started.delay().get(timeout=TIMEOUT, interval=0.01)["id"] is None


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


@contextmanager
def contexts_left() -> Iterator[dict[str, dict[str, object]]]:
    """The OpenTelemetry context each task leaves behind, by task id: read in ``task_postrun``
    by a receiver connected after the instrumentation's, so after it detached its span."""
    left: dict[str, dict[str, object]] = {}

    def read(task_id: str, **_: Any) -> None:
        left[task_id] = dict(otel_context.get_current())

    task_postrun.connect(read, weak=False)
    try:
        yield left
    finally:
        task_postrun.disconnect(read)


@pytest.mark.above_floors  # opentelemetry-instrumentation-celery needs OpenTelemetry API >= 1.28
@pytest.mark.parametrize("first", ["instrument", "install"])
def test_the_celery_instrumentation_and_the_session_nest_in_either_order(
    first: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    instrumentor = CeleryInstrumentor()  # type: ignore[no-untyped-call]
    made = fresh_app(f"tests.{first}_first")

    @made.task(name=f"{first}_first.report")
    def probe() -> dict[str, Any]:
        return report()

    assert probe.name  # evaluated before both
    steps = [partial(instrumentor.instrument, tracer_provider=provider), partial(install, made)]
    try:
        for step in steps if first == "instrument" else reversed(steps):
            step()
        with contexts_left() as left:
            with session("conv-17"):
                caller = dict(otel_context.get_current())
                eager = probe.apply()
            with start_worker(made, pool="solo", perform_ping_check=False):
                with session("conv-18"):
                    inside = probe.delay()
                outside = probe.delay()  # on the same worker thread, after it
                seen = [r.get(timeout=TIMEOUT, interval=0.01) for r in (eager, inside, outside)]
    finally:
        instrumentor.uninstrument()
    assert [(s["id"], s["otel"]) for s in seen] == [
        ("conv-17", "conv-17"),
        ("conv-18", "conv-18"),
        (None, None),
    ]
    # Every context detached in order: the caller's is back after the eager run, and the
    # worker thread's is empty again after each task.
    assert left == {eager.id: caller, inside.id: {}, outside.id: {}}
    runs = {
        (span.attributes or {})["messaging.message.id"]: span.attributes or {}
        for span in exporter.get_finished_spans()
        if span.name == f"run/{probe.name}"
    }
    assert runs[eager.id]["session.id"] == "conv-17"
    assert runs[inside.id]["session.id"] == "conv-18"
    assert "session.id" not in runs[outside.id]


# Real worker processes with a Redis broker.


@contextmanager
def real_worker(module: str, pool: str) -> Iterator[Celery[Any]]:
    """A ``celery worker`` process for ``module``'s app, on a Redis of its own, and an app
    that publishes to it."""
    with redis() as url:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CELERY_BROKER_URL": f"{url}/0",
            "CELERY_RESULT_BACKEND": f"{url}/1",
        }
        command = [sys.executable, "-m", "celery", "-A", module, "worker"]
        command += ["--pool", pool, "--concurrency", "2", "--loglevel", "warning"]
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        client = Celery("tests.client", broker=f"{url}/0", backend=f"{url}/1")
        try:
            yield client
        finally:
            worker.terminate()
            _, errors = worker.communicate(timeout=60)
            client.close()
        assert "Traceback" not in errors, errors


@pytest.mark.redis
@pytest.mark.parametrize("pool", ["prefork", "solo", "threads"])
def test_a_real_worker_process(pool: str) -> None:
    with real_worker("tests.celery_app", pool) as client:
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
        made_early: list[tuple[str | None, AsyncResult[Any]]] = []
        for name in MADE_EARLY:  # made before install(app): evaluated, base=, @shared_task
            with session("conv-early"):
                made_early.append(("conv-early", client.send_task(name)))
            made_early.append((None, client.send_task(name)))
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
        for expected, result in made_early:
            seen = result.get(timeout=60)
            assert (seen["id"], seen["otel"]) == (expected, expected)
            assert seen.get("audited in", expected) == expected


@pytest.mark.redis
def test_install_in_worker_process_init_of_a_real_prefork_worker() -> None:
    with real_worker("tests.celery_late", "prefork") as client:
        published: list[tuple[str | None, AsyncResult[Any]]] = []
        for n in range(8):  # both pool processes, and one task after another on each
            with session(f"conv-late-{n}"):
                published.append((f"conv-late-{n}", client.send_task("late.report")))
            published.append((None, client.send_task("late.report")))
        for expected, result in published:
            seen = result.get(timeout=60)
            assert (seen["id"], seen["otel"]) == (expected, expected)


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
