"""RQ: the session travels with the job. In process: RQ's ``SimpleWorker`` (jobs run in the
test's thread, one after the other) and synchronous queues on fakeredis; and real
``rq worker`` processes (forking and simple workers) against Debian's redis-server, started on
a free loopback port by the test."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis import Redis
from rq import Callback, Retry, SimpleWorker
from rq.job import Job

from session_mw import current_session, session
from session_mw._options import OptionValueError
from session_mw._signing import Signer
from session_mw.otel import SessionSpanProcessor
from session_mw.rq import KEY, SessionJob, SessionQueue
from tests import rq_jobs
from tests.rq_jobs import (
    SECRET,
    SignedJob,
    callback_seen,
    enqueue_on_success,
    fails,
    observed,
    record_on_failure,
    record_on_stopped,
    retried,
    spawn,
    spawn_after,
    whoami,
    whoami_async,
)
from tests.servers import ROOT, redis

WORKER_TIMEOUT = 60  # seconds a real worker process may take to drain its queue


@pytest.fixture
def connection() -> Iterator[Redis]:
    server = fakeredis.FakeServer()  # a fresh, empty Redis for every test
    client = fakeredis.FakeRedis(server=server)
    yield client
    client.close()


@pytest.fixture
def queue(connection: Redis) -> SessionQueue:
    return SessionQueue("chat", connection=connection)


def work(queue: SessionQueue, job_class: type[SessionJob] = SessionJob) -> None:
    """Run every job of ``queue`` (and what they enqueue) in this thread, then return."""
    worker = SimpleWorker([queue], connection=queue.connection, job_class=job_class)
    assert worker.work(burst=True, logging_level="WARNING")


def seen(job: Job) -> Any:
    assert job.get_status(refresh=True) == "finished", job.latest_result()
    return job.return_value(refresh=True)


def fetched(queue: SessionQueue, job_id: str) -> Job:
    """The job ``job_id`` (a job that another job or a callback enqueued)."""
    job = queue.fetch_job(job_id)
    assert job is not None
    return job


def seen_id(job: Job) -> str | None:
    result = seen(job)
    return None if result is None else str(result["id"])


def test_a_job_runs_in_the_session_that_enqueued_it(queue: SessionQueue) -> None:
    with session("conv-1"):
        job = queue.enqueue(whoami)
        everything = queue.enqueue(observed)
    assert job.meta == {KEY: "conv-1"}
    work(queue)
    assert seen(job) == {
        "id": "conv-1",
        "attributes": {
            "messaging.system": "rq",
            "rq.task.name": "tests.rq_jobs.whoami",
            "messaging.message.id": job.id,
            "messaging.destination.name": "chat",
        },
        "otel": "conv-1",  # OpenInference spans in the job group by it
    }
    assert seen(everything) == {
        "log": "conv-1",  # SessionIdFilter
        "headers": {"X-Session-Id": "conv-1"},  # inject_headers
        "span": "conv-1",  # SessionSpanProcessor
    }


# RQ 2 runs an async job on an event loop it never closes: its ResourceWarning would surface
# as an unraisable exception in whichever test the loop is collected in; collect it here.
@pytest.mark.filterwarnings("ignore:unclosed event loop:ResourceWarning")
def test_an_async_job_runs_in_the_session(queue: SessionQueue) -> None:
    with session("conv-1a"):
        coroutine = queue.enqueue(whoami_async)
    after = queue.enqueue(whoami_async)
    work(queue)
    gc.collect()
    assert seen_id(coroutine) == "conv-1a"  # RQ's event loop runs it in a copy of the context
    assert seen(after) is None


def test_outside_a_session_after_one_and_after_a_failure_a_job_has_none(
    queue: SessionQueue,
) -> None:
    with session("conv-2"):
        first = queue.enqueue(whoami)
    outside = queue.enqueue(whoami)
    with session("conv-3"):
        failed = queue.enqueue(fails, on_failure=Callback(record_on_failure))
    after = queue.enqueue(whoami)
    assert outside.meta == {}
    work(queue)  # one thread, one job after the other, in enqueue order
    assert seen_id(first) == "conv-2"
    assert seen(outside) is None  # the same thread: nothing leaked from the job before
    assert failed.get_status(refresh=True) == "failed"
    assert callback_seen(failed)["seen"]["id"] == "conv-3"  # on_failure ran in the session
    assert seen(after) is None  # not after a job that raised either


def test_jobs_enqueued_by_a_job_dependents_retries_and_callbacks_keep_the_session(
    queue: SessionQueue,
) -> None:
    with session("conv-4"):
        child = queue.enqueue(spawn)
        pair = queue.enqueue(spawn_after)
        parent = queue.enqueue(whoami)
        dependent = queue.enqueue(whoami, depends_on=parent)
        retry = queue.enqueue(retried, retry=Retry(max=1))
        called = queue.enqueue(whoami, on_success=Callback(enqueue_on_success))
    work(queue)  # a burst runs what the jobs enqueued too
    assert seen_id(fetched(queue, seen(child))) == "conv-4"
    assert seen_id(fetched(queue, seen(pair))) == "conv-4"
    assert seen_id(dependent) == "conv-4"
    assert seen_id(retry) == "conv-4"  # the second run, after the first raised
    callback = callback_seen(called)
    assert callback["seen"]["id"] == "conv-4"  # on_success ran in the session
    assert seen_id(fetched(queue, callback["child"])) == "conv-4"


@pytest.mark.parametrize("value", ["a b", "x" * 129, "caf\xe9", "\x1b[31m"])
def test_an_invalid_id_is_never_used_nor_logged(
    value: str, queue: SessionQueue, caplog: pytest.LogCaptureFixture
) -> None:
    with session("conv-ignored"):  # the meta given wins over the enqueuer's session
        job = queue.enqueue(whoami, meta={KEY: value}, on_success=Callback(enqueue_on_success))
    with caplog.at_level(logging.WARNING, logger="session_mw"):
        work(queue)
    assert seen(job) is None
    child = fetched(queue, callback_seen(job)["child"])
    assert child.meta == {}  # nor passed on to what the job enqueued
    assert seen(child) is None
    warnings = [r.getMessage() for r in caplog.records if r.name == "session_mw"]
    assert len(warnings) == 1  # once for the job and its callback
    assert "Ignored an invalid session_id job meta" in warnings[0]
    assert value not in caplog.text


def test_signed_ids_only_with_a_secret(connection: Redis) -> None:
    signed = Signer(SECRET).sign("conv-5")
    foreign = Signer("another-secret-of-32-characters!").sign("conv-5")
    queue = SessionQueue("signed", connection=connection, job_class=SignedJob)
    with session(signed):
        accepted = queue.enqueue(whoami)
    with session(foreign):
        refused = queue.enqueue(whoami)
    with session("conv-5"):  # unsigned
        unsigned = queue.enqueue(whoami)
    work(queue, SignedJob)
    assert seen_id(accepted) == signed
    assert seen(refused) is None
    assert seen(unsigned) is None


def test_a_validator_of_ones_own_as_a_class_attribute(connection: Redis) -> None:
    def no_guests(value: str) -> bool:
        return value.startswith("conv-")  # a worker never makes an id: UUIDs need not pass

    class ConversationJob(SessionJob):
        validator = no_guests

    queue = SessionQueue("own", connection=connection, job_class=ConversationJob)
    with session("conv-6"):
        kept = queue.enqueue(whoami)
    with session("guest-6"):
        dropped = queue.enqueue(whoami)
    work(queue, ConversationJob)
    assert seen_id(kept) == "conv-6"
    assert seen(dropped) is None


def test_a_mistake_in_the_options_raises_when_the_class_is_defined() -> None:
    with pytest.raises(OptionValueError, match="at least 16 bytes"):

        class Weak(SessionJob):
            secret = "short"


def test_a_synchronous_queue_runs_the_job_in_the_session(connection: Redis) -> None:
    queue = SessionQueue("sync", connection=connection, is_async=False)
    with session("conv-7"):
        job = queue.enqueue(whoami, on_success=Callback(enqueue_on_success))
        assert seen_id(job) == "conv-7"
    assert seen(queue.enqueue(whoami)) is None
    assert callback_seen(job)["seen"]["id"] == "conv-7"


def test_a_stopped_callback_runs_in_the_session(queue: SessionQueue) -> None:
    # RQ runs it in the worker's own process once it stopped the job (rq job stop), through
    # the same property as the others: called here the way RQ calls it.
    with session("conv-7s"):
        job = queue.enqueue(whoami, on_stopped=Callback(record_on_stopped))
    fetched = SessionJob.fetch(job.id, connection=queue.connection)
    callback = fetched.stopped_callback
    assert callback is not None
    callback(fetched, queue.connection)
    assert callback_seen(job)["seen"]["id"] == "conv-7s"
    assert current_session() is None


def test_every_way_of_making_a_job_carries_the_session(queue: SessionQueue) -> None:
    shared = {"tenant": "acme"}
    with session("conv-8"):
        many = queue.enqueue_many([SessionQueue.prepare_data(whoami, job_id="many-1")])
        made = SessionJob.create(whoami, connection=queue.connection, origin="chat")
        plain = queue.enqueue(whoami, meta=shared)
    with session("conv-8b"):  # the same meta dict again, in another session
        again = queue.enqueue(whoami, meta=shared)
    assert shared == {"tenant": "acme"}  # the caller's dict is left as it was
    assert made.meta == {KEY: "conv-8"}
    queue.enqueue_job(made)
    assert plain.meta == {"tenant": "acme", KEY: "conv-8"}  # beside the meta given
    work(queue)
    assert [seen_id(job) for job in [*many, made, plain, again]] == ["conv-8"] * 3 + ["conv-8b"]


def test_a_span_made_in_the_job_carries_the_session(
    queue: SessionQueue,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider.add_span_processor(SessionSpanProcessor())
    monkeypatch.setattr(rq_jobs, "tracing", provider)
    with session("conv-9"):
        queue.enqueue(observed)
    queue.enqueue(observed)
    work(queue)
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["job-work", "job-work"]
    assert [(s.attributes or {}).get("session.id") for s in spans] == ["conv-9", None]
    assert (spans[0].attributes or {})["rq.task.name"] == "tests.rq_jobs.observed"


# Real worker processes against a real Redis.


def rq_worker(url: str, *options: str) -> str:
    """Run ``rq worker --burst`` on the queue ``chat`` until it is empty; its log."""
    command = [sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", url]
    command += ["--queue-class", "session_mw.rq.SessionQueue", *options, "chat"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        command,
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


@pytest.mark.redis
@pytest.mark.parametrize("worker_class", ["rq.Worker", "rq.worker.SimpleWorker"])
def test_a_real_worker_process(worker_class: str) -> None:
    with redis() as url, Redis.from_url(url) as connection:
        queue = SessionQueue("chat", connection=connection)
        published: list[tuple[str | None, Job]] = []
        for n in range(12):
            if n % 4 == 0:  # some jobs enqueued outside any session in between
                published.append((None, queue.enqueue(whoami)))
            name = f"conv-{n:02d}"
            with session(name):
                published.append((name, queue.enqueue(whoami)))
        with session("conv-real"):
            child = queue.enqueue(spawn)
            retry = queue.enqueue(retried, retry=Retry(max=1))
            called = queue.enqueue(whoami, on_success=Callback(enqueue_on_success))
            failed = queue.enqueue(fails, on_failure=Callback(record_on_failure))
            everything = queue.enqueue(observed)
            coroutine = queue.enqueue(whoami_async)
        invalid = queue.enqueue(whoami, meta={KEY: "a b\r\nforged"})
        last = queue.enqueue(whoami)
        log = rq_worker(url, "--job-class", "session_mw.rq.SessionJob", "-w", worker_class)
        for expected, job in published:
            result = seen(job)
            assert (None if result is None else (result["id"], result["otel"])) == (
                None if expected is None else (expected, expected)
            )
        assert seen_id(fetched(queue, seen(child))) == "conv-real"
        assert seen_id(retry) == "conv-real"
        assert callback_seen(called)["seen"]["id"] == "conv-real"
        assert seen_id(fetched(queue, callback_seen(called)["child"])) == "conv-real"
        assert callback_seen(failed)["seen"]["id"] == "conv-real"
        assert seen(everything) == {
            "log": "conv-real",
            "headers": {"X-Session-Id": "conv-real"},
            "span": "conv-real",
        }
        assert seen_id(coroutine) == "conv-real"
        assert seen(invalid) is None
        assert seen(last) is None  # after a failure, an invalid id, in the same worker
    assert "Ignored an invalid session_id job meta" in log
    assert "forged" not in log


@pytest.mark.redis
def test_a_real_worker_takes_its_options_from_the_job_class() -> None:
    signed = Signer(SECRET).sign("conv-signed")
    with redis() as url, Redis.from_url(url) as connection:
        queue = SessionQueue("chat", connection=connection)  # the publisher needs no secret
        with session(signed):
            accepted = queue.enqueue(whoami)
        with session("conv-unsigned"):
            refused = queue.enqueue(whoami)
        rq_worker(url, "--job-class", "tests.rq_jobs.SignedJob", "-w", "rq.worker.SimpleWorker")
        assert seen_id(accepted) == signed
        assert seen(refused) is None
