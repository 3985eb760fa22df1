"""taskiq: the session travels with the message. taskiq's ``InMemoryBroker`` in process (each task
run in place, in the kicker's asyncio task), and a real ``taskiq worker`` process with
taskiq-redis's broker on Debian's redis-server, started on a free loopback port by the test."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from taskiq import AsyncBroker, AsyncTaskiqTask, InMemoryBroker, TaskiqResult
from taskiq.kicker import AsyncKicker

from session_mw import current_session, session
from session_mw._signing import Signer
from session_mw.otel import SessionSpanProcessor
from session_mw.taskiq import SessionMiddleware
from tests import taskiq_app as app
from tests.servers import ROOT, redis
from tests.test_dramatiq import stop

pytestmark = pytest.mark.anyio
TIMEOUT = 30


async def outcome(task: AsyncTaskiqTask[Any]) -> TaskiqResult[Any]:
    return await task.wait_result(check_interval=0.01, timeout=TIMEOUT)


async def result(task: AsyncTaskiqTask[Any]) -> Any:
    done = await outcome(task)
    assert not done.is_err, done.error
    return done.return_value


async def seen_id(task: AsyncTaskiqTask[Any]) -> str | None:
    seen = await result(task)
    return None if seen is None else str(seen["id"])


def by_id(broker: AsyncBroker, task_id: str) -> AsyncTaskiqTask[Any]:
    return AsyncTaskiqTask(task_id, broker.result_backend)


async def test_a_task_runs_in_the_session_that_kicked_it() -> None:
    with session("conv-1"):
        task = await app.whoami.kiq()
    done = await outcome(task)
    assert done.return_value == {
        "id": "conv-1",
        "attributes": {  # the worker's session, not the kicker's that the task runs inside
            "messaging.system": "taskiq",
            "taskiq.task.name": "tests.taskiq_app:whoami",
            "messaging.message.id": task.task_id,
        },
        "otel": "conv-1",  # OpenInference spans in the task group by it
    }
    assert done.labels["session_id"] == "conv-1"
    with session("conv-1"):
        everything = await app.observed.kiq()
        in_a_thread = await app.whoami_sync.kiq()
    assert await result(everything) == {
        "log": "conv-1",  # SessionIdFilter
        "headers": {"X-Session-Id": "conv-1"},  # inject_headers
        "span": "conv-1",  # SessionSpanProcessor
    }
    assert await seen_id(in_a_thread) == "conv-1"  # a sync task, in taskiq's thread pool


async def test_the_label_alone_opens_the_session() -> None:
    """Kicked outside any session with the label set (as a worker receives it from elsewhere):
    the task runs in the session it names, which the kicker never had."""
    task = await app.whoami.kicker().with_labels(session_id="conv-2").kiq()
    assert await seen_id(task) == "conv-2"
    assert current_session() is None


async def test_outside_a_session_and_after_one_a_task_has_none() -> None:
    outside = await app.whoami.kiq()
    assert await result(outside) is None
    assert "session_id" not in (await outcome(outside)).labels
    with session("conv-3"):
        first = await app.whoami.kiq()
    assert await seen_id(first) == "conv-3"
    # Run in place, in this very asyncio task: the session closed with the task.
    second = await app.whoami.kicker().with_labels(session_id="conv-3b").kiq()
    assert current_session() is None
    assert await seen_id(second) == "conv-3b"
    assert await result(await app.whoami.kiq()) is None
    assert await result(await app.whoami_sync.kiq()) is None
    failed = await app.fails.kicker().with_labels(session_id="conv-3c").kiq()
    assert current_session() is None  # not after a task that raised either
    assert "the task failed" in str((await outcome(failed)).error)
    assert await result(await app.whoami.kiq()) is None


async def test_kicked_from_a_task_and_retried_keep_the_session() -> None:
    with session("conv-4"):
        child = await app.spawn.kiq()
        retry = await app.retried.kiq()
    assert await seen_id(by_id(app.broker, await result(child))) == "conv-4"
    retried = await outcome(retry)
    assert retried.return_value["id"] == "conv-4"
    assert retried.labels["_retries"] == 1  # it is the retry that reported


async def test_a_task_without_a_session_inside_one_leaves_it_open() -> None:
    """Run in place inside a task that has a session, a task whose message names none closes
    nothing of the outer one's."""
    inner_ids: list[str | None] = []

    @app.broker.task(task_name="tests.inner_and_outer")
    async def outer() -> str | None:
        inner = await app.whoami.kicker().with_labels(session_id="a b").kiq()
        inner_ids.append(await seen_id(inner))
        opened = current_session()
        return None if opened is None else opened.id

    task = await outer.kicker().with_labels(session_id="conv-5").kiq()
    assert await result(task) == "conv-5"
    assert current_session() is None
    # In place, the inner task runs inside the outer one's context: its invalid id opened
    # nothing, and it sees the session it runs inside.
    assert inner_ids == ["conv-5"]


@pytest.mark.parametrize("value", ["a b", "x" * 129, "caf\xe9", "\x1b[31m"])
async def test_an_invalid_id_is_never_used_nor_logged(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    # INFO: taskiq's receiver logs each whole message, labels included, at DEBUG.
    with caplog.at_level(logging.INFO):
        task = await app.whoami.kicker().with_labels(session_id=value).kiq()
        assert await result(task) is None
    assert "Ignored an invalid session_id message label" in caplog.text
    assert value not in caplog.text


async def test_signed_ids_only_with_a_secret() -> None:
    secret = "a-secret-of-32-characters-or-so!"
    signed = Signer(secret).sign("conv-6")
    strict = InMemoryBroker(await_inplace=True).with_middlewares(SessionMiddleware(secret=secret))

    @strict.task  # after the middleware this time
    async def strict_whoami() -> str | None:
        opened = current_session()
        return None if opened is None else opened.id

    accepted = await strict_whoami.kicker().with_labels(session_id=signed).kiq()
    refused = await strict_whoami.kicker().with_labels(session_id="conv-6").kiq()  # unsigned
    assert await result(accepted) == signed
    assert await result(refused) is None


async def test_tasks_run_concurrently_keep_their_own_sessions() -> None:
    """The default InMemoryBroker: each task in an asyncio task of its own, all interleaved."""
    concurrent = InMemoryBroker().with_middlewares(SessionMiddleware())
    started = asyncio.Event()

    @concurrent.task
    async def wait_and_see(n: int) -> str | None:
        if n == 9:
            started.set()
        await started.wait()  # every task is running before any returns
        opened = current_session()
        return None if opened is None else opened.id

    tasks = []
    for n in range(10):
        kicker = wait_and_see.kicker()
        if n % 3:
            kicker = kicker.with_labels(session_id=f"conv-7-{n}")
        tasks.append(await kicker.kiq(n))
    await concurrent.wait_all()
    assert [await result(t) for t in tasks] == [
        None if n % 3 == 0 else f"conv-7-{n}" for n in range(10)
    ]


@pytest.mark.above_floors  # taskiq's OpenTelemetry middleware needs OpenTelemetry API >= 1.38
async def test_the_span_of_taskiqs_opentelemetry_middleware_carries_the_session(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from taskiq.middlewares.opentelemetry_middleware import OpenTelemetryMiddleware

    provider.add_span_processor(SessionSpanProcessor())
    traced = InMemoryBroker(await_inplace=True).with_middlewares(
        OpenTelemetryMiddleware(tracer_provider=provider), SessionMiddleware()
    )

    @traced.task(task_name="tests.traced")
    async def work() -> None:
        with provider.get_tracer(__name__).start_as_current_span("inside"):
            pass

    await work.kicker().with_labels(session_id="conv-8").kiq()
    spans = {s.name: (s.attributes or {}).get("session.id") for s in exporter.get_finished_spans()}
    assert spans == {
        "send/tests.traced": None,  # kicked outside any session
        "inside": "conv-8",
        "execute/tests.traced": "conv-8",  # current when the session opened
    }


# A real worker process with taskiq-redis's broker.


@pytest.mark.redis
async def test_a_real_worker_process(tmp_path: Path) -> None:
    from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

    with redis() as url, (tmp_path / "worker.log").open("w+") as log:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TASKIQ_REDIS_URL": f"{url}/0"}
        command = [sys.executable, "-m", "taskiq", "worker", "tests.taskiq_app:broker"]
        command += ["--workers", "1", "--shutdown-timeout", "10"]
        # Its log goes to a file: a pipe read only at the end could fill and block the worker.
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stderr=log, stdout=log)
        client = ListQueueBroker(f"{url}/0").with_result_backend(
            RedisAsyncResultBackend(f"{url}/0")
        )
        client.with_middlewares(SessionMiddleware())
        await client.startup()

        def kicker(name: str) -> AsyncKicker[Any, Any]:
            return AsyncKicker(task_name=f"tests.taskiq_app:{name}", broker=client, labels={})

        try:
            kicked: list[tuple[str | None, AsyncTaskiqTask[Any]]] = []
            for n in range(20):
                if n % 4 == 0:  # some kicked outside any session in between
                    kicked.append((None, await kicker("whoami").kiq()))
                with session(f"conv-{n:02d}"):
                    kicked.append((f"conv-{n:02d}", await kicker("whoami").kiq()))
                    kicked.append((f"conv-{n:02d}", await kicker("whoami_sync").kiq()))
            with session("conv-real"):  # what the worker kicks itself, and a retry
                child = await kicker("spawn").kiq()
                # A kicker by name has none of the task's own labels: the retry's are given.
                retry = await kicker("retried").with_labels(retry_on_error=True).kiq()
                everything = await kicker("observed").kiq()
            invalid = await kicker("whoami").with_labels(session_id="a b\r\nforged-line").kiq()
            for expected, task in kicked:
                seen = await result(task)
                assert (None if seen is None else seen["id"]) == expected
                assert seen is None or seen["otel"] == expected
                # The queue: taskiq-redis's broker's (no queue_name label here).
                assert seen is None or seen["attributes"]["messaging.destination.name"] == "taskiq"
            assert await seen_id(by_id(client, await result(child))) == "conv-real"
            assert await seen_id(retry) == "conv-real"
            seen = await result(everything)
            assert (seen["log"], seen["span"]) == ("conv-real", "conv-real")
            assert seen["headers"] == {"X-Session-Id": "conv-real"}
            assert await result(invalid) is None
        finally:
            await client.shutdown()
            returncode = stop(worker)
        log.seek(0)
        errors = log.read()
    assert returncode == 0, errors
    # The one failure is the retried task's first try.
    assert errors.count("Traceback") == 1, errors
    assert "RuntimeError: the first try fails" in errors
    assert "Ignored an invalid session_id message label" in errors
    assert "forged-line" not in errors
