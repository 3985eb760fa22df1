"""arq: a job runs in the session of whoever enqueued it.

    pip install "session-mw[arq]"

    from arq import create_pool, func
    from session_mw.arq import enqueue_job, install

    async def summarize(ctx, conversation: str) -> None:
        ...  # current_session().id is the id of the request that enqueued it
        await enqueue_job(ctx["redis"], "notify", conversation)  # keeps the session

    class WorkerSettings:
        functions = [summarize, func(notify, timeout=60)]

    install(WorkerSettings)  # the worker: every function runs in its job's session

    redis = await create_pool()
    await enqueue_job(redis, "summarize", "c-1")  # inside a request: carries its session

arq's messages have no headers, and its job hooks (``on_job_start``, ``on_job_end``,
``after_job_end``) are given the job's id but not its arguments. So the id travels as one more
keyword argument of the job, ``_session_id`` (:data:`KWARG`), which :func:`enqueue_job` adds while
a session is open, and each function :func:`install` wraps takes out before calling the function:
its signature is unchanged. The argument is stored with the job, so it expires, retries
(``Retry``, a cancelled job run again) and deduplicates (``_job_id``) with it, and costs no
round trip of its own. The wrapper runs the function inside the session, in the function's own
asyncio task, which arq creates for every job: the session closes with the function, also when it
raises, times out or is aborted. Enqueue with :func:`enqueue_job` wherever a session should
travel, inside jobs too (``ctx["redis"].enqueue_job`` does not know of sessions); install on the
workers before the publishers send the argument, or their functions reject it.

On the worker the id is validated with the same rule as the HTTP adapters, and the job's session
gets the attributes ``messaging.system``, ``arq.task.name`` (the function's name) and
``messaging.message.id`` (the job id). A job enqueued outside any session runs without one. arq
logs every job's arguments (repr'd) at INFO, this one among them.
"""

from __future__ import annotations

import dataclasses
import functools
import weakref
from collections.abc import Callable, Sequence
from typing import Any, cast

from arq.connections import ArqRedis
from arq.jobs import Job
from arq.typing import WorkerCoroutine
from arq.worker import Function, func

from session_mw._tasks import Secret, TaskSessions, Validator, outgoing

__all__ = ["KWARG", "enqueue_job", "install"]

#: The job keyword argument that carries the session id from publisher to worker. Underscored,
#: as arq's own job options are, so it never takes the name of an argument of the function.
KWARG = "_session_id"

# The coroutines install made, so that installing twice wraps nothing twice.
_wrapped: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()


async def enqueue_job(redis: ArqRedis, function: str, *args: Any, **kwargs: Any) -> Job | None:
    """``redis.enqueue_job(function, *args, **kwargs)``, carrying the current session's id.

    Takes arq's options (``_job_id``, ``_defer_by``...) as arq does. Outside any session it adds
    nothing; an explicit ``_session_id`` is kept.
    """
    session_id = outgoing()
    if session_id is not None:
        kwargs.setdefault(KWARG, session_id)
    return await redis.enqueue_job(function, *args, **kwargs)


def install(
    settings: type | dict[str, Any],
    *,
    validator: Validator = None,
    secret: Secret = None,
) -> None:
    """Make the worker's functions run in the session their job carries: each of
    ``settings.functions`` (a ``WorkerSettings`` class, or the dict arq also takes) is replaced
    by one that takes ``_session_id`` out of its arguments. Functions already wrapped are kept,
    so a second call changes nothing. ``validator`` and ``secret`` are the HTTP adapters'
    options, for the ids a worker accepts (with ``secret``, only ids this service signed): a
    check called with each id, ``(str) -> bool``, and a key (``str`` or ``bytes``) or several,
    newest first.

    >>> async def noop(ctx): ...
    >>> settings = {"functions": [noop]}
    >>> install(settings)
    >>> [f.name for f in settings["functions"]]
    ['noop']
    """
    sessions = TaskSessions("arq", f"{KWARG} job argument", "install", validator, secret)
    if isinstance(settings, dict):
        settings["functions"] = _in_sessions(settings.get("functions", ()), sessions)
    else:
        # A WorkerSettings class: arq reads the attributes in its own __dict__.
        target = cast(Any, settings)
        target.functions = _in_sessions(getattr(settings, "functions", ()), sessions)


def _in_sessions(
    functions: Sequence[Function | WorkerCoroutine | str], sessions: TaskSessions
) -> list[Function]:
    return [_in_session(func(function), sessions) for function in functions]


def _in_session(function: Function, sessions: TaskSessions) -> Function:
    if function.coroutine in _wrapped:
        return function
    original = function.coroutine
    name = function.name

    @functools.wraps(original)
    async def in_session(ctx: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
        # Taken out whatever it holds: the function never sees it, valid or not.
        raw = kwargs.pop(KWARG, None)
        with sessions.running(raw, name, ctx.get("job_id")):
            return await original(ctx, *args, **kwargs)

    _wrapped.add(in_session)
    return dataclasses.replace(function, coroutine=in_session)
