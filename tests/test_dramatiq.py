"""Dramatiq: the session travels with the message. A real ``dramatiq.Worker`` in process on the
stub broker, and a real ``dramatiq`` worker process with Debian's redis-server as broker, started
on a free loopback port by the test."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from dramatiq import Message, Worker, pipeline
from dramatiq.broker import MessageProxy
from dramatiq.brokers.stub import StubBroker
from dramatiq.results import ResultFailure, Results
from dramatiq.results.backends import StubBackend
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from session_mw import current_session, session
from session_mw._signing import Signer
from session_mw.dramatiq import SessionMiddleware
from session_mw.otel import SessionSpanProcessor
from tests import dramatiq_app as app
from tests.servers import ROOT, redis

TIMEOUT_MS = 30_000


def result(message: Message[Any]) -> Any:
    return message.get_result(backend=app.results, block=True, timeout=TIMEOUT_MS)


def seen_id(message: Message[Any]) -> str | None:
    seen = result(message)
    return None if seen is None else str(seen["id"])


def drained(broker: dramatiq.Broker) -> None:
    """Every message sent so far, and every one they sent, has been handled."""
    assert isinstance(broker, StubBroker)
    broker.join("default", timeout=TIMEOUT_MS, fail_fast=False)


# One worker thread: every message runs on the same thread, after the one before it.
@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    running = Worker(app.broker, worker_threads=1, worker_timeout=50)
    running.start()
    yield running
    running.stop()


@pytest.mark.usefixtures("worker")
def test_a_message_runs_in_the_session_that_sent_it() -> None:
    with session("conv-1"):
        message = app.whoami.send()
    assert result(message) == {
        "id": "conv-1",
        "attributes": {
            "messaging.system": "dramatiq",
            "dramatiq.task.name": "whoami",
            "messaging.message.id": message.message_id,
            "messaging.destination.name": "default",
        },
        "otel": "conv-1",  # OpenInference spans in the actor group by it
    }
    assert message.options["session_id"] == "conv-1"
    with session("conv-1"):  # an id given explicitly is kept
        explicit = app.whoami.send_with_options(session_id="conv-1b")
    assert seen_id(explicit) == "conv-1b"
    with session("conv-1"):
        everything = app.observed.send()
        asynchronous = app.whoami_async.send()
    assert result(everything) == {
        "log": "conv-1",  # SessionIdFilter
        "headers": {"X-Session-Id": "conv-1"},  # inject_headers
        "span": "conv-1",  # SessionSpanProcessor
    }
    assert seen_id(asynchronous) == "conv-1"  # an async actor, on Dramatiq's event loop thread


@pytest.mark.usefixtures("worker")
def test_outside_a_session_and_after_one_a_message_has_none() -> None:
    outside = app.whoami.send()
    assert "session_id" not in outside.options
    assert result(outside) is None
    with session("conv-2"):
        first = app.whoami.send()
    assert seen_id(first) == "conv-2"
    assert result(app.whoami.send()) is None  # the same worker thread: nothing leaked
    assert result(app.whoami_async.send()) is None
    with session("conv-3"):
        failed = app.fails.send()
    with pytest.raises(ResultFailure, match="the actor failed"):
        result(failed)
    assert result(app.whoami.send()) is None  # not after an actor that raised either


@pytest.mark.usefixtures("worker")
def test_sent_from_an_actor_retried_piped_and_called_back_keep_the_session() -> None:
    app.reports.clear()
    with session("conv-4"):
        child = app.spawn.send()
        retry = app.retried.send()
        # The second message is sent by Dramatiq's Pipelines middleware once the first returned.
        piped = pipeline(
            [app.whoami.message(), app.whoami.message_with_options(pipe_ignore=True)],
            broker=app.broker,
        )
        piped.run()  # type: ignore[no-untyped-call]
        app.whoami.send_with_options(on_success=app.report)
        app.fails.send_with_options(on_failure=app.report)
    assert seen_id(Message(**result(child))) == "conv-4"
    assert seen_id(retry) == "conv-4"
    last = piped.get_result(block=True, timeout=TIMEOUT_MS)  # type: ignore[no-untyped-call]
    assert last["id"] == "conv-4"
    drained(app.broker)
    assert sorted((r["after"], r["seen"]["id"]) for r in app.reports) == [
        ("fails", "conv-4"),
        ("whoami", "conv-4"),
    ]
    # Once its message is done, the worker thread sends nothing in its session.
    assert result(app.whoami.send()) is None


@pytest.mark.usefixtures("worker")
@pytest.mark.parametrize("value", ["a b", "x" * 129, "caf\xe9", "\x1b[31m"])
def test_an_invalid_id_is_never_used_nor_logged(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        message = app.whoami.send_with_options(session_id=value)
        assert result(message) is None
    assert "Ignored an invalid session_id message option" in caplog.text
    assert value not in caplog.text
    # What Dramatiq sends once the actor returned (a callback) carries none either. (The
    # callback's argument is the message, which Dramatiq logs at DEBUG: not checked here.)
    app.reports.clear()
    app.whoami.send_with_options(session_id=value, on_success=app.report)
    drained(app.broker)
    assert app.reports == [{"after": "whoami", "seen": None}]


def test_signed_ids_only_with_a_secret() -> None:
    secret = "a-secret-of-32-characters-or-so!"
    signed = Signer(secret).sign("conv-5")
    strict = StubBroker()
    backend = StubBackend()
    strict.add_middleware(SessionMiddleware(secret=secret))  # before its actors this time
    strict.add_middleware(Results(backend=backend, store_results=True))  # type: ignore[no-untyped-call]

    @dramatiq.actor(broker=strict, max_retries=0)
    def strict_whoami() -> str | None:
        opened = current_session()
        return None if opened is None else opened.id

    running = Worker(strict, worker_threads=1, worker_timeout=50)
    running.start()
    try:
        with session(signed):
            accepted = strict_whoami.send()
        with session("conv-5"):  # unsigned: refused
            refused = strict_whoami.send()
        assert accepted.get_result(backend=backend, block=True, timeout=TIMEOUT_MS) == signed
        assert refused.get_result(backend=backend, block=True, timeout=TIMEOUT_MS) is None
    finally:
        running.stop()


def test_the_span_of_a_tracing_middleware_ahead_carries_the_session(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer(__name__)
    activations: dict[str, Any] = {}

    class Tracing(dramatiq.Middleware):
        """A message span, current from before the actor to after it, as instrumentations do."""

        def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
            span = tracer.start_span(f"process {message.actor_name}")
            activation = activations[message.message_id] = trace.use_span(span, end_on_exit=True)
            activation.__enter__()

        def after_process_message(self, broker: dramatiq.Broker, message: Any, **_: Any) -> None:
            activations.pop(message.message_id).__exit__(None, None, None)

    provider.add_span_processor(SessionSpanProcessor())
    traced = StubBroker()
    traced.add_middleware(Tracing())
    traced.add_middleware(SessionMiddleware())

    @dramatiq.actor(broker=traced, max_retries=0)
    def work() -> None:
        with tracer.start_as_current_span("inside"):
            pass

    running = Worker(traced, worker_threads=1, worker_timeout=50)
    running.start()
    try:
        with session("conv-6"):
            work.send()
        work.send()
        traced.join("default", timeout=TIMEOUT_MS)
    finally:
        running.stop()
    finished = exporter.get_finished_spans()
    processes = {s.context.span_id: s for s in finished if s.name == "process work"}
    # Each message's span and the span started in its actor (a child of it): the worker takes
    # two messages of one priority in either order.
    pairs = sorted(
        (
            (processes[s.parent.span_id].attributes or {}).get("session.id") or "-",
            (s.attributes or {}).get("session.id") or "-",
        )
        for s in finished
        if s.name == "inside" and s.parent is not None
    )
    # The message's span was current when the session opened: it has the session too.
    assert pairs == [("-", "-"), ("conv-6", "conv-6")]


def test_what_a_middleware_ahead_sends_outside_a_message_carries_nothing() -> None:
    """A middleware ahead of it sends a message for one it skipped before this one saw it, or
    once a message was acked: neither carries an id, not even the one of the message before."""

    class Ahead(dramatiq.Middleware):
        def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
            if message.options.get("skip"):
                raise dramatiq.middleware.SkipMessage

        def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
            report.send("skipped")

        def after_ack(self, broker: dramatiq.Broker, message: Any) -> None:
            if message.actor_name == "work" and not message.options.get("skip"):
                report.send("acked")

    seen: list[tuple[str, str | None]] = []
    # Sent once a message was acked, a report can come after the queue looked drained.
    both = threading.Event()
    ahead = StubBroker()
    ahead.add_middleware(Ahead())
    ahead.add_middleware(SessionMiddleware())

    @dramatiq.actor(broker=ahead, max_retries=0)
    def work() -> None:
        pass

    @dramatiq.actor(broker=ahead, max_retries=0)
    def report(after: str) -> None:
        opened = current_session()
        seen.append((after, None if opened is None else opened.id))
        if len(seen) == 2:
            both.set()

    running = Worker(ahead, worker_threads=1, worker_timeout=50)
    running.start()
    try:
        with session("conv-7"):
            work.send()
            work.send_with_options(skip=True)  # carries conv-7, but is never validated
        assert both.wait(TIMEOUT_MS / 1000)
    finally:
        running.stop()
    assert sorted(seen) == [("acked", None), ("skipped", None)]


def test_a_message_never_acked_lends_its_id_to_nothing() -> None:
    """The hooks as a worker thread calls them, when acking a message failed (Dramatiq logs it
    and moves on, without after_ack): the next message, skipped before this middleware saw it,
    does not send in the session of the one before."""
    middleware = SessionMiddleware()
    broker = StubBroker()
    broker.add_middleware(middleware)

    @dramatiq.actor(broker=broker)
    def work() -> None:
        pass

    first = MessageProxy(work.message_with_options(session_id="conv-8"))
    middleware.before_process_message(broker, first)
    middleware.after_process_message(broker, first)
    sent = work.message()
    middleware.before_enqueue(broker, sent, 0)  # what a middleware ahead sends for it
    assert sent.options["session_id"] == "conv-8"
    second = MessageProxy(work.message())  # skipped ahead; first was never acked
    middleware.after_skip_message(broker, second)
    sent = work.message()
    middleware.before_enqueue(broker, sent, 0)
    assert "session_id" not in sent.options


# A real worker process with a Redis broker.


@pytest.mark.redis
def test_a_real_worker_process(tmp_path: Path) -> None:
    with redis() as url, (tmp_path / "worker.log").open("w+") as log:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DRAMATIQ_REDIS_URL": f"{url}/0"}
        command = [sys.executable, "-m", "dramatiq", "tests.dramatiq_app:broker"]
        command += ["--processes", "1", "--threads", "2"]
        # Its log goes to a file: a pipe read only at the end could fill and block the worker.
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stderr=log)
        client = _Client(f"{url}/0")
        try:
            sessions = [f"conv-{n:02d}" for n in range(20)]
            sent: list[tuple[str | None, Message[Any]]] = []
            for n, name in enumerate(sessions):
                if n % 4 == 0:  # some sent outside any session in between
                    sent.append((None, client["whoami"].send()))
                with session(name):
                    sent.append((name, client["whoami"].send()))
            with session("conv-real"):  # what the worker sends itself, and a retry
                child = client["spawn"].send()
                retry = client["retried"].send()
                everything = client["observed"].send()
                piped = pipeline(
                    [
                        client["whoami"].message(),
                        client["whoami"].message_with_options(pipe_ignore=True),
                    ],
                    broker=client.broker,
                )
                piped.run()  # type: ignore[no-untyped-call]
            invalid = client["whoami"].send_with_options(session_id="a b\r\nforged-line")
            for expected, message in sent:
                seen = client.result(message)
                assert (None if seen is None else seen["id"]) == expected
                assert seen is None or seen["otel"] == expected
            assert client.result(Message(**client.result(child)))["id"] == "conv-real"
            assert client.result(retry)["id"] == "conv-real"
            assert client.result(piped)["id"] == "conv-real"
            seen = client.result(everything)
            assert (seen["log"], seen["span"]) == ("conv-real", "conv-real")
            assert seen["headers"] == {"X-Session-Id": "conv-real"}
            assert client.result(invalid) is None
        finally:
            returncode = stop(worker)
        log.seek(0)
        errors = log.read()
    assert returncode == 0, errors
    # The one failure is the retried actor's first try.
    assert errors.count("Traceback") == 1, errors
    assert "RuntimeError: the first try fails" in errors
    assert "Ignored an invalid session_id message option" in errors
    assert "forged-line" not in errors


def stop(worker: subprocess.Popen[Any]) -> int | None:
    """Stop a worker process as its operator would (SIGTERM), and say how it exited: ``None``
    when it had to be killed (it did not stop within a minute)."""
    worker.terminate()
    try:
        return worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        return None


class _Client:
    """The sending side of the real-worker test: a broker of its own, with the worker's actors
    declared by name (the worker's module, imported here, would make a stub broker)."""

    def __init__(self, url: str) -> None:
        from dramatiq.brokers.redis import RedisBroker
        from dramatiq.results.backends.redis import RedisBackend

        # Dramatiq's Redis broker, backend and Results middleware have untyped constructors.
        self.broker = RedisBroker(url=url)  # type: ignore[no-untyped-call]
        self.backend = RedisBackend(url=url)  # type: ignore[no-untyped-call]
        results = Results(backend=self.backend, store_results=True)  # type: ignore[no-untyped-call]
        self.broker.add_middleware(results)
        self.broker.add_middleware(SessionMiddleware())

        def stand_in() -> None:
            raise AssertionError("runs on the worker only")

        self.actors = {
            name: dramatiq.actor(actor_name=name, broker=self.broker)(stand_in)
            for name in ("whoami", "spawn", "retried", "observed")
        }

    def __getitem__(self, name: str) -> Any:
        return self.actors[name]

    def result(self, sent: Message[Any] | pipeline) -> Any:
        if isinstance(sent, pipeline):  # its last message's result
            return sent.get_result(block=True, timeout=60_000)  # type: ignore[no-untyped-call]
        return sent.get_result(backend=self.backend, block=True, timeout=60_000)
