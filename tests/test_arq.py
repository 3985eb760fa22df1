"""arq: the session travels with the job. The installed functions called as arq's worker calls
them (no Redis needed), a ``Worker`` in process in burst mode, and a real ``arq`` worker process,
both with Debian's redis-server, started on a free loopback port by the test."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job
from arq.worker import Function, create_worker

from session_mw import current_session, session
from session_mw._signing import Signer
from session_mw.arq import KWARG, enqueue_job, install
from tests import arq_app as app
from tests.servers import ROOT, redis
from tests.test_dramatiq import stop

pytestmark = pytest.mark.anyio
TIMEOUT = 30


def function(name: str, settings: Any = app.WorkerSettings) -> Function:
    functions = settings["functions"] if isinstance(settings, dict) else settings.functions
    found: Function = next(f for f in functions if f.name == name)
    return found


async def run(name: str, *args: Any, job_id: str = "job-1", **kwargs: Any) -> Any:
    """Call an installed function as arq's worker does: a fresh ctx, the job's arguments."""
    return await function(name).coroutine({"job_id": job_id, "job_try": 2}, *args, **kwargs)


# The installed functions, called as arq's worker calls them.


async def test_a_function_runs_in_the_session_its_job_carries() -> None:
    seen = await run("whoami", 1, "two", job_id="job-2", three=3, _session_id="conv-1")
    assert seen == {
        "id": "conv-1",
        "attributes": {
            "messaging.system": "arq",
            "arq.task.name": "whoami",
            "messaging.message.id": "job-2",
        },
        "otel": "conv-1",  # OpenInference spans in the job group by it
        "args": [1, "two"],
        "kwargs": {"three": 3},  # the function never sees the session's argument
    }
    assert current_session() is None  # closed in this very asyncio task
    assert await run("observed", _session_id="conv-1") == {
        "log": "conv-1",  # SessionIdFilter
        "headers": {"X-Session-Id": "conv-1"},  # inject_headers
        "span": "conv-1",  # SessionSpanProcessor
    }
    assert (await run("retried", _session_id="conv-1"))["try"] == 2


async def test_without_the_argument_and_after_a_failure_a_function_has_none() -> None:
    assert await run("whoami") is None
    assert await run("whoami", _session_id="conv-2") is not None
    assert await run("whoami") is None
    with pytest.raises(RuntimeError, match="the job failed"):
        await run("fails", _session_id="conv-2")
    assert current_session() is None
    assert await run("whoami") is None


@pytest.mark.parametrize("value", ["a b", "x" * 129, "caf\xe9", "\x1b[31m"])
async def test_an_invalid_id_is_never_used_nor_logged(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        assert await run("whoami", _session_id=value) is None
    assert "Ignored an invalid _session_id job argument" in caplog.text
    assert value not in caplog.text


async def test_signed_ids_only_with_a_secret() -> None:
    secret = "a-secret-of-32-characters-or-so!"
    signed = Signer(secret).sign("conv-3")

    async def strict_whoami(ctx: dict[Any, Any]) -> str | None:
        opened = current_session()
        return None if opened is None else opened.id

    settings: dict[str, Any] = {"functions": [strict_whoami]}  # the dict arq also takes
    install(settings, secret=secret)
    strict = settings["functions"][0].coroutine
    assert await strict({"job_id": "job-3"}, _session_id=signed) == signed
    assert await strict({"job_id": "job-4"}, _session_id="conv-3") is None  # unsigned


async def test_installing_twice_wraps_once() -> None:
    whoami = function("whoami").coroutine
    assert getattr(whoami, "__wrapped__", None) is app.whoami  # tests.arq_app installs twice
    install(app.WorkerSettings)
    assert function("whoami").coroutine is whoami


class _Recorder:
    """Stands in for arq's pool on the publishing side: what enqueue_job hands to arq."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    async def enqueue_job(self, function: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((function, args, kwargs))


async def test_enqueue_job_adds_the_id_only_in_a_session() -> None:
    recorder = _Recorder()
    pool = cast(ArqRedis, recorder)
    with session("conv-4"):
        await enqueue_job(pool, "whoami", 1, _job_id="j", three=3)
        await enqueue_job(pool, "whoami", _session_id="given")
    await enqueue_job(pool, "whoami", 2)
    assert recorder.calls == [
        ("whoami", (1,), {"_job_id": "j", "three": 3, KWARG: "conv-4"}),
        ("whoami", (), {KWARG: "given"}),  # an explicit one is kept
        ("whoami", (2,), {}),
    ]


# A Worker in process (burst mode) and a real worker process, with Debian's redis-server.


@asynccontextmanager
async def pool() -> AsyncIterator[tuple[str, ArqRedis]]:
    with redis() as url:
        connection = await create_pool(RedisSettings.from_dsn(url))
        try:
            yield url, connection
        finally:
            await connection.aclose()


async def result(job: Job | None) -> Any:
    """The job's result, or its exception raised. Not arq 0.25's Job.result(): it reads the
    result and the queue one after the other, outside the transaction it opens, and raises
    ResultNotFound for a job that finished between the two reads."""
    assert job is not None
    deadline = time.monotonic() + TIMEOUT
    while (done := await job.result_info()) is None:
        assert time.monotonic() < deadline, f"no result for job {job.job_id}"
        await asyncio.sleep(0.01)
    if not done.success:
        raise done.result
    return done.result


async def seen_id(job: Job | None) -> str | None:
    seen = await result(job)
    return None if seen is None else str(seen["id"])


@pytest.mark.redis
async def test_a_worker_in_process(caplog: pytest.LogCaptureFixture) -> None:
    async with pool() as (_, redis_pool):
        with session("conv-5"):
            first = await enqueue_job(redis_pool, "whoami", 1)
            child = await enqueue_job(redis_pool, "spawn")
            retry = await enqueue_job(redis_pool, "retried")
            failed = await enqueue_job(redis_pool, "fails")
        outside = await enqueue_job(redis_pool, "whoami")
        invalid = await redis_pool.enqueue_job("whoami", _session_id="a b\r\nforged-line")
        # On this test's pool, which the test closes (Worker.close() would call redis' deprecated
        # close() in arq 0.25), and leaving pytest's signal handling alone.
        settings: Any = app.WorkerSettings  # arq's type for it lists every setting arq has
        worker = create_worker(
            settings, redis_pool=redis_pool, burst=True, max_jobs=1, handle_signals=False
        )
        with caplog.at_level(logging.WARNING):
            # Until the queue is empty, one job at a time: a job is in the queue until it ends,
            # so what it enqueues (spawn's child, a retry) is there before it leaves.
            await worker.async_run()
        seen = await result(first)
        assert seen["id"] == "conv-5"
        assert seen["attributes"]["messaging.message.id"] == first.job_id  # type: ignore[union-attr]
        assert seen["args"] == [1]
        assert seen["kwargs"] == {}
        assert await seen_id(Job(await result(child), redis_pool)) == "conv-5"
        assert (await result(retry))["id"] == "conv-5"  # the same job, run a second time
        with pytest.raises(RuntimeError, match="the job failed"):
            await result(failed)
        assert await result(outside) is None  # after a job that failed, on one worker
        assert await result(invalid) is None
    assert "Ignored an invalid _session_id job argument" in caplog.text
    assert "forged-line" not in caplog.text


@pytest.mark.redis
async def test_a_real_worker_process(tmp_path: Path) -> None:
    async with pool() as (url, redis_pool):
        enqueued: list[tuple[str | None, Job | None]] = []
        for n in range(20):
            if n % 4 == 0:  # some enqueued outside any session in between
                enqueued.append((None, await enqueue_job(redis_pool, "whoami")))
            with session(f"conv-{n:02d}"):
                enqueued.append((f"conv-{n:02d}", await enqueue_job(redis_pool, "whoami")))
        with session("conv-real"):  # what the worker enqueues itself, and a retry
            child = await enqueue_job(redis_pool, "spawn")
            retry = await enqueue_job(redis_pool, "retried")
            everything = await enqueue_job(redis_pool, "observed")
        invalid = await redis_pool.enqueue_job("whoami", _session_id="a b\r\nforged-line")
        # Burst mode: the worker exits once the queue is empty, and is never signalled. arq 0.25
        # sometimes misses a SIGTERM that lands while a job is finishing, and runs on.
        with (tmp_path / "worker.log").open("w+") as log:
            env = {**os.environ, "PYTHONPATH": str(ROOT), "ARQ_REDIS_URL": url}
            command = [sys.executable, "-m", "arq", "--burst", "tests.arq_app.WorkerSettings"]
            # Its log goes to a file: a pipe read only at the end could fill and block it.
            worker = subprocess.Popen(command, cwd=ROOT, env=env, stderr=log, stdout=log)
            try:
                returncode: int | None = worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                returncode = stop(worker)
            log.seek(0)
            errors = log.read()
        assert returncode == 0, errors
        for expected, job in enqueued:
            seen = await result(job)
            assert (None if seen is None else seen["id"]) == expected
            assert seen is None or seen["otel"] == expected
        assert await seen_id(Job(await result(child), redis_pool)) == "conv-real"
        assert await seen_id(retry) == "conv-real"
        seen = await result(everything)
        assert (seen["log"], seen["span"]) == ("conv-real", "conv-real")
        assert seen["headers"] == {"X-Session-Id": "conv-real"}
        assert await result(invalid) is None
    assert "Traceback" not in errors, errors
    assert "Ignored an invalid _session_id job argument" in errors
    # arq logs each job's arguments, repr'd: the id's CR LF never starts a line of its own.
    assert "\nforged-line" not in errors
