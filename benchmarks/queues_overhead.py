"""Per-task overhead of session-mw's queue integrations beside its Celery integration, in one run.

    python -m benchmarks.queues_overhead [--rounds 21] [--tasks 2000]
    python -m benchmarks.queues_overhead --instructions [1000]   # callgrind

For each queue, the same trivial task (a function that does nothing) is published from inside
an open session and run to the end by the queue's own in-process worker, without session-mw and
with it installed:

- Celery: ``benchmarks.celery_overhead``'s two variants, imported (plain Celery, session-mw:
  there the plain one publishes outside any session, which a Celery without session-mw never
  reads);
- RQ: ``Queue`` and ``Job``, then ``SessionQueue`` and ``SessionJob``, on fakeredis, run by a
  ``SimpleWorker`` in burst mode;
- huey: a ``MemoryHuey`` (``immediate=False``), its queue drained in process (``dequeue`` and
  ``execute``, each task read back from its message, as the consumer's workers do);
- Dramatiq: a ``StubBroker`` and a ``Worker`` with one worker thread;
- taskiq: an ``InMemoryBroker`` (each task its own asyncio task, as a worker runs it);
- arq: a real redis-server, started by this benchmark on a free loopback port and stopped with
  it (``tests.servers.redis``), and a ``Worker`` in burst mode; the row is left out, and says
  so, when redis-server is missing (``apt-get install redis-server``);
- thread pools: ``ThreadPoolExecutor.submit`` against ``SessionExecutor.submit``, one thread,
  held at a gate while a batch is submitted (no thread switch per task).

A batch publishes its tasks, then runs them all, so a task's cost is what the integration hooks
into at both ends. Before measuring, each variant with session-mw runs a probe task and fails
unless the task ran in the publisher's session id, opened by the worker side (the thread pools:
in the submitter's context).

Every variant runs in a process of its own, driven over a pipe as the Celery benchmark's are,
and the rounds interleave every variant of every queue (``benchmarks.harness``): a queue's
overhead is the median over rounds of its two variants' difference in the same round, and its
ratio is that over Celery's overhead in the same run. The slow in-process workers (RQ on
fakeredis, arq on a real Redis) run a fraction of ``--tasks`` per round; every time is per task.

With ``--instructions``, each variant's process runs under callgrind
(``benchmarks.instructions.collected``) twice after the same warm-up, with N tasks and with 0,
and its count per task is the difference over N (RQ: each count is the median of three runs,
as one run now and then counts millions more than the next). The arq row counts the Python
process only, not the redis-server it talks to. The runs go two at a time, one per core: counts
do not depend on what else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from typing import Any, NamedTuple

from benchmarks import celery_overhead
from benchmarks.harness import SESSION_ID, Variant, interleaved, overheads
from benchmarks.instructions import ROOT, collected
from session_mw import current_session, session
from session_mw._scope import Session

TITLE = "a trivial task published in a session, then run by the queue's in-process worker"
WITHOUT, WITH = "without", "with"

#: A queue's batch: publishes ``n`` tasks inside the open session, then runs them all to the end;
#: with ``probing``, each task records the session it runs in instead of doing nothing.
Batch = Callable[[int, bool], None]

# What the probe task saw, in this process (every worker here runs in it).
SEEN: list[Session | None] = []


def noop() -> None:
    pass


def probe() -> None:
    SEEN.append(current_session())


async def noop_async() -> None:
    pass


async def probe_async() -> None:
    SEEN.append(current_session())


async def noop_job(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
    pass


async def probe_job(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> None:
    SEEN.append(current_session())


# The queues: each makes its in-process worker and yields its batch (a child process's life).


@contextmanager
def rq(installed: bool) -> Iterator[Batch]:
    import fakeredis
    from rq import SimpleWorker
    from rq.job import Job
    from rq.queue import Queue

    from session_mw.rq import SessionJob, SessionQueue

    connection = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    job_class, queue_class = (SessionJob, SessionQueue) if installed else (Job, Queue)
    queue = queue_class("bench", connection=connection, job_class=job_class)
    worker = SimpleWorker([queue], name="bench", connection=connection, job_class=job_class)
    # Ids of the same length in every process, not random ones: fakeredis' keys hash and sort
    # alike from one run to the next.
    ids = itertools.count(1_000_000)

    def batch(n: int, probing: bool) -> None:
        function = probe if probing else noop
        for _ in range(n):
            queue.enqueue(function, result_ttl=0, job_id=f"bench-{next(ids)}")
        worker.work(burst=True, logging_level="WARNING")

    yield batch


@contextmanager
def huey(installed: bool) -> Iterator[Batch]:
    from huey import MemoryHuey

    from session_mw.huey import install

    app = MemoryHuey("bench", results=False)  # immediate=False: tasks go through the queue
    if installed:
        install(app)
    tasks = {False: app.task()(noop), True: app.task()(probe)}

    def batch(n: int, probing: bool) -> None:
        task = tasks[probing]
        for _ in range(n):
            task()
        while (message := app.dequeue()) is not None:
            app.execute(message)

    yield batch


@contextmanager
def dramatiq(installed: bool) -> Iterator[Batch]:
    from dramatiq import Worker, actor
    from dramatiq.brokers.stub import StubBroker

    from session_mw.dramatiq import SessionMiddleware

    broker = StubBroker()
    if installed:
        broker.add_middleware(SessionMiddleware())
    actors = {False: actor(broker=broker)(noop), True: actor(broker=broker)(probe)}
    worker = Worker(broker, worker_threads=1)
    worker.start()

    def batch(n: int, probing: bool) -> None:
        send = actors[probing].send
        for _ in range(n):
            send()
        broker.join("default", timeout=60_000, fail_fast=True)

    try:
        yield batch
    finally:
        worker.stop()


@contextmanager
def taskiq(installed: bool) -> Iterator[Batch]:
    from taskiq import InMemoryBroker

    from session_mw.taskiq import SessionMiddleware

    broker = InMemoryBroker()  # each message handled in an asyncio task of its own
    if installed:
        broker.with_middlewares(SessionMiddleware())
    tasks = {
        False: broker.task(task_name="bench.noop")(noop_async),
        True: broker.task(task_name="bench.probe")(probe_async),
    }

    async def run(n: int, probing: bool) -> None:
        task = tasks[probing]
        for _ in range(n):
            await task.kiq()
        await broker.wait_all()

    with running_loop() as loop:
        loop.run_until_complete(broker.startup())
        try:
            yield lambda n, probing: loop.run_until_complete(run(n, probing))
        finally:
            loop.run_until_complete(broker.shutdown())


@contextmanager
def arq(installed: bool) -> Iterator[Batch]:
    from arq.connections import ArqRedis, RedisSettings, create_pool
    from arq.worker import Worker, func

    from session_mw.arq import enqueue_job, install
    from tests.servers import redis

    settings: dict[str, Any] = {"functions": [func(noop_job), func(probe_job)]}
    if installed:
        install(settings)

    async def plain(pool: ArqRedis, function: str) -> object:
        return await pool.enqueue_job(function)

    async def in_session(pool: ArqRedis, function: str) -> object:
        return await enqueue_job(pool, function)

    publish = in_session if installed else plain

    async def run(pool: ArqRedis, n: int, probing: bool) -> None:
        name = "probe_job" if probing else "noop_job"
        for _ in range(n):
            await publish(pool, name)
        worker = Worker(
            settings["functions"], redis_pool=pool, burst=True, poll_delay=0,
            keep_result=0, handle_signals=False,
        )  # fmt: skip
        await worker.async_run()
        if worker.jobs_failed:
            raise RuntimeError(f"{worker.jobs_failed} arq jobs failed")

    with redis() as url, running_loop() as loop:
        pool = loop.run_until_complete(create_pool(RedisSettings.from_dsn(url)))
        try:
            yield lambda n, probing: loop.run_until_complete(run(pool, n, probing))
        finally:
            loop.run_until_complete(pool.aclose())


@contextmanager
def threads(installed: bool) -> Iterator[Batch]:
    from session_mw.threads import SessionExecutor

    with (SessionExecutor if installed else ThreadPoolExecutor)(max_workers=1) as pool:

        def batch(n: int, probing: bool) -> None:
            function = probe if probing else noop
            # The pool's thread waits at a gate while the tasks are submitted, then runs them
            # one after the other: no thread switch per task, whose timing would move the count.
            gate = threading.Event()
            pool.submit(gate.wait)
            submitted = [pool.submit(function) for _ in range(n)]
            gate.set()
            if submitted:
                submitted[-1].result()  # one thread, in order: the last done, all done

        yield batch


@contextmanager
def running_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


class Queue(NamedTuple):
    worker: Callable[[bool], AbstractContextManager[Batch]]  # installed -> its batch
    system: str | None  # the session's messaging.system on the worker (None: the submitter's)


class Sizes(NamedTuple):
    timed: float = 1.0  # the share of --tasks a round runs
    counted: float = 1.0  # the share of N (and of the 200 warm-up tasks) under callgrind
    repeats: int = 1  # callgrind runs of each count (N tasks, 0 tasks): the median counts


CELERY = "Celery"
QUEUES = {
    "RQ": Queue(rq, "rq"),
    "huey": Queue(huey, "huey"),
    "Dramatiq": Queue(dramatiq, "dramatiq"),
    "taskiq": Queue(taskiq, "taskiq"),
    "arq": Queue(arq, "arq"),
    "thread pools": Queue(threads, None),
}
# The slow in-process workers run fewer tasks. Under callgrind, RQ's count (some 20 million
# instructions a task, mostly fakeredis) now and then moves by millions from one process to the
# next: each of its counts is the median of three runs.
SIZES = {"RQ": Sizes(timed=0.2, counted=0.1, repeats=3), "arq": Sizes(timed=0.4, counted=0.4)}
CELERY_VARIANTS = {WITHOUT: celery_overhead.BASELINE, WITH: "session-mw"}
ROWS = {
    CELERY: "Celery (memory broker, Celery's tracer)",
    "RQ": "RQ (SimpleWorker, fakeredis)",
    "huey": "huey (MemoryHuey, drained in process)",
    "Dramatiq": "Dramatiq (StubBroker, Worker)",
    "taskiq": "taskiq (InMemoryBroker)",
    "arq": "arq (Worker, burst, redis-server)",
    "thread pools": "thread pools (ThreadPoolExecutor / SessionExecutor)",
}


def check(name: str, installed: bool) -> None:
    """The probe task ran in the publisher's session, in the worker's session: else there is
    nothing to measure."""
    if not installed:
        return
    seen = SEEN[-1] if SEEN else None
    system = QUEUES[name].system
    if seen is None or seen.id != SESSION_ID:
        raise RuntimeError(f"{name} with session-mw: the task ran outside the session")
    if system is not None and seen.attributes.get("messaging.system") != system:
        raise RuntimeError(f"{name} with session-mw: the task ran in the publisher's context")


def child(name: str, variant: str) -> None:
    installed = variant == WITH
    with session(SESSION_ID), QUEUES[name].worker(installed) as batch:
        batch(1, True)
        check(name, installed)
        for line in sys.stdin:
            n = int(line)
            start = time.perf_counter()
            batch(n, False)
            print(time.perf_counter() - start, flush=True)


# The parent: one process per variant, driven by the harness or counted by callgrind.


def child_command(name: str, variant: str) -> tuple[list[str], dict[str, str]]:
    if name == CELERY:
        return celery_overhead.child_command(CELERY_VARIANTS[variant])
    return ["-m", "benchmarks.queues_overhead", "--child", name, variant], dict(os.environ)


def driver(name: str, variant: str) -> Variant:
    """The variant's process: ``n`` asks for ``n`` tasks, of which it runs the queue's share,
    and gets back the time ``n`` would take at the same cost per task."""
    if name == CELERY:
        return celery_overhead.driver(CELERY_VARIANTS[variant])
    command, env = child_command(name, variant)
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    stdin, stdout = process.stdin, process.stdout
    if stdin is None or stdout is None:  # for the type checker: both were asked for
        raise RuntimeError("no pipes to the benchmark's child")

    def many(n: int) -> float:
        tasks = share(n, SIZES.get(name, Sizes()).timed)
        stdin.write(f"{tasks}\n")
        stdin.flush()
        answer = stdout.readline()
        if not answer:
            raise RuntimeError(f"the {name} {variant} process exited: see its error above")
        return float(answer) * n / tasks

    return many


def share(n: int, fraction: float) -> int:
    return max(1, round(n * fraction))


def available() -> list[str]:
    from tests.servers import REDIS

    names = [CELERY, *QUEUES]
    if not os.path.exists(REDIS):
        print(f"(arq left out: no redis-server at {REDIS}; apt-get install redis-server)")
        names.remove("arq")
    return names


def markdown(unit: str, rows: dict[str, tuple[float, float, float]], digits: int) -> str:
    """The table: per queue, the cost per task without and with session-mw, the overhead (the
    median of the differences, in wall-clock mode) and its ratio to Celery's."""
    celery = rows[CELERY][2]
    lines = [
        f"**{TITLE}** ({unit} per task)",
        "",
        "| queue | without session-mw | with session-mw | overhead | overhead vs Celery's |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (without, with_, over) in rows.items():
        ratio = "1.00x" if name == CELERY else f"{over / celery:.2f}x"
        lines.append(
            f"| {ROWS[name]} | {without:,.{digits}f} | {with_:,.{digits}f} "
            f"| {over:,.{digits}f} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def timed(rounds: int, n: int) -> None:
    names = available()
    variants = {
        f"{name} {variant}": driver(name, variant) for name in names for variant in (WITHOUT, WITH)
    }
    times = interleaved(variants, rounds=rounds, n=n)
    rows = {}
    for name in names:
        without, with_ = times[f"{name} {WITHOUT}"], times[f"{name} {WITH}"]
        pair = {WITHOUT: without, WITH: with_}
        rows[name] = (
            statistics.median(without),
            statistics.median(with_),
            overheads(pair, WITHOUT)[WITH],
        )
    print(markdown("median us", rows, 2))
    counts = ", ".join(f"{name} {share(n, SIZES.get(name, Sizes()).timed)}" for name in names)
    print(f"({rounds} interleaved rounds; tasks per round: {counts}; medians over rounds)")


def instructions(n: int) -> None:
    """Each variant's process under callgrind after a warm-up: with the queue's share of n tasks
    and with 0 (RQ: each three times, the medians)."""
    names = available()
    sizes = {name: SIZES.get(name, Sizes()) for name in names}
    tasks = {name: share(n, size.counted) for name, size in sizes.items()}
    warm = {name: share(200, size.counted) for name, size in sizes.items()}
    runs: dict[tuple[str, str, int], list[Future[int]]] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:  # one callgrind per core
        # The slowest queues (the most runs, then the smallest shares) first: the two lanes of
        # runs then end at about the same time.
        for name in sorted(names, key=lambda name: (-sizes[name].repeats, sizes[name].counted)):
            for variant in (WITHOUT, WITH):
                command, env = child_command(name, variant)
                for count in (tasks[name], 0):
                    stdin = f"{warm[name]}\n{count}\n"
                    runs[name, variant, count] = [
                        pool.submit(collected, command, stdin, env)
                        for _ in range(sizes[name].repeats)
                    ]
    rows = {}
    for name in names:
        per_task = {}
        for variant in (WITHOUT, WITH):
            full, empty = (
                statistics.median(run.result() for run in runs[name, variant, count])
                for count in (tasks[name], 0)
            )
            per_task[variant] = (full - empty) / tasks[name]
        rows[name] = (per_task[WITHOUT], per_task[WITH], per_task[WITH] - per_task[WITHOUT])
    print(markdown("instructions", rows, 0))
    counts = ", ".join(
        f"{name} {tasks[name]} after {warm[name]}"
        + (f" (medians of {sizes[name].repeats} runs)" if sizes[name].repeats > 1 else "")
        for name in names
    )
    print(f"(callgrind; tasks per variant after warm-up tasks: {counts})")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument(
        "--instructions", nargs="?", type=int, const=1000, metavar="N",
        help="count instructions under callgrind instead (N tasks, 1000 by default)",
    )  # fmt: skip
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
    elif args.instructions is not None:
        instructions(args.instructions)
    else:
        timed(args.rounds, args.tasks)


if __name__ == "__main__":
    # Run as the module itself, not as __main__: RQ's workers import a job's function by its
    # dotted name, and refuse one from __main__.
    from benchmarks.queues_overhead import main as run_module

    run_module()
