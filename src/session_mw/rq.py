"""RQ: a job runs in the session of the request (or job) that enqueued it.

    rq worker --job-class session_mw.rq.SessionJob --queue-class session_mw.rq.SessionQueue

Enqueue through a :class:`SessionQueue` (or any queue whose ``job_class`` is a
:class:`SessionJob`) and run the worker with the job class above::

    from redis import Redis
    from session_mw.rq import SessionQueue

    queue = SessionQueue("chat", connection=Redis())

    def handler(request):  # inside a session (the web adapter opened it)
        queue.enqueue(summarize, conversation_id)

A job created while a session is open keeps its id in ``job.meta["session_id"]``. On the worker
the id is validated with the same rule as the HTTP adapters, and the job function (an ``async``
one too) and its ``on_success``/``on_failure``/``on_stopped`` callbacks run inside a session
with that id and the attributes ``messaging.system``, ``rq.task.name`` (the function's dotted
name), ``messaging.message.id`` (the job id) and ``messaging.destination.name`` (the queue).
Dependents, retries and jobs enqueued from inside a job or its callbacks keep the session.

The worker's command line takes no options for the ids it accepts, so they are class
attributes: subclass :class:`SessionJob` and name the subclass with ``--job-class``::

    class SignedJob(SessionJob):
        secret = os.environ["SESSION_SECRET"]  # only ids this service signed
        # validator = my_check  # or a check of your own

    rq worker --job-class myapp.jobs.SignedJob --queue-class session_mw.rq.SessionQueue

The worker builds its queues with its ``--job-class``; in-process (``SimpleWorker``,
``Queue(is_async=False)``) pass ``job_class=SignedJob`` the same way. A synchronous queue runs
the job in the enqueuing code's own context: there a refused id leaves the job in the session
that enqueued it, which is current anyway.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

from rq.job import Job
from rq.queue import Queue

from session_mw._scope import Session
from session_mw._tasks import Secret, TaskSessions, Validator, outgoing

__all__ = ["KEY", "SessionJob", "SessionQueue"]

#: The ``job.meta`` key that carries the session id from publisher to worker.
KEY = "session_id"
_WHERE = f"{KEY} job meta"

F = TypeVar("F", bound=Callable[..., Any])


class SessionJob(Job):
    """A job that carries the session it was created in and runs in it.

    Subclass it to choose the ids the worker accepts (the HTTP adapters' options):

    - ``validator``: a check of your own, called with the id (``True``: accept it);
    - ``secret``: with it, only ids this service signed (one secret, or a list, newest first).

    A mistake in them raises when the subclass is defined, so a worker fails at start.
    """

    validator: ClassVar[Validator] = None
    secret: ClassVar[Secret] = None
    _sessions: ClassVar[TaskSessions]

    # What this job's meta named, validated once for the body and its callbacks (None: none).
    _session: Session | None = None
    _session_known: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._sessions = _task_sessions(cls)

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> Job:
        """:meth:`rq.job.Job.create`, keeping the current session's id in the job's meta
        (unless the meta given already names one). Every queue method that makes a job
        (``enqueue``, ``enqueue_at``, ``enqueue_many``, dependents) comes through here."""
        job = super().create(*args, **kwargs)
        session_id = outgoing()
        if session_id is not None and KEY not in job.meta:
            # A new dict: the job holds the caller's meta dict itself, which may be reused.
            job.meta = {**job.meta, KEY: session_id}
        return job

    def perform(self) -> Any:
        with self._in_session():
            return super().perform()

    # RQ reads a job's callbacks through these properties, wherever it runs them (the worker,
    # a synchronous queue, the registry cleaning up an abandoned job): each gets the session.

    @property
    def success_callback(self) -> Any:
        return self._in_job_session(super().success_callback)

    @property
    def failure_callback(self) -> Any:
        return self._in_job_session(super().failure_callback)

    @property
    def stopped_callback(self) -> Any:
        return self._in_job_session(super().stopped_callback)

    def _job_session(self) -> Session | None:
        if not self._session_known:  # once: an invalid id is warned about once per run
            self._session_known = True
            origin = self.origin or None
            raw = self.meta.get(KEY)
            self._session = self._sessions.begin(raw, self.func_name or "", self.id, origin)
        return self._session

    @contextmanager
    def _in_session(self) -> Iterator[None]:
        opened = self._job_session()
        if opened is None:  # enqueued outside any session, or an invalid id (warned)
            yield
            return
        entered = self._sessions.enter(opened)
        try:
            yield
        finally:  # the exact token: nothing stays set for the next job on this thread
            self._sessions.exit(entered)

    def _in_job_session(self, callback: F | None) -> F | None:
        # RQ refuses coroutine callbacks by their type: hand those over unwrapped.
        if callback is None or inspect.iscoroutinefunction(callback):
            return callback

        @functools.wraps(callback)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self._in_session():
                return callback(*args, **kwargs)

        return run  # type: ignore[return-value]


def _task_sessions(cls: type[SessionJob]) -> TaskSessions:
    # Read off the class: a function set as a class attribute stays a plain function there.
    return TaskSessions("rq", _WHERE, cls.__qualname__, cls.validator, cls.secret)


SessionJob._sessions = _task_sessions(SessionJob)


class SessionQueue(Queue):
    """A queue whose jobs are :class:`SessionJob` unless given another ``job_class``."""

    job_class = SessionJob
