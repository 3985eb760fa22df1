"""Per-task overhead of session-mw's Celery integration against asgi-correlation-id's, in one run.

    python -m benchmarks.celery_overhead [--rounds 21] [--tasks 2000]
    python -m benchmarks.celery_overhead --instructions [2000]   # callgrind

A task's cost is what the integrations hook into, end to end: publishing it from inside an open
session (``apply_async`` through a held producer to the in-memory broker, which runs
``before_task_publish``) and the worker running it (Celery's own tracer, as ``celery worker``
builds it after its start-up optimisations, with the message headers as the request, which runs
``task_prerun``, the task's ``__call__`` and ``task_postrun``). The body does nothing and ignores
its result. Celery's signals are global to a process, so every variant runs in a process of its
own, driven by this one over a pipe; rounds interleave as in the other benchmarks.

The peer is asgi-correlation-id's ``load_correlation_ids()``, shipped up to its 4.3.4 (5.0
dropped it): on first use 4.3.4 is installed with pip into ``<venv>/peers``, next to the
package's own 5.x used by the ASGI benchmark.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.harness import SESSION_ID, Suites, Variant, main
from benchmarks.instructions import collected, table

ROOT = Path(__file__).resolve().parent.parent
PEER = "asgi-correlation-id==4.3.4"
PEER_DIR = Path(sys.prefix) / "peers" / PEER.replace("==", "-")
BASELINE, PEER_NAME = "plain Celery", "asgi-correlation-id 4.3.4"
VARIANTS = [BASELINE, "session-mw", PEER_NAME]
TITLE = "a task published in a session, then run by the worker"


def peer_path() -> Path:
    if not (PEER_DIR / "asgi_correlation_id" / "extensions" / "celery.py").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
             "--target", str(PEER_DIR), PEER],
            check=True,
        )  # fmt: skip
    return PEER_DIR


# The child: one variant's Celery app, publishing and running tasks on request.


Opens = Callable[[], AbstractContextManager[Any]]


def setup(variant: str) -> tuple[Callable[[], None], Callable[[], None], Opens]:
    """The variant's app: one task's publish-and-run, the broker's purge, and the context of
    the request the tasks are published from."""
    from celery import Celery
    from celery.app.trace import build_tracer, setup_worker_optimizations
    from celery.signals import before_task_publish

    app = Celery("bench", broker="memory://")
    app.conf.task_ignore_result = True
    opened: Opens = nullcontext
    if variant == "session-mw":
        from session_mw import session
        from session_mw.celery import install

        install(app)
        opened = partial(session, SESSION_ID)
    elif variant == PEER_NAME:
        from asgi_correlation_id.context import correlation_id
        from asgi_correlation_id.extensions.celery import load_correlation_ids

        load_correlation_ids()
        opened = partial(correlation_ids, correlation_id)

    @app.task(name="bench.noop")
    def noop() -> None:
        pass

    setup_worker_optimizations(app, "bench@127.0.0.1")  # what `celery worker` does first
    trace = build_tracer(noop.name, noop, app=app, eager=False, hostname="bench@127.0.0.1")
    producer = app.producer_pool.acquire(block=True)

    # The headers a message is published with, as the worker gets them: taken once, after the
    # integration's own handler (connected first, so it has run).
    published: dict[str, Any] = {}

    def capture(headers: dict[str, Any] | None = None, **_: Any) -> None:
        published.update(headers or {})

    before_task_publish.connect(capture, weak=False)
    with opened():
        noop.apply_async(producer=producer)
    before_task_publish.disconnect(capture)
    expected = {"session-mw": "session_id", PEER_NAME: "CORRELATION_ID"}.get(variant)
    if expected is not None and published.get(expected) != SESSION_ID:
        raise RuntimeError(f"{variant} published no {expected} header: nothing to measure")
    request = {**published, "delivery_info": {"exchange": "", "routing_key": "celery"}}

    def one() -> None:
        noop.apply_async(producer=producer)
        trace(request["id"], [], {}, request)

    def purge() -> None:
        app.control.purge()

    return one, purge, opened


@contextmanager
def correlation_ids(var: Any) -> Iterator[None]:
    token = var.set(SESSION_ID)
    try:
        yield
    finally:
        var.reset(token)


def child(variant: str) -> None:
    one, purge, opened = setup(variant)
    with opened():  # the request the tasks are published from
        for line in sys.stdin:
            n = int(line)
            start = time.perf_counter()
            for _ in range(n):
                one()
            elapsed = time.perf_counter() - start
            purge()  # what the worker would have consumed
            print(elapsed, flush=True)


# The parent: one process per variant, driven by the harness or counted by callgrind.


def child_command(variant: str) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if variant == PEER_NAME:
        env["PYTHONPATH"] = os.pathsep.join([str(peer_path()), str(ROOT)])
    return ["-m", "benchmarks.celery_overhead", "--child", variant], env


def driver(variant: str) -> Variant:
    command, env = child_command(variant)
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    stdin, stdout = process.stdin, process.stdout
    if stdin is None or stdout is None:  # for the type checker: both were asked for
        raise RuntimeError("no pipes to the benchmark's child")

    def many(n: int) -> float:
        stdin.write(f"{n}\n")
        stdin.flush()
        return float(stdout.readline())

    return many


def suites() -> Suites:
    return {TITLE: ({name: driver(name) for name in VARIANTS}, BASELINE, PEER_NAME)}


def instructions(n: int) -> None:
    """Each variant's child under callgrind, after 200 warm-up tasks: with 0 and with n more."""
    per_task = {}
    for variant in VARIANTS:
        command, env = child_command(variant)
        runs = [collected(command, f"200\n{tasks}\n", env) for tasks in (n, 0)]
        per_task[variant] = (runs[0] - runs[1]) / n
    print(table(TITLE, per_task, BASELINE, PEER_NAME, unit="task"))
    print(f"(callgrind; {n} tasks per variant after 200 warm-up tasks)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2])
    elif sys.argv[1:2] == ["--instructions"]:
        instructions(int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
    else:
        main((__doc__ or "").splitlines()[0], suites, unit="task")
