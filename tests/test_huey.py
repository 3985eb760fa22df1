"""Huey: the session travels with the task. In process: MemoryHuey in immediate mode, and
MemoryHuey's queue drained in the test's thread (every message serialized and read back, one
task after the other, as a consumer's worker runs them); and real ``huey_consumer`` processes
(thread and process workers) against Debian's redis-server, started on a free loopback port by
the test."""

from __future__ import annotations

import datetime
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from huey import MemoryHuey
from huey.exceptions import CancelExecution, TaskException
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from session_mw import current_session, session
from session_mw._signing import Signer
from session_mw.huey import ATTRIBUTE, KEY, install
from session_mw.otel import SessionSpanProcessor
from tests import huey_app
from tests.huey_app import NAME, Tasks, make
from tests.servers import ROOT, redis

TIMEOUT = 30  # seconds a real consumer may take for a result
SECRET = "a-secret-of-32-characters-or-so!"


def drain(huey: Any) -> None:
    """Run every queued task, and every scheduled one, in this thread, as a consumer does:
    each read back from its serialized message. The clock is an hour ahead: whatever is
    scheduled (a retry's delay) is due."""
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    later = later.replace(tzinfo=None)  # Huey's naive UTC
    for _ in range(100):  # bounded: a task that re-enqueues itself for ever fails the test
        task = huey.dequeue()
        if task is not None:
            huey.execute(task, later)
            continue
        due = huey.read_schedule(later)
        if not due:
            return
        for task in due:
            huey.enqueue(task)
    pytest.fail("the queue never ran dry")


def seen_now() -> str | None:
    opened = current_session()
    return None if opened is None else opened.id


def seen_id(result: Any) -> str | None:
    """The id a task's result (a Huey ``Result``) reports."""
    return id_of(result.get())


def id_of(seen: dict[str, Any] | None) -> str | None:
    assert seen is not None, "the task has not run"
    return None if seen["id"] is None else str(seen["id"])


@pytest.fixture(params=["install first", "install after the tasks"])
def app(request: pytest.FixtureRequest) -> Tasks:
    """Tasks on a MemoryHuey of their own, whose queue :func:`drain` runs."""
    huey = MemoryHuey(NAME)
    if request.param == "install first":
        install(huey)
        return Tasks(huey)
    tasks = Tasks(huey)
    install(huey)
    return tasks


@pytest.fixture
def immediate() -> Tasks:
    huey = MemoryHuey(NAME, immediate=True)
    install(huey)
    return Tasks(huey)


def test_a_task_runs_in_the_session_that_enqueued_it(app: Tasks) -> None:
    with session("conv-1"):
        result = app.report()
        everything = app.observed()
    assert app.huey.pending()[0].session_id == "conv-1"  # in the message, read back
    drain(app.huey)
    assert result.get() == {
        "id": "conv-1",
        "attributes": {
            "messaging.system": "huey",
            "huey.task.name": "tests.huey_app.report",
            "messaging.message.id": result.id,
            "messaging.destination.name": NAME,
        },
        "otel": "conv-1",  # OpenInference spans in the task group by it
    }
    assert everything.get() == {
        "log": "conv-1",  # SessionIdFilter
        "headers": {"X-Session-Id": "conv-1"},  # inject_headers
        "span": "conv-1",  # SessionSpanProcessor
    }


def test_immediate_mode_runs_the_task_in_the_session(immediate: Tasks) -> None:
    with session("conv-2"):
        assert seen_id(immediate.report()) == "conv-2"
        assert seen_id(immediate.retried()) == "conv-2"  # retried in process
    assert seen_id(immediate.report()) is None


def test_outside_a_session_after_one_and_after_a_failure_a_task_has_none(app: Tasks) -> None:
    with session("conv-3"):
        first = app.report()
    outside = app.report()
    with session("conv-4"):
        failed = app.fails.s().error(app.after)
        failed_result = app.huey.enqueue(failed)
    after = app.report()
    drain(app.huey)  # one thread, one task after the other
    assert seen_id(first) == "conv-3"
    assert seen_id(outside) is None  # the same thread: nothing leaked from the task before
    with pytest.raises(TaskException, match="the task failed"):
        failed_result.get()
    assert id_of(app.huey.result(failed.on_error.id)) == "conv-4"  # the .error() step
    assert seen_id(after) is None  # not after a task that raised either


def test_tasks_enqueued_by_a_task_pipelines_and_retries_keep_the_session(app: Tasks) -> None:
    with session("conv-5"):
        child = app.spawn()
        pipeline = app.huey.enqueue(app.report.s().then(app.after).then(app.after))
        retry = app.retried()
        rescheduled = app.rescheduled()  # retried through the schedule: serialized again
    drain(app.huey)
    assert id_of(app.huey.result(child.get())) == "conv-5"
    assert [seen_id(step) for step in pipeline] == ["conv-5", "conv-5", "conv-5"]
    assert seen_id(retry) == "conv-5"
    assert seen_id(rescheduled) == "conv-5"


@pytest.mark.parametrize("value", ["a b", "x" * 129, "caf\xe9", "\x1b[31m"])
def test_an_invalid_id_is_never_used_nor_logged(
    value: str, app: Tasks, caplog: pytest.LogCaptureFixture
) -> None:
    forged = app.huey.enqueue(app.spawn.s(**{KEY: value}))  # where the message carries it
    retried = app.huey.enqueue(app.retried.s(**{KEY: value}))
    with caplog.at_level(logging.WARNING, logger="session_mw"):
        drain(app.huey)
    assert id_of(app.huey.result(forged.get())) is None  # nor passed on to its child
    assert seen_id(retried) is None
    warnings = [r.getMessage() for r in caplog.records if r.name == "session_mw"]
    assert len(warnings) == 2  # once a task: the retry no longer carries it
    assert all("Ignored an invalid session_mw.session_id task argument" in w for w in warnings)
    assert value not in caplog.text


def test_signed_ids_only_with_a_secret() -> None:
    huey = MemoryHuey(NAME)
    install(huey, secret=SECRET)
    tasks = Tasks(huey)
    signed = Signer(SECRET).sign("conv-6")
    with session(signed):
        accepted = tasks.report()
    with session(Signer("another-secret-of-32-characters!").sign("conv-6")):
        foreign = tasks.report()
    with session("conv-6"):  # unsigned
        unsigned = tasks.report()
    drain(huey)
    assert seen_id(accepted) == signed
    assert seen_id(foreign) is None
    assert seen_id(unsigned) is None


def test_a_second_install_keeps_the_first_options() -> None:
    huey = MemoryHuey(NAME)
    install(huey, secret=SECRET)
    install(huey)  # changes nothing: still only signed ids
    tasks = Tasks(huey)
    with session("conv-7"):
        unsigned = tasks.report()
    drain(huey)
    assert seen_id(unsigned) is None


def test_the_task_object_and_its_function_never_see_the_id(app: Tasks) -> None:
    with session("conv-8"):
        task = app.report.s()
        app.huey.enqueue(task)
    assert task.kwargs == {}  # only the message carried it
    (pending,) = app.huey.pending()
    assert pending.kwargs == {}
    assert getattr(pending, ATTRIBUTE) == "conv-8"


def test_hooks_and_signal_handlers_run_in_the_session() -> None:
    from huey.signals import SIGNAL_ERROR, SIGNAL_EXECUTING

    huey = MemoryHuey(NAME)
    install(huey)
    tasks = Tasks(huey)
    heard: list[tuple[str, str | None]] = []

    def pre(task: Any) -> None:
        heard.append(("pre-execute", seen_now()))

    def post(task: Any, value: Any, exception: Exception | None) -> None:
        heard.append(("post-execute", seen_now()))

    def signalled(signal: str, task: Any, *args: Any) -> None:
        heard.append((signal, seen_now()))

    huey.pre_execute()(pre)
    huey.post_execute()(post)
    huey.signal(SIGNAL_EXECUTING, SIGNAL_ERROR)(signalled)
    with session("conv-8h"):
        tasks.fails()
    drain(huey)
    assert heard == [
        ("executing", "conv-8h"),
        ("pre-execute", "conv-8h"),
        ("error", "conv-8h"),  # where apps log a task's failure
        ("post-execute", "conv-8h"),
    ]


def test_a_cancelling_pre_execute_hook_and_a_failing_result_store_leak_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The two ways out of Huey's execution that skip its post-execute hooks.
    huey = MemoryHuey(NAME)
    install(huey)
    tasks = Tasks(huey)

    def cancel_some(task: Any) -> None:
        if task.args == ("cancel",):
            raise CancelExecution(retry=False)

    huey.pre_execute()(cancel_some)

    def store_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the result store is down")

    with session("conv-9"):
        huey.enqueue(tasks.after.s("cancel"))
        huey.enqueue(tasks.report.s())
    cancelled, unstored = huey.pending()
    huey.execute(cancelled)
    assert current_session() is None
    with monkeypatch.context() as patched:
        patched.setattr(huey.storage, "put_data", store_down)
        with pytest.raises(ConnectionError):
            huey.execute(unstored)  # raises out of execute(), after the body ran
    assert current_session() is None
    following = tasks.report()
    drain(huey)
    assert seen_id(following) is None  # the next task on this thread has none either


def test_a_span_made_in_the_task_carries_the_session(
    app: Tasks,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider.add_span_processor(SessionSpanProcessor())
    monkeypatch.setattr(huey_app, "tracing", provider)
    with session("conv-10"):
        app.observed()
    app.observed()
    drain(app.huey)
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["task-work", "task-work"]
    assert [(s.attributes or {}).get("session.id") for s in spans] == ["conv-10", None]
    assert (spans[0].attributes or {})["huey.task.name"] == "tests.huey_app.observed"


# Real consumer processes against a real Redis.


@contextmanager
def consumer(url: str, worker_type: str) -> Iterator[list[str]]:
    """``huey_consumer tests.huey_app.huey`` on ``url`` until the block ends; then its log."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HUEY_REDIS_URL": url}
    command = [sys.executable, "-m", "huey.bin.huey_consumer", "tests.huey_app.huey"]
    command += ["--workers", "2", "--worker-type", worker_type, "--scheduler-interval", "1"]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    log: list[str] = []
    try:
        yield log
    finally:
        process.send_signal(signal.SIGINT)  # stops at once, in-flight tasks interrupted
        output, _ = process.communicate(timeout=TIMEOUT)
        log.append(output)


@pytest.mark.redis
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_a_real_consumer_process(worker_type: str) -> None:
    with redis() as url, consumer(url, worker_type) as log:
        client = make(url)
        install(client)
        tasks = Tasks(client)
        published: list[tuple[str | None, Any]] = []
        for n in range(12):
            if n % 4 == 0:  # some tasks enqueued outside any session in between
                published.append((None, tasks.report()))
            name = f"conv-{n:02d}"
            with session(name):
                published.append((name, tasks.report()))
        with session("conv-real"):
            child = tasks.spawn()
            pipeline = client.enqueue(tasks.report.s().then(tasks.after))
            retry = tasks.retried()
            rescheduled = tasks.rescheduled()
            failed = tasks.fails.s().error(tasks.after)
            client.enqueue(failed)
            everything = tasks.observed()
        invalid = client.enqueue(tasks.report.s(**{KEY: "a b\r\nforged"}))
        last = tasks.report()

        def real_id(result: Any) -> str | None:
            return id_of(result.get(blocking=True, timeout=TIMEOUT))

        def retried_id(result: Any) -> str | None:
            # Huey stores the failed first run's error until the retry's result replaces it;
            # reading it removes it, and the retry's result comes next (asked afresh: a
            # Result object of Huey 2 and 3.0 keeps what it read).
            try:
                return real_id(result)
            except TaskException:
                return real_id_of(result.id)

        def real_id_of(task_id: str) -> str | None:
            return id_of(client.result(task_id, blocking=True, timeout=TIMEOUT))

        for expected, result in published:
            assert real_id(result) == expected
        assert real_id_of(child.get(blocking=True, timeout=TIMEOUT)) == "conv-real"
        assert [real_id(step) for step in pipeline] == ["conv-real", "conv-real"]
        assert retried_id(retry) == "conv-real"
        assert retried_id(rescheduled) == "conv-real"
        assert real_id_of(failed.on_error.id) == "conv-real"
        seen = everything.get(blocking=True, timeout=TIMEOUT)
        assert seen == {
            "log": "conv-real",
            "headers": {"X-Session-Id": "conv-real"},
            "span": "conv-real",
        }
        assert real_id(invalid) is None
        assert real_id(last) is None
    assert "Ignored an invalid session_mw.session_id task argument" in log[0]
    assert "forged" not in log[0]
