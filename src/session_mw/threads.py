"""Thread pools: work handed to a thread runs in the session of the code that handed it over.

    from session_mw.threads import SessionExecutor, in_session

A pool thread runs every job in the thread's own context, not the submitter's: the session
(and the current OpenTelemetry span) of the request that submitted the work is lost there.
:class:`SessionExecutor` is a :class:`~concurrent.futures.ThreadPoolExecutor` whose
``submit`` and ``map`` run each job in a copy of the submitter's context; :func:`in_session`
wraps a function the same way for a pool you don't make (``loop.run_in_executor(None, ...)``,
a library's executor)::

    pool = SessionExecutor(max_workers=4)

    def handler(request):  # inside a session (the web adapter opened it)
        summaries = list(pool.map(summarize, documents))

    async def endpoint(request):
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(pool, summarize, document)  # SessionExecutor: as it is
        await loop.run_in_executor(None, in_session(summarize), document)  # any pool

``asyncio.to_thread`` and Starlette's ``run_in_threadpool`` copy the context already. Each job
gets a copy of its own: what it changes (a session it opens, a context variable it sets) stays
in that job, and nothing is left on the pool thread for the next one.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["SessionExecutor", "in_session"]

P = ParamSpec("P")
T = TypeVar("T")


class SessionExecutor(ThreadPoolExecutor):
    """A :class:`~concurrent.futures.ThreadPoolExecutor` (same arguments) that runs each job
    in the session, and the whole context, current where it was submitted. ``map`` submits
    through ``submit``, so it does the same, and so does ``loop.run_in_executor(pool, ...)``.
    """

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        # Copied now, in the submitter's thread or task: the context of the moment of submit.
        context = contextvars.copy_context()
        return super().submit(functools.partial(context.run, fn, *args, **kwargs))


def in_session(fn: Callable[P, T]) -> Callable[P, T]:
    """``fn``, run in the session (and the whole context) current now, wherever it is called:
    for executors you don't make, ``loop.run_in_executor(None, in_session(fn), ...)``.

    Each call runs in a fresh copy of that context, so the wrapper can run in several threads
    at once, and what one call changes is not seen by the next.
    """
    context = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        # A Context can be entered by one thread at a time: a copy for each call.
        return context.copy().run(fn, *args, **kwargs)

    return run
